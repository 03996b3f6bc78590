"""The warehouse interface: everything dialect-specific sits behind `Warehouse`.

The sinks speak only this interface: create/evolve a table from a column plan,
stage a batch in bulk, merge it with the version guard, and run audit statements.
A new dialect (Snowflake, BigQuery) subclasses `Warehouse` and registers its URL
backend in `target_looker.warehouse.DIALECTS`; sinks and audit do not change.
SQL parameters use `$1, $2, ...` in every dialect.
"""

# SQL here is built from identifiers passed through Warehouse.quote (tested) and
# fixed fragments; every value is a bound $n parameter.
# ruff: noqa: S608

from __future__ import annotations

import abc
import contextlib
import decimal
import math
import operator
import typing as t
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from target_looker.columns import Column, SqlType

if t.TYPE_CHECKING:
    from sqlalchemy.engine import URL

VERSION_COLUMN = "_ifs_objversion"
TABLE_VERSION_COLUMN = "_sdc_table_version"
DELETED_AT_COLUMN = "_sdc_deleted_at"

UPSERT, APPEND_ONLY, OVERWRITE = "upsert", "append-only", "overwrite"
LOAD_METHODS = (UPSERT, APPEND_ONLY, OVERWRITE)
# Query parameters of a warehouse URL that carry secrets (libpq: `?password=`).
SECRET_QUERY_KEYS = frozenset({"password", "sslpassword"})


class WarehouseError(RuntimeError):
    """A load that cannot proceed safely: the message says what and why."""


@dataclass(frozen=True)
class TableRef:
    schema: str
    name: str


@dataclass
class Batch:
    """One batch, ready to load: rows are tuples in `columns` order."""

    table: TableRef
    columns: list[Column]
    rows: list[tuple]
    keys: list[str]  # column names
    load_method: str
    truncate_first: bool = False  # overwrite: first batch of the run empties the table
    constants: list[tuple[Column, t.Any]] = field(default_factory=list)  # same for every row

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def all_names(self) -> list[str]:
        return [c.name for c in self.columns] + [c.name for c, _ in self.constants]


@dataclass
class MergeCounts:
    inserted: int = 0
    updated: int = 0
    skipped: int = 0  # older than the stored version


@dataclass
class Prepared:
    """A batch converted to what the dialect bulk-loads, minus unloadable rows."""

    batch: Batch
    payload: t.Any
    rejects: list[tuple[int, str]] = field(default_factory=list)  # (row index, reason)


def not_finite_problem(value: t.Any) -> str:
    """What is wrong with NaN/Infinity in a number column (the same in every warehouse)."""
    return (
        f"{value} is not a finite number; NaN and Infinity cannot be stored "
        f"(one would make every SUM over the column NaN)"
    )


def _is_finite(value: t.Any) -> bool:
    if isinstance(value, decimal.Decimal):
        return value.is_finite()
    if isinstance(value, float):
        return math.isfinite(value)
    return True


def non_finite_numbers(batch: Batch) -> dict[int, str]:
    """Row index -> reason, for rows with NaN or +-Infinity in a number column.

    One C-level pass per number column (`Decimal.is_finite` mapped over the column;
    `filter(None, ...)` drops NULLs, and zeros, which are finite); rows are looked at
    one by one only in a column that has a non-finite value (or a non-Decimal one).
    """
    rejects: dict[int, str] = {}
    rows = batch.rows
    for position, column in enumerate(batch.columns):
        if column.sql_type.kind != "numeric" or not rows:
            continue
        try:
            values = filter(None, map(operator.itemgetter(position), rows))
            if all(map(decimal.Decimal.is_finite, values)):
                continue
        except TypeError:  # a float or an int among the Decimals: look at each value
            pass
        for index, row in enumerate(rows):
            value = row[position]
            if value is not None and index not in rejects and not _is_finite(value):
                rejects[index] = f"column {column.name!r}: {not_finite_problem(value)}"
    return rejects


class Warehouse(abc.ABC):
    """A connection to one warehouse database, with the dialect's SQL."""

    dialect: t.ClassVar[str]
    max_identifier_bytes: t.ClassVar[int | None] = None
    case_insensitive_identifiers: t.ClassVar[bool] = False
    forbids_nul_in_text: t.ClassVar[bool] = False

    def __init__(self, url: URL) -> None:
        self.url = url

    @property
    def safe_url(self) -> str:
        """The URL for logs and errors: never the password, in the user part or the query."""
        url = self.url
        secrets = {k: "***" for k in url.query if k.lower() in SECRET_QUERY_KEYS}
        if not secrets:
            return url.render_as_string(hide_password=True)
        rendered = url.update_query_dict(secrets).render_as_string(hide_password=True)
        return rendered.replace("%2A%2A%2A", "***")

    # Connection and statements -------------------------------------------------

    @abc.abstractmethod
    def connect(self) -> None: ...

    @abc.abstractmethod
    def close(self) -> None: ...

    @abc.abstractmethod
    def execute(self, sql: str, params: Sequence[t.Any] = ()) -> int:
        """Run one statement; returns the affected row count where the dialect knows it."""

    @abc.abstractmethod
    def fetchall(self, sql: str, params: Sequence[t.Any] = ()) -> list[tuple]: ...

    @abc.abstractmethod
    def executemany(self, sql: str, rows: Sequence[Sequence[t.Any]]) -> None: ...

    @abc.abstractmethod
    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """All statements inside commit together or not at all."""

    # Types and identifiers -----------------------------------------------------

    @staticmethod
    def quote(identifier: str) -> str:
        return '"' + identifier.replace('"', '""') + '"'

    def qualified(self, table: TableRef) -> str:
        return f"{self.quote(table.schema)}.{self.quote(table.name)}"

    @abc.abstractmethod
    def render_type(self, sql_type: SqlType) -> str: ...

    @abc.abstractmethod
    def parse_type(self, data_type: str, length: int | None, scale: int | None) -> SqlType:
        """The SqlType of an existing column, from information_schema.columns."""

    def effective_type(self, wanted: SqlType) -> SqlType:
        """What `wanted` becomes in this warehouse (DuckDB has no VARCHAR(n))."""
        return wanted

    def widened(self, existing: SqlType, wanted: SqlType) -> SqlType | None:
        """The type to ALTER to, `existing` if it already holds `wanted`, None if unsafe."""
        existing, wanted = self.effective_type(existing), self.effective_type(wanted)
        if existing == wanted:
            return existing
        if existing.kind == "text" and wanted.kind == "varchar":
            return existing
        if existing.kind == "varchar" and wanted.kind == "text":
            return wanted
        if existing.kind == wanted.kind == "varchar":
            return existing if (existing.length or 0) >= (wanted.length or 0) else wanted
        if existing.kind == "numeric" and wanted.kind in ("bigint", "numeric"):
            if wanted.kind == "bigint" or (wanted.scale or 0) <= (existing.scale or 0):
                return existing
            return None
        if existing.kind == "bigint" and wanted.kind == "numeric":
            return wanted
        return None

    # Tables -----------------------------------------------------------------------

    def ensure_schema(self, schema: str) -> None:
        self.execute(f"CREATE SCHEMA IF NOT EXISTS {self.quote(schema)}")

    def existing_columns(self, table: TableRef) -> dict[str, SqlType] | None:
        """Columns of `table` in order, or None when it does not exist."""
        rows = self.fetchall(
            "SELECT column_name, data_type, character_maximum_length, numeric_scale "
            "FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2 "
            "ORDER BY ordinal_position",
            (table.schema, table.name),
        )
        if not rows:
            return None
        return {name: self.parse_type(dt, length, scale) for name, dt, length, scale in rows}

    @abc.abstractmethod
    def primary_key(self, table: TableRef) -> list[str]: ...

    def note_table_state(self, table: TableRef) -> None:  # noqa: B027 - optional hook
        """Called when a stream starts loading into `table` (dialects may look at it)."""

    def create_table(self, table: TableRef, columns: Sequence[Column], keys: Sequence[str]) -> None:
        parts = [
            f"{self.quote(c.name)} {self.render_type(c.sql_type)}"
            + ("" if c.nullable and c.name not in keys else " NOT NULL")
            for c in columns
        ]
        if keys:
            parts.append(f"PRIMARY KEY ({', '.join(self.quote(k) for k in keys)})")
        self.execute(f"CREATE TABLE IF NOT EXISTS {self.qualified(table)} ({', '.join(parts)})")

    def add_column(self, table: TableRef, column: Column) -> None:
        self.execute(
            f"ALTER TABLE {self.qualified(table)} ADD COLUMN {self.quote(column.name)} "
            f"{self.render_type(column.sql_type)}"
        )

    def alter_type(self, table: TableRef, column: str, sql_type: SqlType) -> None:
        self.execute(
            f"ALTER TABLE {self.qualified(table)} ALTER COLUMN {self.quote(column)} "
            f"TYPE {self.render_type(sql_type)}"
        )

    # Loading ------------------------------------------------------------------------

    @abc.abstractmethod
    def prepare(self, batch: Batch) -> Prepared:
        """Convert rows for the bulk path; rows the warehouse cannot hold become rejects.

        Runs outside the transaction; `merge` then loads `Prepared.payload`.
        """

    @abc.abstractmethod
    def merge(self, prepared: Prepared) -> MergeCounts:
        """Bulk-load and merge one batch inside the caller's transaction."""

    def version_guard(self, incoming: str, stored: str) -> str:
        """SQL that is true when version `incoming` may replace `stored` (see merge.py).

        Digit strings compare as numbers: longer (without leading zeros) is newer, equal
        length compares as text. Other strings compare as text in code-point order.
        """
        inc, sto = f"ltrim({incoming}, '0')", f"ltrim({stored}, '0')"
        numeric = (
            f"(length({inc}) > length({sto}) OR "
            f"(length({inc}) = length({sto}) AND {inc}{self.binary_collation} >= {sto}))"
        )
        return (
            f"({incoming} IS NULL OR {stored} IS NULL OR CASE WHEN "
            f"{self.is_digits(incoming)} AND {self.is_digits(stored)} THEN {numeric} "
            f"ELSE {incoming}{self.binary_collation} >= {stored} END)"
        )

    binary_collation: t.ClassVar[str] = ""

    @abc.abstractmethod
    def is_digits(self, expression: str) -> str: ...

    def constant_sql(self, batch: Batch, first_param: int = 1) -> tuple[list[str], list[t.Any]]:
        """SQL expressions (typed, bound) for a batch's constant columns, and their values."""
        expressions, params = [], []
        for column, value in batch.constants:
            sql_type = self.render_type(column.sql_type)
            if value is None:
                expressions.append(f"CAST(NULL AS {sql_type})")
            else:
                params.append(value)
                expressions.append(f"CAST(${first_param + len(params) - 1} AS {sql_type})")
        return expressions, params

    def key_match(self, left: str, right: str, keys: Sequence[str]) -> str:
        return " AND ".join(f"{left}.{self.quote(k)} = {right}.{self.quote(k)}" for k in keys)

    def retire_statement(
        self, table: TableRef, version: int, *, hard_delete: bool, deleted_at: t.Any
    ) -> tuple[str, tuple[t.Any, ...]]:
        """ACTIVATE_VERSION's statement and its parameters (see `retire_old_versions`)."""
        tv = self.quote(TABLE_VERSION_COLUMN)
        old = f"({tv} IS NULL OR {tv} < $1)"
        if hard_delete:
            return f"DELETE FROM {self.qualified(table)} WHERE {old}", (version,)
        deleted = self.quote(DELETED_AT_COLUMN)
        return (
            f"UPDATE {self.qualified(table)} SET {deleted} = $2 WHERE {old} AND {deleted} IS NULL",
            (version, deleted_at),
        )

    def retire_old_versions(
        self, table: TableRef, version: int, *, hard_delete: bool, deleted_at: t.Any
    ) -> int:
        """ACTIVATE_VERSION: rows not seen in full-table version `version` are gone in IFS.

        Deleted (`hard_delete`) or marked `_sdc_deleted_at`; returns how many rows.
        """
        sql, params = self.retire_statement(
            table, version, hard_delete=hard_delete, deleted_at=deleted_at
        )
        return self.execute(sql, params)

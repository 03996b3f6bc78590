"""The warehouse interface: everything dialect-specific sits behind `Warehouse`.

The sinks speak only this interface: create/evolve a table from a column plan,
stage a batch in bulk, merge it with the version guard, and run audit statements.
A new dialect (Snowflake, BigQuery) subclasses `Warehouse` and registers its URL
backend in `target_looker.warehouse.DIALECTS`; sinks and audit do not change.
SQL parameters use `$1, $2, ...` in every dialect.

Several loaders may write one warehouse at once (two scheduled jobs, a replay next to
a run). So:
- `run_transaction(fn)` runs `fn` in a transaction and, when the warehouse cancels it
  for a deadlock or a serialization failure (`is_retryable`), rolls it back and runs
  `fn` again from the start, a bounded number of times with a short jittered backoff.
- Creating and evolving tables (`ensure_schema`, `create_table`, `add_column`,
  `alter_type`) each run as a transaction that first takes the warehouse's DDL lock
  for the object (`ddl_lock`; PostgreSQL: an advisory lock), then re-reads what exists
  and changes only what is still missing. "Already exists" from a loader that does
  not take the lock is retried the same way, and then found by the re-read.

`load_method: overwrite` (target_looker/overwrite.py) loads a shadow table beside the
table (`create_shadow`) and swaps it in with `swap_in`, inside one transaction: rename
the old table away, rename the shadow in, drop the old one. A dialect whose DDL cannot
run inside a transaction overrides `swap_in` with its own atomic replacement, and
`table_names` where `information_schema.tables` is not the catalog.
"""

# SQL here is built from identifiers passed through Warehouse.quote (tested) and
# fixed fragments; every value is a bound $n parameter.
# ruff: noqa: S608

from __future__ import annotations

import abc
import contextlib
import decimal
import hashlib
import logging
import math
import operator
import random
import time
import typing as t
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import msgspec

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
logger = logging.getLogger("target-looker.warehouse")
T = t.TypeVar("T")
#: JSON text with every Decimal as an exact JSON number (JSON columns, COPY rows, params)
encode_json = msgspec.json.Encoder(decimal_format="number").encode


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
    #: No longer set by the target: an overwrite loads a shadow table and swaps it in
    #: (target_looker/overwrite.py). Kept False for dialect modules that still read it.
    truncate_first: bool = False
    constants: list[tuple[Column, t.Any]] = field(default_factory=list)  # same for every row

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def all_names(self) -> list[str]:
        return [c.name for c in self.columns] + [c.name for c, _ in self.constants]

    @property
    def carries_table_versions(self) -> bool:
        """Whether a row has a full-table sync's version: only then can a stored row need
        its version confirmed (an incremental sync's rows have none)."""
        names = self.column_names
        if TABLE_VERSION_COLUMN not in names:
            return False
        position = names.index(TABLE_VERSION_COLUMN)
        return any(row[position] is not None for row in self.rows)


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


def lock_key(name: str) -> int:
    """A signed 64-bit key (PostgreSQL advisory locks) naming `name` for every loader."""
    digest = hashlib.sha256(f"target-looker ddl {name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _first_line(exc: BaseException) -> str:
    """An error's first line, for a log line (details may quote statements or values)."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


class Warehouse(abc.ABC):
    """A connection to one warehouse database, with the dialect's SQL."""

    dialect: t.ClassVar[str]
    max_identifier_bytes: t.ClassVar[int | None] = None
    case_insensitive_identifiers: t.ClassVar[bool] = False
    forbids_nul_in_text: t.ClassVar[bool] = False
    #: `run_transaction`: runs of a transaction the warehouse keeps cancelling, in all.
    transaction_attempts: t.ClassVar[int] = 6
    #: First backoff in seconds; doubles each time (at most `retry_max_delay`), jittered.
    retry_base_delay: t.ClassVar[float] = 0.05
    retry_max_delay: t.ClassVar[float] = 2.0

    def __init__(self, url: URL) -> None:
        self.url = url

    @property
    def default_schema(self) -> str | None:
        """The schema the URL names, where the dialect's URLs name one (BigQuery, Snowflake)."""
        return None

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

    def refresh_statistics(self) -> list[TableRef]:
        """After a run's last batch: bring the planner's statistics up to date where the
        warehouse does not (see PostgresWarehouse). Returns the tables refreshed."""
        return []

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

    def in_transaction(self) -> bool:
        """Whether a transaction is open (a `transaction()` inside it is nested)."""
        return False

    def is_retryable(self, exc: BaseException) -> bool:
        """Whether a transaction that failed with `exc` (and was rolled back) may succeed
        when run again from its start: a deadlock victim, a serialization failure."""
        return False

    def is_already_exists(self, exc: BaseException) -> bool:
        """Whether DDL failed because another session created the object meanwhile."""
        return False

    def run_transaction(
        self,
        fn: Callable[[], T],
        *,
        retry_if: Callable[[BaseException], bool] | None = None,
        what: str = "transaction",
    ) -> T:
        """`fn()` inside one transaction; what it returns.

        When the transaction fails with an error `retry_if` accepts
        (default `is_retryable`: deadlock, serialization failure), everything `fn` did
        is rolled back, and `fn` runs again from its start after a short jittered
        backoff, up to `transaction_attempts` runs in all; then the error is raised.
        `fn` must be safe to run again: it must redo all of its writes, and state it
        keeps outside the warehouse must not assume an earlier run committed.

        Inside an open transaction `fn` just runs (as a nested transaction), without
        retries: only the outermost transaction can be run again.
        """
        if self.in_transaction():
            with self.transaction():
                return fn()
        retry_if = retry_if or self.is_retryable
        attempt = 1
        while True:
            try:
                with self.transaction():
                    return fn()
            except Exception as exc:
                if attempt >= self.transaction_attempts or not retry_if(exc):
                    raise
                delay = self.retry_delay(attempt)
                logger.warning(
                    "%s failed (%s: %s); rolled back, running it again in %.2f s "
                    "(attempt %d of %d)",
                    what,
                    type(exc).__name__,
                    _first_line(exc),
                    delay,
                    attempt + 1,
                    self.transaction_attempts,
                )
                time.sleep(delay)
                attempt += 1

    def retry_delay(self, attempt: int) -> float:
        """Seconds to wait after failed run `attempt` (1, 2, ...): exponential, jittered,
        so two loaders that deadlocked do not meet again in lock step."""
        ceiling = min(self.retry_max_delay, self.retry_base_delay * 2 ** (attempt - 1))
        return ceiling * random.uniform(0.5, 1.0)

    # Types and identifiers -----------------------------------------------------

    #: The type SQL casts text to (generated LookML concatenates compound keys with it).
    sql_text_type = "VARCHAR"

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

    # Tables: the statements ------------------------------------------------------------

    def create_schema_sql(self, schema: str) -> str:
        return f"CREATE SCHEMA IF NOT EXISTS {self.quote(schema)}"

    def check_names(self, table: TableRef, columns: Sequence[Column] = ()) -> None:  # noqa: B027
        """Raise a clear error for a name the warehouse refuses (nothing to check here)."""

    def column_type(self, table: TableRef, column: Column) -> str:
        """The type of `column` in `table`, rendered (a dialect may depend on the table)."""
        return self.render_type(column.sql_type)

    def create_table_sql(
        self, table: TableRef, columns: Sequence[Column], keys: Sequence[str]
    ) -> str:
        self.check_names(table, columns)
        parts = [
            f"{self.quote(c.name)} {self.column_type(table, c)}"
            + ("" if c.nullable and c.name not in keys else " NOT NULL")
            for c in columns
        ]
        if keys:
            key = ", ".join(self.quote(k) for k in keys)
            parts.append(f"PRIMARY KEY ({key}){self.primary_key_enforcement}")
        return f"CREATE TABLE IF NOT EXISTS {self.qualified(table)} ({', '.join(parts)})"

    def add_column_sql(self, table: TableRef, column: Column) -> str:
        self.check_names(table, [column])
        return (
            f"ALTER TABLE {self.qualified(table)} ADD COLUMN IF NOT EXISTS "
            f"{self.quote(column.name)} {self.column_type(table, column)}"
        )

    #: After a primary key's column list (BigQuery: " NOT ENFORCED").
    primary_key_enforcement: t.ClassVar[str] = ""
    #: What ALTER COLUMN says before a new type ("SET DATA TYPE" on BigQuery and Snowflake).
    alter_type_words: t.ClassVar[str] = "TYPE"

    def alter_type_sql(self, table: TableRef, column: str, sql_type: SqlType) -> str:
        return (
            f"ALTER TABLE {self.qualified(table)} ALTER COLUMN {self.quote(column)} "
            f"{self.alter_type_words} {self.render_type(sql_type)}"
        )

    # Tables: created and evolved safely next to other loaders --------------------------------

    def ddl_lock(self, name: str) -> None:  # noqa: B027 - optional hook
        """Inside a transaction: wait until no other loader is changing `name` (a schema or
        a table), and keep it so until the transaction ends. No-op where one process
        writes at a time (DuckDB)."""

    def guarded_ddl(self, name: str, fn: Callable[[], T]) -> T:
        """`fn` (which re-reads what exists, then changes what is missing) in a transaction
        holding the DDL lock of `name`; run again if another session got there first."""

        def locked() -> T:
            self.ddl_lock(name)
            return fn()

        return self.run_transaction(
            locked,
            retry_if=lambda exc: self.is_retryable(exc) or self.is_already_exists(exc),
            what=f"changing the definition of {name}",
        )

    def ensure_schema(self, schema: str) -> None:
        self.guarded_ddl(
            f"schema {self.quote(schema)}", lambda: self.execute(self.create_schema_sql(schema))
        )

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

    def _table_lock_name(self, table: TableRef) -> str:
        return f"table {self.quote(table.schema)}.{self.quote(table.name)}"

    def create_table(self, table: TableRef, columns: Sequence[Column], keys: Sequence[str]) -> None:
        """Create `table`; if another loader created it first, give it what it lacks.

        The table found then must have the same primary key, and columns that hold
        `columns` (or can be widened to); missing columns are added.
        """

        def create() -> None:
            existing = self.existing_columns(table)
            if existing is None:
                self.execute(self.create_table_sql(table, columns, keys))
            else:
                self._evolve(table, columns, keys, existing)

        self.guarded_ddl(self._table_lock_name(table), create)

    def add_column(self, table: TableRef, column: Column) -> None:
        """Add `column`; if another loader added it first, make sure it holds `column`."""

        def add() -> None:
            existing = self.existing_columns(table) or {}
            current = self._find_column(existing, column.name)
            if current is None:
                self.execute(self.add_column_sql(table, column))
            else:
                self._widen(table, current, existing[current], column.sql_type)

        self.guarded_ddl(self._table_lock_name(table), add)

    def alter_type(self, table: TableRef, column: str, sql_type: SqlType) -> None:
        """Change `column` to `sql_type`, unless another loader has meanwhile made it a
        type that already holds `sql_type` (never narrowed back)."""

        def alter() -> None:
            existing = self.existing_columns(table) or {}
            current = self._find_column(existing, column)
            current_type = existing.get(current) if current is not None else None
            if current is None or current_type is None:
                self.execute(self.alter_type_sql(table, column, sql_type))
                return
            wanted = self.widened(current_type, sql_type) or sql_type
            if wanted != self.effective_type(current_type):
                self.execute(self.alter_type_sql(table, current, wanted))

        self.guarded_ddl(self._table_lock_name(table), alter)

    def _find_column(self, existing: dict[str, SqlType], name: str) -> str | None:
        if name in existing:
            return name
        if self.case_insensitive_identifiers:
            folded = name.casefold()
            return next((n for n in existing if n.casefold() == folded), None)
        return None

    def _widen(self, table: TableRef, name: str, current: SqlType, wanted: SqlType) -> None:
        target = self.widened(current, wanted)
        if target is None:
            raise WarehouseError(
                f"column {name!r} of {self.qualified(table)} is {current.describe()} (another "
                f"loader made it so) but this load needs {wanted.describe()}; only widening is "
                f"automatic. Change the column by hand or load into a new table."
            )
        if target != self.effective_type(current):
            self.execute(self.alter_type_sql(table, name, target))

    def _evolve(
        self,
        table: TableRef,
        columns: Sequence[Column],
        keys: Sequence[str],
        existing: dict[str, SqlType],
    ) -> None:
        """An existing `table`, made to hold `columns` keyed by `keys` (inside the lock)."""
        if keys:
            current_key = self.primary_key(table)
            if current_key != list(keys):
                raise WarehouseError(
                    f"table {self.qualified(table)} has primary key {current_key or 'none'} "
                    f"but this load keys it by {list(keys)}; a key change needs a new table "
                    f"(drop or rename the old one) or load_method='append-only'"
                )
        for column in columns:
            current = self._find_column(existing, column.name)
            if current is None:
                self.execute(self.add_column_sql(table, column))
            else:
                self._widen(table, current, existing[current], column.sql_type)

    # Overwrite: a table replaced whole by one loaded beside it ----------------------

    def table_names(self, schema: str) -> list[str]:
        """The names of the tables in `schema`."""
        return [
            row[0]
            for row in self.fetchall(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = $1",
                (schema,),
            )
        ]

    def rename_table_sql(self, table: TableRef, new_name: str) -> str:
        """`table` renamed `new_name`, in the same schema."""
        return f"ALTER TABLE {self.qualified(table)} RENAME TO {self.quote(new_name)}"

    def drop_table_sql(self, table: TableRef, *, if_exists: bool = False) -> str:
        """Never CASCADE: an object that depends on the table (a view) makes it fail."""
        return f"DROP TABLE {'IF EXISTS ' if if_exists else ''}{self.qualified(table)}"

    def create_like_sql(self, new: TableRef, like: TableRef) -> str | None:
        """The dialect's statement creating `new` empty and defined like `like` (with its
        primary key), or None: `create_shadow` builds it from `like`'s columns."""
        return None

    def drop_table(self, table: TableRef) -> None:
        """Drop `table` if it exists, in a transaction of its own."""
        self.run_transaction(
            lambda: self.execute(self.drop_table_sql(table, if_exists=True)),
            what=f"dropping {self.qualified(table)}",
        )

    def create_shadow(self, shadow: TableRef, table: TableRef) -> None:
        """Create `shadow` empty, with the columns, types and primary key of `table`
        (which exists); a table already named `shadow` is dropped first.

        Holds `table`'s DDL lock, so no other loader changes its definition meanwhile.
        """

        def create() -> None:
            if self.existing_columns(shadow) is not None:
                self.execute(self.drop_table_sql(shadow))
            sql = self.create_like_sql(shadow, table)
            if sql is None:
                existing = self.existing_columns(table)
                if existing is None:
                    raise WarehouseError(
                        f"table {self.qualified(table)} disappeared while it was being loaded"
                    )
                columns = [Column(name, sql_type) for name, sql_type in existing.items()]
                sql = self.create_table_sql(shadow, columns, self.primary_key(table))
            self.execute(sql)

        self.guarded_ddl(self._table_lock_name(table), create)

    def swap_statements(
        self, table: TableRef, shadow: TableRef, retired: TableRef, *, table_exists: bool
    ) -> list[str]:
        """The statements that make `shadow` the table named `table`: the old table is
        renamed `retired`, `shadow` takes its name, the old one is dropped (a dependent
        object fails the DROP, and so the transaction). A dialect may read the catalog
        here (e.g. the grants to carry over)."""
        if not table_exists:
            return [self.rename_table_sql(shadow, table.name)]
        return [
            self.rename_table_sql(table, retired.name),
            self.rename_table_sql(shadow, table.name),
            self.drop_table_sql(retired),
        ]

    def swap_in(self, table: TableRef, shadow: TableRef, retired: TableRef) -> None:
        """Inside the caller's transaction: `shadow` replaces `table` (see `swap_statements`).

        Readers see the old table until the transaction commits, then the new one. Holds
        `table`'s DDL lock.
        """
        self.ddl_lock(self._table_lock_name(table))
        exists = self.existing_columns(table) is not None
        for sql in self.swap_statements(table, shadow, retired, table_exists=exists):
            self.execute(sql)

    def error_text(self, exc: BaseException) -> str:
        """An error of this warehouse in one line for a message (details where known)."""
        return _first_line(exc)

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

    def confirm_presence_sql(
        self, target: str, source: str, match: str, staged_version: str | None = None
    ) -> str:
        """Rows a full-table sync skipped as older still exist in IFS: the UPDATE that gives
        them the sync's version (and undoes a soft delete), out of ACTIVATE_VERSION's reach.

        `source`: the staged rows (a table or a parenthesised SELECT), aliased `s`; `match`
        pairs `t` and `s` by key; `staged_version`: the staged version's expression, when it
        is not `s.<column>`.
        """
        tv, deleted = self.quote(TABLE_VERSION_COLUMN), self.quote(DELETED_AT_COLUMN)
        staged = staged_version or f"s.{tv}"
        return (
            f"UPDATE {target} AS t SET {tv} = {staged}, {deleted} = NULL "
            f"FROM {source} AS s WHERE {match} "
            f"AND {staged} IS NOT NULL AND (t.{tv} IS NULL OR t.{tv} < {staged})"
        )

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

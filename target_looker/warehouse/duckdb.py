"""DuckDB warehouse (the embedded default): Arrow bulk append, then UPDATE + INSERT.

Batches go in as Arrow tables (never through DuckDB's CSV sniffer, which can take
a data row for a header). Decimal columns are DECIMAL(38, s): a value with more
digits than the column holds is rejected here, before loading, never rounded.

A DuckDB file has one writing process at a time: a second target (or anything else
holding the file) makes `connect` fail with a one-line `WarehouseError` naming the
file and the process that holds it.
"""

# SQL here is built from identifiers passed through Warehouse.quote (tested) and
# fixed fragments; every value is a bound $n parameter.
# ruff: noqa: S608

from __future__ import annotations

import contextlib
import dataclasses
import decimal
import math
import re
import typing as t
from collections.abc import Iterator, Sequence
from pathlib import Path

import duckdb
import pyarrow as pa

from target_looker.columns import Column, SqlType
from target_looker.warehouse.base import (
    APPEND_ONLY,
    TABLE_VERSION_COLUMN,
    VERSION_COLUMN,
    Batch,
    MergeCounts,
    Prepared,
    TableRef,
    Warehouse,
    WarehouseError,
    encode_json,
    not_finite_problem,
)

PRECISION = 38
DEFAULT_SCALE = 9
_STAGE = "target_looker_stage"
DEFAULT_MEMORY_LIMIT = "128MB"
# DuckDB checkpoints (moves the WAL into the file, recompressing the table's last row
# group) once the WAL passes this; at its default of 16 MB, every batch of wide rows did.
DEFAULT_CHECKPOINT_THRESHOLD = "256MB"
# DuckDB's words for a file another process has open: 'Could not set lock on file
# "/x.duckdb": Conflicting lock is held in /usr/bin/python3 (PID 1234). See also ...'.
_LOCKED = "Could not set lock on file"
_HOLDER = re.compile(r"Conflicting lock is held in (?P<program>.+?) \(PID (?P<pid>\d+)\)")

_TYPES = {
    "text": "VARCHAR",
    "bigint": "BIGINT",
    "date": "DATE",
    "timestamptz": "TIMESTAMP WITH TIME ZONE",
    "time": "TIME",
    "boolean": "BOOLEAN",
    "json": "JSON",
}
_PARSED = {v: k for k, v in _TYPES.items()}
_ARROW = {
    "text": pa.string(),
    "bigint": pa.int64(),
    "date": pa.date32(),
    "timestamptz": pa.timestamp("us", tz="UTC"),
    "time": pa.time64("us"),
    "boolean": pa.bool_(),
    "json": pa.string(),
}


def decimal_problem(value: decimal.Decimal | float, scale: int) -> str | None:
    """Why `value` does not fit DECIMAL(38, scale), or None when it does."""
    if isinstance(value, float | int):
        if not math.isfinite(value):
            return not_finite_problem(value)
        value = decimal.Decimal(repr(value)) if isinstance(value, float) else decimal.Decimal(value)
    if not value.is_finite():
        return not_finite_problem(value)
    _, digits, exponent = value.as_tuple()
    extra_places = -int(exponent) - scale
    if extra_places > 0 and any(digits[-extra_places:]):
        return f"{value} has more than {scale} decimal places"
    if value.adjusted() >= PRECISION - scale:
        return f"{value} has more than {PRECISION - scale} digits before the decimal point"
    return None


class DuckDBWarehouse(Warehouse):
    dialect = "duckdb"
    case_insensitive_identifiers = True

    def __init__(self, url) -> None:
        super().__init__(url)
        self._con: duckdb.DuckDBPyConnection | None = None
        self._catalog = ""
        self._in_transaction = False

    @property
    def path(self) -> str:
        return self.url.database or ":memory:"

    def connect(self) -> None:
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        # DuckDB's default buffer pool is 80% of RAM; a loader should stay bounded.
        query = self.url.query
        config = {
            "memory_limit": str(query.get("memory_limit", DEFAULT_MEMORY_LIMIT)),
            "checkpoint_threshold": str(
                query.get("checkpoint_threshold", DEFAULT_CHECKPOINT_THRESHOLD)
            ),
        }
        try:
            self._con = duckdb.connect(self.path, config=config)
        except duckdb.IOException as exc:
            if _LOCKED not in str(exc):
                raise
            found = _HOLDER.search(str(exc))
            holder = (
                f"PID {found.group('pid')}, {' '.join(found.group('program').split())}"
                if found
                else "DuckDB does not say which"
            )
            raise WarehouseError(
                f"the DuckDB file {self.path} is in use by another process ({holder}); "
                f"DuckDB allows one writing process per file: run the loads one after "
                f"another, or load into PostgreSQL to run them at the same time"
            ) from None
        self._con.execute("SET TimeZone = 'UTC'")
        # Qualify with the catalog: a schema named like the file would be ambiguous.
        [(self._catalog,)] = self._con.execute("SELECT current_database()").fetchall()

    @property
    def con(self) -> duckdb.DuckDBPyConnection:
        if self._con is None:
            self.connect()
        return t.cast("duckdb.DuckDBPyConnection", self._con)

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None

    def execute(self, sql: str, params: Sequence[t.Any] = ()) -> int:
        result = self.con.execute(sql, list(params) if params else None)
        try:
            row = result.fetchone()
        except duckdb.InvalidInputException:
            return -1
        return int(row[0]) if row and isinstance(row[0], int) else -1

    def fetchall(self, sql: str, params: Sequence[t.Any] = ()) -> list[tuple]:
        return self.con.execute(sql, list(params) if params else None).fetchall()

    def executemany(self, sql: str, rows: Sequence[Sequence[t.Any]]) -> None:
        if rows:
            self.con.executemany(sql, [list(r) for r in rows])

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """One transaction; a nested one is part of it (DuckDB has no savepoints)."""
        if self._in_transaction:
            yield
            return
        self.con.begin()
        self._in_transaction = True
        try:
            yield
        except BaseException:
            self._in_transaction = False
            self.con.rollback()
            raise
        self._in_transaction = False
        self.con.commit()

    def in_transaction(self) -> bool:
        return self._in_transaction

    def is_retryable(self, exc: BaseException) -> bool:
        """A write-write conflict between two connections of this process."""
        return isinstance(exc, duckdb.TransactionException) and "conflict" in str(exc).lower()

    def is_already_exists(self, exc: BaseException) -> bool:
        return isinstance(exc, duckdb.CatalogException) and "already exists" in str(exc)

    def qualified(self, table: TableRef) -> str:
        _ = self.con
        return f"{self.quote(self._catalog)}.{super().qualified(table)}"

    def create_schema_sql(self, schema: str) -> str:
        _ = self.con
        return f"CREATE SCHEMA IF NOT EXISTS {self.quote(self._catalog)}.{self.quote(schema)}"

    def effective_type(self, wanted: SqlType) -> SqlType:
        if wanted.kind == "varchar":
            return SqlType("text")  # DuckDB ignores VARCHAR lengths; decoding enforces them
        if wanted.kind == "numeric":
            return SqlType("numeric", scale=min(PRECISION, max(DEFAULT_SCALE, wanted.scale or 0)))
        return wanted

    def render_type(self, sql_type: SqlType) -> str:
        sql_type = self.effective_type(sql_type)
        if sql_type.kind == "numeric":
            return f"DECIMAL({PRECISION},{sql_type.scale})"
        return _TYPES[sql_type.kind]

    def parse_type(self, data_type: str, length: int | None, scale: int | None) -> SqlType:
        if data_type.startswith("DECIMAL"):
            return SqlType("numeric", scale=scale)
        return SqlType(_PARSED.get(data_type, data_type.lower()))

    def is_digits(self, expression: str) -> str:
        return f"regexp_full_match({expression}, '[0-9]+')"

    def primary_key(self, table: TableRef) -> list[str]:
        rows = self.fetchall(
            "SELECT constraint_column_names FROM duckdb_constraints() "
            "WHERE schema_name = $1 AND table_name = $2 AND constraint_type = 'PRIMARY KEY'",
            (table.schema, table.name),
        )
        return list(rows[0][0]) if rows else []

    # Loading ------------------------------------------------------------------------

    def _arrow_type(self, sql_type: SqlType) -> pa.DataType:
        effective = self.effective_type(sql_type)
        if effective.kind == "numeric":
            return pa.decimal128(PRECISION, effective.scale)
        return _ARROW[effective.kind]

    def prepare(self, batch: Batch) -> Prepared:
        rows = batch.rows
        rejects: dict[int, str] = {}
        columns = list(zip(*rows, strict=True)) if rows else [() for _ in batch.columns]
        # The Arrow arrays that checked the numeric columns are the ones loaded (a
        # Decimal's conversion costs more than anything else here): only a batch with
        # rejects converts again, without them.
        checked: dict[int, pa.Array] = {}
        for position, column in enumerate(batch.columns):
            if column.sql_type.kind != "numeric":
                continue
            arrow_type = self._arrow_type(column.sql_type)
            try:
                checked[position] = pa.array(columns[position], type=arrow_type)
            except (pa.ArrowInvalid, pa.ArrowTypeError, decimal.InvalidOperation):
                for i, value in enumerate(columns[position]):
                    if value is not None and i not in rejects:
                        problem = decimal_problem(value, arrow_type.scale)
                        if problem:
                            rejects[i] = f"column {column.name!r}: {problem}"
        if rejects:
            rows = [row for i, row in enumerate(rows) if i not in rejects]
            columns = list(zip(*rows, strict=True)) if rows else [() for _ in batch.columns]
            checked.clear()
        arrays = [
            checked[position] if position in checked else self._arrow_array(column, values)
            for position, (column, values) in enumerate(zip(batch.columns, columns, strict=True))
        ]
        table = pa.Table.from_arrays(arrays, names=[f"c{i}" for i in range(len(arrays))])
        return Prepared(dataclasses.replace(batch, rows=rows), table, sorted(rejects.items()))

    def _arrow_array(self, column: Column, values: Sequence[t.Any]) -> pa.Array:
        """One column's values as the Arrow array staged for it (JSON as text)."""
        if column.sql_type.kind == "json":
            values = [None if v is None else encode_json(v).decode() for v in values]
        return pa.array(values, type=self._arrow_type(column.sql_type))

    def merge(self, prepared: Prepared) -> MergeCounts:
        batch = prepared.batch
        target = self.qualified(batch.table)
        constants, params = self.constant_sql(batch)
        source = {name: f"s.c{i}" for i, name in enumerate(batch.column_names)}
        source.update(zip([c.name for c, _ in batch.constants], constants, strict=True))
        names = batch.all_names
        columns = ", ".join(self.quote(c) for c in names)
        select = ", ".join(source[c] for c in names)
        self.con.register(_STAGE, prepared.payload)
        try:
            if not batch.keys or batch.load_method == APPEND_ONLY:
                inserted = self.execute(
                    f"INSERT INTO {target} ({columns}) SELECT {select} FROM {_STAGE} AS s", params
                )
                return MergeCounts(inserted=inserted)
            match = " AND ".join(f"t.{self.quote(k)} = {source[k]}" for k in batch.keys)
            guard = self.version_guard(source[VERSION_COLUMN], f"t.{self.quote(VERSION_COLUMN)}")
            updates = ", ".join(
                f"{self.quote(c)} = {source[c]}" for c in names if c not in batch.keys
            )
            updated = self.execute(
                f"UPDATE {target} AS t SET {updates} FROM {_STAGE} AS s WHERE {match} AND {guard}",
                params,
            )
            inserted = self.execute(
                f"INSERT INTO {target} ({columns}) SELECT {select} FROM {_STAGE} AS s "
                f"WHERE NOT EXISTS (SELECT 1 FROM {target} AS t WHERE {match})",
                params,
            )
            if batch.carries_table_versions:  # else the UPDATE would only scan the table
                staged = source[TABLE_VERSION_COLUMN]
                self.execute(self.confirm_presence_sql(target, _STAGE, match, staged))
        finally:
            self.con.unregister(_STAGE)
        return MergeCounts(inserted, updated, prepared.payload.num_rows - inserted - updated)

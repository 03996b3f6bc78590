"""`write_path: looker_sql_runner`: PostgreSQL written through Looker's SQL Runner.

For sites where the target has Looker API credentials but no route to the warehouse:
every statement goes through `POST /sql_queries` + `POST /sql_queries/{slug}/run/json`
on the Looker connection. The SQL is the PostgreSQL dialect's own (`PostgresDialect`,
whose `staged_merge` hands out the merge's statements as text); only the transport
differs from `PostgresWarehouse`:

- SQL Runner has no bind parameters, so `$n` parameters become literals through
  `sql_literal` (tested: quotes, backslashes, newlines, unicode; NUL refused).
- SQL Runner has no sessions, so a transaction is one SQL Runner call: statements
  inside `transaction()` are buffered and sent as one `BEGIN; ...; COMMIT;` script,
  which the database applies all or nothing. COPY into the staging table becomes
  multi-row `INSERT ... VALUES` of literals.
- The merge's inserted/updated counts are needed (for the audit rows in the same
  transaction) before the script runs, so they are predicted with a read of the
  stored keys and versions, and the script re-checks them: if another writer
  changed the table in between, the script fails and nothing is written.
- SQL Runner reports no row counts: ACTIVATE_VERSION's statement runs at once, as its
  own transaction, wrapped in a query that counts the rows it changed.
- Next to other loaders: on a PostgreSQL connection (Looker's `dialect_name`), DDL
  scripts take the dialect's advisory lock before their `IF NOT EXISTS` statements, so
  two first loads do not race on the catalogs; "already exists" is retried anyway. A script
  the database cancelled (deadlock, serialization failure) or whose predicted counts
  did not come true (another writer got in between) wrote nothing: `run_transaction`
  predicts and sends it again.
- A 401 makes the client log in again and resend the run once (Looker checks the
  session before it runs any SQL). A transaction whose answer is lost (dropped
  connection, gateway error) may be resent by the retry policy: every write
  transaction first inserts its id into the ledger table `_looker_sql_runner_txns`,
  so a second execution fails on the ledger's primary key, and the ledger then
  tells whether the first committed. Nothing is written twice.

It is slower than the direct path and subject to Looker API quotas.
"""

# SQL here is the PostgreSQL dialect's (identifiers quoted, values as $n parameters);
# `bind` turns $n parameters into literals with the tested `sql_literal`.
# ruff: noqa: S608

from __future__ import annotations

import contextlib
import datetime
import decimal
import logging
import math
import re
import threading
import typing as t
import uuid
from collections.abc import Iterator, Sequence

from sqlalchemy.engine import make_url

from target_looker.looker_api import LookerAPIError, LookerSqlError
from target_looker.merge import is_newer_or_same
from target_looker.warehouse.base import (
    APPEND_ONLY,
    VERSION_COLUMN,
    Batch,
    MergeCounts,
    Prepared,
    TableRef,
    WarehouseError,
)
from target_looker.warehouse.postgres import (
    MERGED_INSERTED,
    MERGED_UPDATED,
    PostgresDialect,
    offset_out_of_range,
    rows_changed,
    select_from_upsert,
)

if t.TYPE_CHECKING:
    from target_looker.looker_api import LookerClient
    from target_looker.refresh import LookerSettings

LEDGER_TABLE = "_looker_sql_runner_txns"
ROWS_PER_STATEMENT = 500
ROWS_PER_PREDICTION = 2000
logger = logging.getLogger("target-looker.sql_runner")
_TOKENS = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|\$(\d+)")
_VALUES_TEMPLATE = re.compile(
    r"^(?P<head>.*\bVALUES\s*)\((?P<params>\$\d+(?:\s*,\s*\$\d+)*)\)\s*$", re.S
)
TABLE_CHANGED = "the table changed while this batch was prepared"
# PostgreSQL's messages (all SQL Runner passes on) for a script worth sending again.
_RETRYABLE_MESSAGES = ("deadlock detected", "could not serialize access", TABLE_CHANGED)
_ALREADY_EXISTS_MESSAGES = ("already exists", "duplicate key value violates unique constraint")


def sql_literal(value: t.Any) -> str:
    """A PostgreSQL literal for `value`, safe to splice into SQL text.

    Strings become escape strings (`E'...'`) with quotes doubled and backslashes
    escaped, so the result does not depend on `standard_conforming_strings`.
    NUL cannot be stored in PostgreSQL text and is refused, as are non-finite numbers
    (the sink and `prepare` have made rejects of both). A timestamp whose UTC offset
    PostgreSQL refuses (16 hours or more) is written as the same instant in UTC.
    """
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, decimal.Decimal):
        if not value.is_finite():
            raise ValueError(f"cannot write the non-finite number {value} to SQL")
        return format(value, "f")
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"cannot write the non-finite number {value} to SQL")
        return repr(value)
    if isinstance(value, datetime.datetime) and offset_out_of_range(value):
        value = value.astimezone(datetime.timezone.utc)
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return _string(value.isoformat())
    if isinstance(value, uuid.UUID):
        return _string(str(value))
    if isinstance(value, str):
        return _string(value)
    raise TypeError(f"no SQL literal for a value of type {type(value).__name__}")


def _string(text: str) -> str:
    if "\x00" in text:
        raise ValueError("a text value contains a NUL (\\u0000) character, which SQL cannot hold")
    return "E'" + text.replace("\\", "\\\\").replace("'", "''") + "'"


def bind(sql: str, params: Sequence[t.Any] = ()) -> str:
    """`sql` with each `$n` outside quotes replaced by the literal of `params[n-1]`."""

    def replace(match: re.Match[str]) -> str:
        if match.group(1) is None:
            return match.group(0)
        index = int(match.group(1))
        if not 1 <= index <= len(params):
            raise WarehouseError(f"SQL refers to ${index} but {len(params)} value(s) were given")
        return sql_literal(params[index - 1])

    return _TOKENS.sub(replace, sql)


def insert_values(table_sql: str, columns: str, rows: Sequence[Sequence[t.Any]]) -> list[str]:
    """Multi-row `INSERT ... VALUES` statements of literals: SQL Runner's stand-in for COPY."""
    statements = []
    for start in range(0, len(rows), ROWS_PER_STATEMENT):
        chunk = rows[start : start + ROWS_PER_STATEMENT]
        values = ",\n".join("(" + ", ".join(sql_literal(v) for v in row) + ")" for row in chunk)
        statements.append(f"INSERT INTO {table_sql} ({columns}) VALUES\n{values}")
    return statements


def expect_merged(expected: MergeCounts) -> str:
    """A select list over an upsert's rows: 1 when they match `expected`, else a SQL error.

    The error (a failed cast, carrying the message) aborts the script's transaction, so
    a batch whose predicted counts did not come true writes nothing.
    """
    inserted, updated = expected.inserted, expected.updated
    return (
        f"CASE WHEN {MERGED_INSERTED} = {inserted} AND {MERGED_UPDATED} = {updated} "
        f"THEN 1 ELSE CAST('target-looker: {TABLE_CHANGED} "
        f"(expected {inserted} inserted, {updated} updated; got ' || {MERGED_INSERTED} "
        f"|| ', ' || {MERGED_UPDATED} || '); nothing was written' AS integer) END"
    )


class LookerSqlRunnerWarehouse(PostgresDialect):
    """PostgreSQL behind a Looker connection, written through the Looker API."""

    def __init__(self, settings: LookerSettings, client: LookerClient | None = None) -> None:
        if not settings.connection_name:
            raise WarehouseError("write_path 'looker_sql_runner' needs looker_connection_name")
        super().__init__(
            make_url(f"postgresql+psycopg://looker-sql-runner/{settings.connection_name}")
        )
        self.settings = settings
        self.connection_name = settings.connection_name
        self._client = client
        self._local = threading.local()  # open transaction per thread, like a DB session
        self._ledger: str | None = None  # qualified name, once a schema is known
        self._dialect_name: str | None = None  # the Looker connection's, once connected

    @property
    def _buffer(self) -> list[str] | None:
        """The statements of this thread's open transaction (None outside one)."""
        return getattr(self._local, "buffer", None)

    @_buffer.setter
    def _buffer(self, value: list[str] | None) -> None:
        self._local.buffer = value

    @property
    def safe_url(self) -> str:
        return f"Looker SQL Runner, connection {self.connection_name!r} at {self.settings.base_url}"

    # transport -----------------------------------------------------------------------------------

    @property
    def client(self) -> LookerClient:
        if self._client is None:
            self._client = self.settings.client()
        return self._client

    def connect(self) -> None:
        """Log in and check the connection exists, so a wrong name fails before any load.

        A failure logs the session out again: the caller gets no warehouse to close.
        """
        try:
            self.client.login()
            connection = self.client.connection(self.connection_name)
        except BaseException:
            self.close()
            raise
        dialect_name = connection.get("dialect_name") if isinstance(connection, dict) else None
        self._dialect_name = dialect_name if isinstance(dialect_name, str) else None

    def ddl_lock(self, name: str) -> None:
        """PostgreSQL's advisory lock when the connection is known to be PostgreSQL
        (`pg_advisory_xact_lock` exists nowhere else); otherwise none."""
        if (self._dialect_name or "").startswith("postgres"):
            super().ddl_lock(name)

    def close(self) -> None:
        """End the Looker session (`DELETE /logout`), as the direct path closes its connection.

        Safe to call twice; a later statement would log in again.
        """
        client, self._client = self._client, None
        if client is not None:
            client.close()

    def run(self, sql: str) -> list[dict]:
        """One SQL Runner round trip; database errors raise LookerSqlError."""
        return self.client.run_sql(self.connection_name, sql)

    def execute(self, sql: str, params: Sequence[t.Any] = ()) -> int:
        """Inside a transaction the statement joins its script; the count is unknown (-1)."""
        bound = bind(sql, params)
        if self._buffer is not None:
            self._buffer.append(bound)
        else:
            self._write([bound])
        return -1

    def fetchall(self, sql: str, params: Sequence[t.Any] = ()) -> list[tuple]:
        return [tuple(row.values()) for row in self.run(bind(sql, params))]

    def executemany(self, sql: str, rows: Sequence[Sequence[t.Any]]) -> None:
        """`INSERT ... VALUES ($1, ...)` becomes multi-row INSERTs; anything else, one per row."""
        if not rows:
            return
        match = _VALUES_TEMPLATE.match(sql)
        if match is None:
            for row in rows:
                self.execute(sql, row)
            return
        template = "(" + match.group("params") + ")"
        for start in range(0, len(rows), ROWS_PER_STATEMENT):
            chunk = rows[start : start + ROWS_PER_STATEMENT]
            values = ", ".join(bind(template, row) for row in chunk)
            self.execute(match.group("head") + values)

    def in_transaction(self) -> bool:
        return self._buffer is not None

    def is_retryable(self, exc: BaseException) -> bool:
        return isinstance(exc, LookerSqlError) and any(
            message in str(exc) for message in _RETRYABLE_MESSAGES
        )

    def is_already_exists(self, exc: BaseException) -> bool:
        return isinstance(exc, LookerSqlError) and any(
            message in str(exc) for message in _ALREADY_EXISTS_MESSAGES
        )

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Statements inside run as one `BEGIN; ...; COMMIT;` SQL Runner call on exit."""
        if self._buffer is not None:  # nested: part of the outer transaction
            yield
            return
        self._buffer = []
        try:
            yield
            statements = self._buffer
        finally:
            self._buffer = None
        if statements:
            self._write(statements)

    # the transaction ledger ----------------------------------------------------------------------

    def ensure_schema(self, schema: str) -> None:
        """The first schema also gets the ledger that makes every write happen once."""
        super().ensure_schema(schema)
        if self._ledger is None:
            ref = TableRef(schema, LEDGER_TABLE)
            ledger = self.qualified(ref)
            create = (
                f"CREATE TABLE IF NOT EXISTS {ledger} (txn_id TEXT PRIMARY KEY, "
                "committed_at TIMESTAMPTZ NOT NULL DEFAULT now())"
            )
            self.guarded_ddl(self._table_lock_name(ref), lambda: self.execute(create))
            self._ledger = ledger

    def _write(self, statements: list[str]) -> list[dict]:
        """Run statements as one transaction, at most once, even when a response is lost.

        Each transaction first records its id in the ledger. If SQL Runner's answer
        never arrives and the client sends the run again, the ledger's primary key stops
        the second execution; either way the ledger says whether the first committed.
        """
        if self._ledger is None:
            return self.run("BEGIN;\n" + ";\n".join(statements) + ";\nCOMMIT;")
        txn = uuid.uuid4().hex
        mark = f"INSERT INTO {self._ledger} (txn_id) VALUES ({sql_literal(txn)})"
        try:
            return self.run("BEGIN;\n" + ";\n".join([mark, *statements]) + ";\nCOMMIT;")
        except LookerAPIError:
            if not self._committed(txn):
                raise
        logger.warning(
            "SQL Runner transaction %s committed but its answer was lost; not running it again",
            txn,
        )
        return []

    def _committed(self, txn: str) -> bool:
        try:
            rows = self.run(
                f"SELECT 1 AS found FROM {self._ledger} WHERE txn_id = {sql_literal(txn)}"
            )
        except LookerAPIError:
            return False
        return bool(rows)

    # loading -------------------------------------------------------------------------------------

    def retire_old_versions(
        self, table: TableRef, version: int, *, hard_delete: bool, deleted_at: t.Any
    ) -> int:
        """Runs at once as its own transaction (even inside `transaction()`), counted.

        SQL Runner reports no row counts, and the caller logs how many rows were retired.
        """
        sql, params = self.retire_statement(
            table, version, hard_delete=hard_delete, deleted_at=deleted_at
        )
        rows = self._write([rows_changed(bind(sql, params))])
        return int(rows[0]["n"]) if rows else -1

    def merge(self, prepared: Prepared) -> MergeCounts:
        """The dialect's staged merge, added to the open transaction's script.

        Always through the staging table: PostgresWarehouse's COPY-into-the-table path
        needs COPY and a savepoint to fall back from, which one SQL Runner call lacks.
        """
        script = self._buffer
        if script is None:
            raise WarehouseError("merge must run inside transaction() on the SQL Runner path")
        batch, rows = prepared.batch, prepared.payload
        statements = self.staged_merge(batch)
        predicted = self._predict(batch, rows)
        script.extend(statements.create_stage)
        script.extend(insert_values(statements.stage, statements.stage_columns, rows))
        if not statements.upsert:
            script.append(bind(statements.write, statements.params))
            return predicted
        checked = select_from_upsert(statements.write, expect_merged(predicted))
        script.append(bind(checked, statements.params))
        if statements.confirm_presence:
            script.append(statements.confirm_presence)
        return predicted

    def _predict(self, batch: Batch, rows: list[tuple]) -> MergeCounts:
        """Inserted/updated/skipped for an upsert of `rows`, from the stored keys and versions.

        The same decision the upsert's version guard makes (target_looker.merge), taken
        before the script runs; `expect_merged` makes the script check it came true.
        """
        if not batch.keys or batch.load_method == APPEND_ONLY or not rows:
            return MergeCounts(inserted=len(rows))
        names = batch.column_names
        version_position = names.index(VERSION_COLUMN) if VERSION_COLUMN in names else None
        stored = self._stored_versions(batch, rows)
        inserted = updated = skipped = 0
        for index, row in enumerate(rows):
            if index not in stored:
                inserted += 1
            elif version_position is None or is_newer_or_same(row[version_position], stored[index]):
                updated += 1
            else:
                skipped += 1
        return MergeCounts(inserted, updated, skipped)

    def _stored_versions(self, batch: Batch, rows: list[tuple]) -> dict[int, str | None]:
        """Row position -> stored `_ifs_objversion`, for the rows whose key is already stored."""
        names = batch.column_names
        key_positions = [names.index(k) for k in batch.keys]
        types = [self.render_type(batch.columns[p].sql_type) for p in key_positions]
        aliases = [f"k{i}" for i in range(len(batch.keys))]
        on = " AND ".join(
            f"t.{self.quote(k)} = v.{a}" for k, a in zip(batch.keys, aliases, strict=True)
        )
        head = f"SELECT v.i, t.{self.quote(VERSION_COLUMN)} AS version FROM (VALUES "
        tail = f") AS v(i, {', '.join(aliases)}) JOIN {self.qualified(batch.table)} AS t ON {on}"
        stored: dict[int, str | None] = {}
        for start in range(0, len(rows), ROWS_PER_PREDICTION):
            values = ", ".join(
                "("
                + ", ".join(
                    [str(start + n)]
                    + [
                        f"CAST({sql_literal(row[p])} AS {sql_type})"
                        for p, sql_type in zip(key_positions, types, strict=True)
                    ]
                )
                + ")"
                for n, row in enumerate(rows[start : start + ROWS_PER_PREDICTION])
            )
            found = self.run(head + values + tail)
            stored.update({int(r["i"]): r["version"] for r in found})
        return stored

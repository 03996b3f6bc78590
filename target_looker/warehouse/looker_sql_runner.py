"""`write_path: looker_sql_runner`: the PostgreSQL warehouse, driven through Looker's SQL Runner.

For sites where the target has Looker API credentials but no route to the warehouse:
every statement the PostgreSQL warehouse would send goes through
`POST /sql_queries` + `POST /sql_queries/{slug}/run/json` on the Looker connection
instead. The SQL is the PostgreSQL warehouse's own (this class subclasses it); only
the transport differs:

- SQL Runner has no bind parameters, so `$n` parameters become literals through
  `sql_literal` (tested: quotes, backslashes, newlines, unicode; NUL refused).
- SQL Runner has no sessions, so a transaction is one SQL Runner call: statements
  inside `transaction()` are buffered and sent as one `BEGIN; ...; COMMIT;` script,
  which the database applies all or nothing. COPY becomes multi-row INSERTs.
- The merge's inserted/updated counts are needed (for the audit rows in the same
  transaction) before the script runs, so they are predicted with a read of the
  stored keys and versions, and the script re-checks them: if another writer
  changed the table in between, the script fails and nothing is written.
- A 401 makes the client log in again and resend the run once (Looker checks the
  session before it runs any SQL). A transaction whose answer is lost (dropped
  connection, gateway error) may be resent by the retry policy: every write
  transaction first inserts its id into the ledger table `_looker_sql_runner_txns`,
  so a second execution fails on the ledger's primary key, and the ledger then
  tells whether the first committed. Nothing is written twice.

It is slower than the direct path and subject to Looker API quotas.
"""

# SQL here is the PostgreSQL warehouse's (identifiers quoted, values bound); `bind`
# turns $n parameters into literals with the tested `sql_literal`.
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

from target_looker.looker_api import LookerAPIError
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
from target_looker.warehouse.postgres import PostgresWarehouse

if t.TYPE_CHECKING:
    from target_looker.looker_api import LookerClient
    from target_looker.refresh import LookerSettings

LEDGER_TABLE = "_looker_sql_runner_txns"
ROWS_PER_STATEMENT = 500
ROWS_PER_PREDICTION = 2000
logger = logging.getLogger("target-looker.sql_runner")
_TOKENS = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|\$(\d+)")
_COUNTS_TAIL = ") SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted)"
_VALUES_TEMPLATE = re.compile(
    r"^(?P<head>.*\bVALUES\s*)\((?P<params>\$\d+(?:\s*,\s*\$\d+)*)\)\s*$", re.S
)


def sql_literal(value: t.Any) -> str:
    """A PostgreSQL literal for `value`, safe to splice into SQL text.

    Strings become escape strings (`E'...'`) with quotes doubled and backslashes
    escaped, so the result does not depend on `standard_conforming_strings`.
    NUL cannot be stored in PostgreSQL text and is refused, as are non-finite numbers.
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


class _ScriptCursor:
    """Stands in for a psycopg cursor in PostgresWarehouse.merge: statements join the script."""

    def __init__(self, warehouse: LookerSqlRunnerWarehouse) -> None:
        self.warehouse = warehouse

    def __enter__(self) -> _ScriptCursor:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def execute(self, sql: str, params: Sequence[t.Any] | None = None) -> None:
        self.warehouse.execute(sql, params or ())

    def fetchone(self) -> tuple[int, int]:
        predicted = self.warehouse._predicted
        return predicted.inserted, predicted.updated

    @property
    def rowcount(self) -> int:
        return self.warehouse._predicted.inserted


class _ScriptConnection:
    def __init__(self, warehouse: LookerSqlRunnerWarehouse) -> None:
        self.warehouse = warehouse

    def cursor(self) -> _ScriptCursor:
        return _ScriptCursor(self.warehouse)


class LookerSqlRunnerWarehouse(PostgresWarehouse):
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
        self.calls = 0  # SQL Runner queries run (statistics for logs and tests)

    @classmethod
    def from_config(cls, config: t.Mapping[str, t.Any]) -> LookerSqlRunnerWarehouse:
        """The warehouse for target-looker's config with `write_path: looker_sql_runner`."""
        from target_looker.refresh import LookerSettings

        return cls(LookerSettings.from_config(config))

    @property
    def _buffer(self) -> list[str] | None:
        return getattr(self._local, "buffer", None)

    @_buffer.setter
    def _buffer(self, value: list[str] | None) -> None:
        self._local.buffer = value

    @property
    def _counting(self) -> bool:
        return getattr(self._local, "counting", False)

    @_counting.setter
    def _counting(self, value: bool) -> None:
        self._local.counting = value

    @property
    def _predicted(self) -> MergeCounts:
        return getattr(self._local, "predicted", MergeCounts())

    @_predicted.setter
    def _predicted(self, value: MergeCounts) -> None:
        self._local.predicted = value

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
        """Log in and check the connection exists, so a wrong name fails before any load."""
        self.client.login()
        self.client.connection(self.connection_name)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    @property
    def conn(self) -> t.Any:  # PostgresWarehouse.merge talks to this
        return _ScriptConnection(self)

    def run(self, sql: str) -> list[dict]:
        """One SQL Runner round trip; database errors raise LookerSqlError."""
        self.calls += 1
        return self.client.run_sql(self.connection_name, sql)

    def execute(self, sql: str, params: Sequence[t.Any] = ()) -> int:
        """Inside a transaction the statement joins its script (count unknown: -1)."""
        bound = bind(sql, params)
        if self._counting:
            rows = self._write(
                [f"WITH changed AS ({bound} RETURNING 1) SELECT count(*) AS n FROM changed"]
            )
            return int(rows[0]["n"]) if rows else -1
        if self._buffer is not None:
            self._buffer.append(bound)
            return -1
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
            ledger = self.qualified(TableRef(schema, LEDGER_TABLE))
            self.run(
                f"CREATE TABLE IF NOT EXISTS {ledger} (txn_id TEXT PRIMARY KEY, "
                "committed_at TIMESTAMPTZ NOT NULL DEFAULT now())"
            )
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

    # counted statements --------------------------------------------------------------------------

    @contextlib.contextmanager
    def _counted(self) -> Iterator[None]:
        """Run DML at once with `RETURNING` counted (SQL Runner reports no row counts)."""
        self._counting = True
        try:
            yield
        finally:
            self._counting = False

    def delete_all(self, table) -> int:
        with self._counted():
            return super().delete_all(table)

    def retire_old_versions(self, table, version: int, *, hard_delete: bool, deleted_at) -> int:
        with self._counted():
            return super().retire_old_versions(
                table, version, hard_delete=hard_delete, deleted_at=deleted_at
            )

    # loading -------------------------------------------------------------------------------------

    def _copy(self, cur, table_sql: str, columns: str, rows: list[tuple]) -> None:
        """COPY has no SQL Runner equivalent: multi-row INSERTs of literals instead."""
        for start in range(0, len(rows), ROWS_PER_STATEMENT):
            chunk = rows[start : start + ROWS_PER_STATEMENT]
            values = ",\n".join("(" + ", ".join(sql_literal(v) for v in row) + ")" for row in chunk)
            cur.execute(f"INSERT INTO {table_sql} ({columns}) VALUES\n{values}")

    def merge(self, prepared: Prepared) -> MergeCounts:
        """PostgresWarehouse.merge, recorded into the open transaction's script."""
        if self._buffer is None:
            raise WarehouseError("merge must run inside transaction() on the SQL Runner path")
        self._predicted = self._predict(prepared.batch, prepared.payload)
        stage_and_merge = getattr(super(), "_stage_and_merge", None)
        if stage_and_merge is None:  # a PostgresWarehouse whose merge is one method
            return super().merge(prepared)
        # the staged path only: its fast COPY-into-the-table path needs COPY and savepoints
        if prepared.batch.truncate_first:
            self.execute(f"DELETE FROM {self.qualified(prepared.batch.table)}")
        return stage_and_merge(prepared)

    def _upsert_sql(self, *args: t.Any, **kwargs: t.Any) -> str:
        """The PostgreSQL upsert, ending in a check that the predicted counts came true."""
        sql = super()._upsert_sql(*args, **kwargs)
        head, found, _ = sql.rpartition(_COUNTS_TAIL)
        if not found:
            raise WarehouseError(
                "the PostgreSQL upsert changed shape; update LookerSqlRunnerWarehouse"
            )
        inserted, updated = self._predicted.inserted, self._predicted.updated
        return (
            f"{head}) SELECT CASE WHEN count(*) FILTER (WHERE inserted) = {inserted} "
            f"AND count(*) FILTER (WHERE NOT inserted) = {updated} THEN 1 ELSE CAST("
            f"'target-looker: the table changed while this batch was prepared (expected "
            f"{inserted} inserted, {updated} updated; got ' || count(*) FILTER (WHERE inserted) "
            f"|| ', ' || count(*) FILTER (WHERE NOT inserted) || '); nothing was written' "
            f"AS integer) END FROM merged"
        )

    def _predict(self, batch: Batch, rows: list[tuple]) -> MergeCounts:
        """Inserted/updated/skipped for an upsert of `rows`, from the stored keys and versions."""
        if not batch.keys or batch.truncate_first or batch.load_method == APPEND_ONLY or not rows:
            return MergeCounts(inserted=len(rows))
        names = batch.column_names
        key_positions = [names.index(k) for k in batch.keys]
        version_position = names.index(VERSION_COLUMN) if VERSION_COLUMN in names else None
        types = {c.name: self.render_type(c.sql_type) for c in batch.columns}
        stored: dict[int, str | None] = {}
        target = self.qualified(batch.table)
        aliases = [f"k{i}" for i in range(len(batch.keys))]
        on = " AND ".join(
            f"t.{self.quote(k)} = v.{a}" for k, a in zip(batch.keys, aliases, strict=True)
        )
        for start in range(0, len(rows), ROWS_PER_PREDICTION):
            chunk = rows[start : start + ROWS_PER_PREDICTION]
            values = ", ".join(
                "("
                + ", ".join(
                    [str(start + n)]
                    + [
                        f"CAST({sql_literal(row[p])} AS {types[batch.keys[i]]})"
                        for i, p in enumerate(key_positions)
                    ]
                )
                + ")"
                for n, row in enumerate(chunk)
            )
            found = self.run(
                f"SELECT v.i, t.{self.quote(VERSION_COLUMN)} AS version FROM (VALUES {values}) "
                f"AS v(i, {', '.join(aliases)}) JOIN {target} AS t ON {on}"
            )
            stored.update({int(r["i"]): r["version"] for r in found})
        inserted = updated = skipped = 0
        for index, row in enumerate(rows):
            if index not in stored:
                inserted += 1
            elif version_position is None or is_newer_or_same(row[version_position], stored[index]):
                updated += 1
            else:
                skipped += 1
        return MergeCounts(inserted, updated, skipped)

"""PostgreSQL (and Redshift-compatible) warehouse: COPY into a temp table, then merge.

COPY is the only bulk path PostgreSQL offers to a client; `INSERT ... ON CONFLICT`
then merges in one statement and reports inserted vs updated through `xmax`.

Two layers, so that another transport can run the same SQL:
- `PostgresDialect` is PostgreSQL's types and statements, whatever carries them.
  `staged_merge(batch)` returns the statements that merge a batch through a staging
  table (`StagedMerge`), as text; it never runs anything.
- `PostgresWarehouse` carries them over psycopg: COPY into the staging table (or
  straight into the table on an initial load), then the dialect's statements.
  `LookerSqlRunnerWarehouse` carries the same statements through Looker's SQL Runner.

Concurrent loaders: the upsert takes the rows of a batch in key order (`ORDER BY` the
key, text in code-point order), and so does the initial COPY (rows sorted by key), so
two loaders with overlapping keys lock the same rows in the same order and wait for
each other instead of deadlocking. A deadlock or serialization failure that happens
anyway (a transaction of other statements) is retried by `run_transaction`. DDL takes
a transaction-scoped advisory lock per schema or table (`ddl_lock`), so two first
loads do not race on PostgreSQL's catalogs (`CREATE ... IF NOT EXISTS` is not
race-free: the loser fails on a catalog's unique index).
"""

# SQL here is built from identifiers passed through Warehouse.quote (tested) and
# fixed fragments; every value is a bound $n parameter.
# ruff: noqa: S608

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import operator
import typing as t
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from urllib.parse import unquote

import psycopg
from psycopg import errors, pq
from psycopg.conninfo import make_conninfo

from target_looker.columns import Column, SqlType
from target_looker.warehouse.base import (
    APPEND_ONLY,
    VERSION_COLUMN,
    Batch,
    MergeCounts,
    Prepared,
    TableRef,
    Warehouse,
    WarehouseError,
    encode_json,
    lock_key,
    non_finite_numbers,
)

_TYPES = {
    "text": "TEXT",
    "bigint": "BIGINT",
    "numeric": "NUMERIC",
    "date": "DATE",
    "timestamptz": "TIMESTAMPTZ",
    "time": "TIME",
    "boolean": "BOOLEAN",
    "json": "JSONB",
}
_PARSED = {
    "text": "text",
    "character varying": "varchar",
    "bigint": "bigint",
    "numeric": "numeric",
    "date": "date",
    "timestamp with time zone": "timestamptz",
    "time without time zone": "time",
    "boolean": "boolean",
    "jsonb": "json",
}
STAGE_TABLE = "target_looker_stage"  # a temp table, dropped at commit
# COPY options that read a row encoded as a JSON array without its brackets: strings
# are quoted with JSON's \" and \\ escapes, null is unquoted, numbers stay exact text.
COPY_CSV_OPTIONS = "(FORMAT csv, NULL 'null', QUOTE '\"', ESCAPE '\\')"
# Non-finite Decimals: psycopg knows PostgreSQL's spelling of them, JSON does not.
_NOT_FINITE = (b"NaN", b"Infinity")
COPY_CHUNK_ROWS = 1000
# A run that wrote this many rows into a table ANALYZEs it at its end (refresh_statistics).
STATISTICS_AFTER_ROWS = 10_000
# PostgreSQL refuses UTC offsets of 16 hours or more ("time zone displacement out of
# range"); RFC 3339 allows up to 23:59. Such timestamps are loaded as the same instant in UTC.
MAX_UTC_OFFSET = datetime.timedelta(hours=16)  # exclusive
_UTC = datetime.timezone.utc
_TZINFO = operator.attrgetter("tzinfo")
# Errors after which the whole transaction may succeed if run again (SQLSTATE 40P01, 40001).
RETRYABLE_ERRORS = (errors.DeadlockDetected, errors.SerializationFailure)
# DDL that lost a race with a session that did not take the DDL lock: a catalog's unique
# index (CREATE ... IF NOT EXISTS), or the object itself.
ALREADY_EXISTS_ERRORS = (
    errors.UniqueViolation,
    errors.DuplicateTable,
    errors.DuplicateObject,
    errors.DuplicateSchema,
    errors.DuplicateColumn,
)
# Table privileges (aclexplode's names) that an overwrite carries over to the new table.
TABLE_PRIVILEGES = frozenset(
    {"SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER", "MAINTAIN"}
)
# Key types whose order PostgreSQL and Python agree on once text compares in code points.
_TEXT_KINDS = ("text", "varchar")


def offset_out_of_range(value: datetime.datetime) -> bool:
    """Whether PostgreSQL would refuse the UTC offset of `value`."""
    offset = value.utcoffset()
    return offset is not None and abs(offset) >= MAX_UTC_OFFSET


def _may_have_offsets_out_of_range(values: t.Iterable[t.Any]) -> bool:
    """Whether a timestamp column needs a look at each value: one C-level pass collects
    its distinct time zones, and a zone with a fixed offset is judged once."""
    try:
        zones = set(map(_TZINFO, filter(None, values)))
    except AttributeError:  # not all datetimes: look at each value
        return True
    for zone in zones:
        if zone is None:
            continue
        offset = zone.utcoffset(None)
        if offset is None or abs(offset) >= MAX_UTC_OFFSET:  # None: depends on the date
            return True
    return False


def utc_where_offsets_out_of_range(columns: Sequence[Column], rows: list[tuple]) -> list[tuple]:
    """`rows`, with each timestamp whose UTC offset PostgreSQL refuses moved to UTC.

    The same instant, so nothing is lost; `rows` itself when no value needs it.
    """
    positions = [
        position
        for position, column in enumerate(columns)
        if column.sql_type.kind == "timestamptz"
        and rows
        and _may_have_offsets_out_of_range(map(operator.itemgetter(position), rows))
    ]
    if not positions:
        return rows
    converted = []
    for row in rows:
        values = None
        for position in positions:
            value = row[position]
            if isinstance(value, datetime.datetime) and offset_out_of_range(value):
                values = values or list(row)
                values[position] = value.astimezone(_UTC)
        converted.append(row if values is None else tuple(values))
    return converted


def _copy_text(value: t.Any) -> t.Any:
    """A constant column value, pre-rendered once per batch for COPY's text format."""
    return value.isoformat() if isinstance(value, datetime.datetime) else value


def copy_csv(rows: Sequence[tuple], tail: tuple = ()) -> bytes | None:
    """The rows (each followed by `tail`) as one COPY payload for `COPY_CSV_OPTIONS`.

    msgspec encodes each row in C, about twice as fast as psycopg adapting value by
    value. A JSON string escape other than \\" and \\\\ (newline, tab, control
    characters) means something COPY's CSV would not undo, and NaN/Infinity are not
    JSON: then None, and the caller takes the per-value path.
    """
    suffix = (b"," + encode_json(tail)[1:-1] if tail else b"") + b"\n"
    payload = suffix.join([encode_json(row)[1:-1] for row in rows]) + suffix
    if any(word in payload for word in _NOT_FINITE):
        return None
    # Every backslash followed by a quote: every escape is \\" (cheaper than the look below).
    backslashes = payload.count(b"\\")
    if not backslashes or backslashes == payload.count(b'\\"'):
        return payload
    # Escapes pair off left to right, as str.replace does: what is left is one of the rest.
    plain = payload.replace(b"\\\\", b"").replace(b'\\"', b"")
    return None if b"\\" in plain else payload


# The statements ---------------------------------------------------------------------------------

MERGED_INSERTED = "count(*) FILTER (WHERE inserted)"
MERGED_UPDATED = "count(*) FILTER (WHERE NOT inserted)"


@dataclass(frozen=True)
class StagedMerge:
    """The PostgreSQL statements that merge one batch through a staging table, as text.

    Built from quoted identifiers and fixed fragments only; the batch's constant columns
    are the parameters `$1..$n` of `write`, whose values are `params`. A transport runs,
    inside one transaction: each of `create_stage`, its own load of
    the batch's rows into `stage` (columns `stage_columns`, in `Batch.columns` order),
    `write`, then `confirm_presence` (if set).

    `write` is a plain INSERT ... SELECT when `upsert` is False. Otherwise it is an
    INSERT ... ON CONFLICT that applies the version guard and returns one row, with a
    boolean `inserted`, per row it inserted or updated; `select_from_upsert` reads them.
    """

    target: str
    stage: str
    stage_columns: str
    create_stage: tuple[str, ...]
    write: str
    params: tuple[t.Any, ...]
    upsert: bool
    confirm_presence: str | None = None


def select_from_upsert(upsert: str, select: str) -> str:
    """`SELECT select` over the rows an upsert returned (`MERGED_INSERTED`, `MERGED_UPDATED`)."""
    return f"WITH merged AS ({upsert}) SELECT {select} FROM merged"


def rows_changed(dml: str) -> str:
    """A query whose one row `n` counts the rows an UPDATE or DELETE changed.

    For transports that report no row counts (SQL Runner answers with result rows only).
    """
    return f"WITH changed AS ({dml} RETURNING 1) SELECT count(*) AS n FROM changed"


class PostgresDialect(Warehouse):
    """PostgreSQL's types and SQL, independent of the transport that runs them."""

    dialect = "postgresql"
    max_identifier_bytes = 63
    forbids_nul_in_text = True
    binary_collation = ' COLLATE "C"'

    def render_type(self, sql_type: SqlType) -> str:
        if sql_type.kind == "varchar":
            return f"VARCHAR({sql_type.length})"
        return _TYPES[sql_type.kind]

    def parse_type(self, data_type: str, length: int | None, scale: int | None) -> SqlType:
        kind = _PARSED.get(data_type, data_type)
        if kind == "varchar":
            return SqlType("varchar", length=length) if length else SqlType("text")
        return SqlType(kind)

    def effective_type(self, wanted: SqlType) -> SqlType:
        # NUMERIC without a typmod keeps every digit it is given.
        return SqlType("numeric") if wanted.kind == "numeric" else wanted

    def is_digits(self, expression: str) -> str:
        return f"{expression} ~ '^[0-9]+$'"

    def ddl_lock(self, name: str) -> None:
        """A transaction-scoped advisory lock: held until the DDL's transaction ends."""
        self.execute("SELECT pg_advisory_xact_lock(CAST($1 AS BIGINT))", (lock_key(name),))

    def is_retryable(self, exc: BaseException) -> bool:
        return isinstance(exc, RETRYABLE_ERRORS)

    def is_already_exists(self, exc: BaseException) -> bool:
        return isinstance(exc, ALREADY_EXISTS_ERRORS)

    def error_text(self, exc: BaseException) -> str:
        """The error's first line, and PostgreSQL's DETAIL when it gave one (e.g. which
        view depends on a table)."""
        text = super().error_text(exc)
        diag = getattr(exc, "diag", None)
        detail = getattr(diag, "message_detail", None)
        return f"{text} ({' '.join(detail.split())})" if detail else text

    # Overwrite ------------------------------------------------------------------------------

    def create_like_sql(self, new: TableRef, like: TableRef) -> str:
        """`LIKE ... INCLUDING ALL`: the primary key, and what a DBA added to the table
        (indexes, defaults, check constraints, comments) come along."""
        return f"CREATE TABLE {self.qualified(new)} (LIKE {self.qualified(like)} INCLUDING ALL)"

    def swap_statements(
        self, table: TableRef, shadow: TableRef, retired: TableRef, *, table_exists: bool
    ) -> list[str]:
        """The rename-swap, after the old table's grants (e.g. SELECT for Looker's user)
        are given on the new one too."""
        swap = super().swap_statements(table, shadow, retired, table_exists=table_exists)
        return [*self.grant_statements(table, shadow), *swap] if table_exists else swap

    def grant_statements(self, source: TableRef, target: TableRef) -> list[str]:
        """GRANTs that give on `target` what other roles than the owner hold on `source`."""
        rows = self.fetchall(
            "SELECT r.rolname, a.privilege_type, a.is_grantable "
            "FROM pg_class AS c CROSS JOIN LATERAL aclexplode(c.relacl) AS a "
            "LEFT JOIN pg_roles AS r ON r.oid = a.grantee "
            "WHERE c.oid = to_regclass($1) AND a.grantee <> c.relowner "
            "ORDER BY 1, 2",
            (self.qualified(source),),
        )
        statements = []
        for role, privilege, grantable in rows:
            if privilege not in TABLE_PRIVILEGES:  # a keyword spliced into SQL: known ones only
                raise WarehouseError(
                    f"{self.qualified(source)} has a privilege {privilege!r} that target-looker "
                    f"cannot carry over to its new contents"
                )
            grantee = "PUBLIC" if role is None else self.quote(role)
            option = " WITH GRANT OPTION" if grantable and role is not None else ""
            statements.append(f"GRANT {privilege} ON {self.qualified(target)} TO {grantee}{option}")
        return statements

    def key_order(self, batch: Batch) -> str:
        """The ORDER BY that makes every loader lock a batch's rows in the same order:
        by key, text in code-point order (`COLLATE "C"`, as Python compares strings)."""
        kinds = {c.name: c.sql_type.kind for c in batch.columns}
        return ", ".join(
            self.quote(k) + (self.binary_collation if kinds.get(k) in _TEXT_KINDS else "")
            for k in batch.keys
        )

    def primary_key(self, table: TableRef) -> list[str]:
        rows = self.fetchall(
            "SELECT a.attname FROM pg_index i "
            "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
            "WHERE i.indrelid = (quote_ident($1) || '.' || quote_ident($2))::regclass "
            "AND i.indisprimary ORDER BY array_position(i.indkey, a.attnum)",
            (table.schema, table.name),
        )
        return [r[0] for r in rows]

    def prepare(self, batch: Batch) -> Prepared:
        """Rows with NaN/Infinity numbers become rejects; timestamps with a UTC offset
        PostgreSQL refuses move to UTC; JSON columns become JSON text (numbers exactly
        as they came); every other value is loaded as it is.
        """
        rejects = non_finite_numbers(batch)
        rows = batch.rows
        if rejects:
            rows = [row for index, row in enumerate(rows) if index not in rejects]
        rows = utc_where_offsets_out_of_range(batch.columns, rows)
        json_positions = [i for i, c in enumerate(batch.columns) if c.sql_type.kind == "json"]
        if json_positions:
            encoded = []
            for row in rows:
                values = list(row)
                for i in json_positions:
                    if values[i] is not None:
                        values[i] = encode_json(values[i]).decode()
                encoded.append(tuple(values))
            rows = encoded
        prepared = batch if rows is batch.rows else dataclasses.replace(batch, rows=rows)
        return Prepared(prepared, rows, sorted(rejects.items()))

    def staged_merge(self, batch: Batch) -> StagedMerge:
        """The statements that merge `batch` once its rows are in the staging table."""
        q = self.quote
        target, stage = self.qualified(batch.table), q(STAGE_TABLE)
        staged = ", ".join(q(c) for c in batch.column_names)
        columns = ", ".join(q(c) for c in batch.all_names)
        constants, params = self.constant_sql(batch)
        select = ", ".join([staged, *constants])
        upsert = bool(batch.keys) and batch.load_method != APPEND_ONLY
        return StagedMerge(
            target=target,
            stage=stage,
            stage_columns=staged,
            create_stage=(
                f"DROP TABLE IF EXISTS {stage}",
                f"CREATE TEMP TABLE {stage} ON COMMIT DROP AS "
                f"SELECT {staged} FROM {target} WITH NO DATA",
            ),
            write=(
                self._upsert_sql(batch, target, columns, select, stage)
                if upsert
                else f"INSERT INTO {target} ({columns}) SELECT {select} FROM {stage}"
            ),
            params=tuple(params),
            upsert=upsert,
            confirm_presence=(
                self.confirm_presence_sql(target, stage, self.key_match("t", "s", batch.keys))
                if upsert and batch.carries_table_versions
                else None
            ),
        )

    def _upsert_sql(self, batch: Batch, target: str, columns: str, select: str, stage: str) -> str:
        """INSERT ... ON CONFLICT under the version guard; `inserted` says insert or update."""
        q = self.quote
        keys = ", ".join(q(k) for k in batch.keys)
        updates = ", ".join(
            f"{q(c)} = EXCLUDED.{q(c)}" for c in batch.all_names if c not in batch.keys
        )
        version = q(VERSION_COLUMN)
        guard = self.version_guard(f"EXCLUDED.{version}", f"t.{version}")
        return (
            f"INSERT INTO {target} AS t ({columns}) SELECT {select} FROM {stage} "
            f"ORDER BY {self.key_order(batch)} "
            f"ON CONFLICT ({keys}) DO UPDATE SET {updates} WHERE {guard} "
            f"RETURNING (t.xmax = 0) AS inserted"
        )


# The psycopg transport ---------------------------------------------------------------------------


class PostgresWarehouse(PostgresDialect):
    """PostgreSQL over psycopg 3: COPY for the rows, the dialect's statements for the merge."""

    def __init__(self, url) -> None:
        super().__init__(url.set(drivername="postgresql+psycopg"))
        self._conn: psycopg.Connection | None = None
        # Tables that were empty when their stream started: batches try a plain COPY first.
        self._may_be_new: set[TableRef] = set()
        self._written: Counter[TableRef] = Counter()  # rows inserted or updated, by table

    def conninfo(self) -> str:
        """libpq connection parameters from the URL, in every form libpq accepts.

        The URL's parts first, then its query parameters, which win as they do in libpq
        (`postgresql://user@/db?host=/run/postgresql&password=...`); a repeated
        parameter (`?host=a&host=b`, multi-host) becomes libpq's comma-separated list.
        """
        url = self.url
        params: dict[str, t.Any] = {}
        if url.host:
            params["host"] = unquote(url.host)  # libpq decodes `%2Frun%2Fpostgresql`
        if url.port is not None:
            params["port"] = url.port
        if url.username:
            params["user"] = url.username
        if url.password is not None:
            params["password"] = url.password
        if url.database:
            params["dbname"] = url.database
        for key, value in url.query.items():
            params[key] = ",".join(value) if isinstance(value, tuple) else value
        try:
            return make_conninfo("", **params)
        except psycopg.ProgrammingError as exc:  # an unknown option; its name, not its value
            raise WarehouseError(f"warehouse_url ({self.safe_url}): {exc}") from None

    def connect(self) -> None:
        conninfo = self.conninfo()
        try:
            self._conn = psycopg.connect(
                conninfo, autocommit=True, cursor_factory=psycopg.RawCursor
            )
        except psycopg.OperationalError as exc:
            # psycopg's message names host and reason, never the password.
            raise ConnectionError(f"cannot connect to {self.safe_url}: {exc}") from None
        self.execute("SET TIME ZONE 'UTC'")

    @property
    def conn(self) -> psycopg.Connection:
        if self._conn is None:
            self.connect()
        return t.cast("psycopg.Connection", self._conn)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def execute(self, sql: str, params: Sequence[t.Any] = ()) -> int:
        with self.conn.cursor() as cur:
            cur.execute(sql, params or None)
            return cur.rowcount

    def fetchall(self, sql: str, params: Sequence[t.Any] = ()) -> list[tuple]:
        with self.conn.cursor() as cur:
            cur.execute(sql, params or None)
            return cur.fetchall()

    def executemany(self, sql: str, rows: Sequence[Sequence[t.Any]]) -> None:
        if rows:
            with self.conn.cursor() as cur:
                cur.executemany(sql, rows)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        with self.conn.transaction():
            yield

    def in_transaction(self) -> bool:
        return (
            self._conn is not None
            and self._conn.info.transaction_status != pq.TransactionStatus.IDLE
        )

    def ensure_schema(self, schema: str) -> None:
        """Nothing to do (no lock, no CREATE privilege needed) when the schema exists."""
        if not self.fetchall("SELECT 1 FROM pg_namespace WHERE nspname = $1", (schema,)):
            super().ensure_schema(schema)

    def note_table_state(self, table: TableRef) -> None:
        empty = not self.fetchall(f"SELECT 1 FROM {self.qualified(table)} LIMIT 1")
        if empty:
            self._may_be_new.add(table)
        else:
            self._may_be_new.discard(table)

    # Loading ------------------------------------------------------------------------

    def _copy(
        self, cur: psycopg.Cursor, table_sql: str, columns: str, rows: list[tuple], tail: tuple = ()
    ) -> None:
        """COPY in chunks, so PostgreSQL parses one while the next is encoded.

        From the first chunk CSV cannot carry, the rest goes through psycopg value by value.
        """
        if not rows:
            return
        sql = f"COPY {table_sql} ({columns}) FROM STDIN"
        copied = 0
        with cur.copy(f"{sql} {COPY_CSV_OPTIONS}") as copy:
            while copied < len(rows):
                payload = copy_csv(rows[copied : copied + COPY_CHUNK_ROWS], tail)
                if payload is None:
                    break
                copy.write(payload)
                copied += COPY_CHUNK_ROWS
        if copied < len(rows):
            with cur.copy(sql) as copy:
                write_row = copy.write_row
                for row in rows[copied:]:
                    write_row(row + tail)

    def merge(self, prepared: Prepared) -> MergeCounts:
        statements = self.staged_merge(prepared.batch)
        counts = None
        if prepared.batch.table in self._may_be_new or not statements.upsert:
            counts = self._copy_direct(prepared)
        if counts is None:
            counts = self._stage_and_merge(prepared, statements)
        self._written[prepared.batch.table] += counts.inserted + counts.updated
        return counts

    def refresh_statistics(self) -> list[TableRef]:
        """ANALYZE each table this connection wrote STATISTICS_AFTER_ROWS rows or more into.

        Where autovacuum is off or has not come round yet, a table loaded in bulk keeps the
        statistics of the empty table it was: the next run's merge then joins its staging
        table to it row by row, minutes for a thousand changes on a million rows.
        """
        refreshed = []
        for table, written in self._written.items():
            if written < STATISTICS_AFTER_ROWS:
                continue
            if not self.fetchall("SELECT to_regclass($1)", (self.qualified(table),))[0][0]:
                continue  # an overwrite's shadow, swapped in under the table's name
            self.execute(f"ANALYZE {self.qualified(table)}")
            refreshed.append(table)
        self._written.clear()
        return refreshed

    def _copy_direct(self, prepared: Prepared) -> MergeCounts | None:
        """COPY straight into the table: right for appends, and for upserts of keys the
        table cannot hold yet (an initial load). A key that is already there makes the
        COPY fail; it is rolled back to a savepoint and the batch merges via staging.
        """
        batch = prepared.batch
        names = ", ".join(self.quote(c) for c in batch.all_names)
        tail = tuple(_copy_text(v) for _, v in batch.constants)
        rows = self._in_key_order(batch, prepared.payload)
        try:
            with self.conn.transaction(), self.conn.cursor() as cur:
                self._copy(cur, self.qualified(batch.table), names, rows, tail)
        except psycopg.errors.UniqueViolation:
            if not batch.keys or batch.load_method == APPEND_ONLY:
                raise
            self._may_be_new.discard(batch.table)
            return None
        return MergeCounts(inserted=len(prepared.payload))

    @staticmethod
    def _in_key_order(batch: Batch, rows: list[tuple]) -> list[tuple]:
        """An upsert's rows sorted by key, as `key_order` sorts them in SQL: a loader
        COPYing the same new keys then waits for this one instead of deadlocking."""
        if not batch.keys or batch.load_method == APPEND_ONLY or len(rows) < 2:
            return rows
        names = batch.column_names
        if any(k not in names for k in batch.keys):
            return rows
        try:
            return sorted(rows, key=operator.itemgetter(*(names.index(k) for k in batch.keys)))
        except TypeError:  # values that do not compare (never for keys that decoded)
            return rows

    def _stage_and_merge(self, prepared: Prepared, statements: StagedMerge) -> MergeCounts:
        params = statements.params or None
        with self.conn.cursor() as cur:
            for sql in statements.create_stage:
                cur.execute(sql)
            self._copy(cur, statements.stage, statements.stage_columns, prepared.payload)
            if not statements.upsert:
                cur.execute(statements.write, params)
                return MergeCounts(inserted=cur.rowcount)
            counts = f"{MERGED_INSERTED}, {MERGED_UPDATED}"
            cur.execute(select_from_upsert(statements.write, counts), params)
            inserted, updated = cur.fetchone()
            if statements.confirm_presence:
                cur.execute(statements.confirm_presence)
        return MergeCounts(inserted, updated, len(prepared.payload) - inserted - updated)

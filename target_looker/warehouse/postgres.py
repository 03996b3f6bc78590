"""PostgreSQL (and Redshift-compatible) warehouse: COPY into a temp table, then merge.

COPY is the only bulk path PostgreSQL offers to a client; `INSERT ... ON CONFLICT`
then merges in one statement and reports inserted vs updated through `xmax`.
"""

# SQL here is built from identifiers passed through Warehouse.quote (tested) and
# fixed fragments; every value is a bound $n parameter.
# ruff: noqa: S608

from __future__ import annotations

import contextlib
import typing as t
from collections.abc import Iterator, Sequence

import msgspec
import psycopg
from psycopg.conninfo import make_conninfo

from target_looker.columns import SqlType
from target_looker.warehouse.base import (
    APPEND_ONLY,
    TABLE_VERSION_COLUMN,
    VERSION_COLUMN,
    Batch,
    MergeCounts,
    Prepared,
    TableRef,
    Warehouse,
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
_STAGE = "target_looker_stage"
_json_encode = msgspec.json.Encoder(decimal_format="number").encode


class PostgresWarehouse(Warehouse):
    dialect = "postgresql"
    max_identifier_bytes = 63
    forbids_nul_in_text = True
    binary_collation = ' COLLATE "C"'

    def __init__(self, url) -> None:
        super().__init__(url.set(drivername="postgresql+psycopg"))
        self._conn: psycopg.Connection | None = None

    def conninfo(self) -> str:
        url = self.url
        return make_conninfo(
            "",
            host=url.host,
            port=url.port,
            user=url.username,
            password=url.password,
            dbname=url.database,
            **{k: v for k, v in url.query.items() if isinstance(v, str)},
        )

    def connect(self) -> None:
        try:
            self._conn = psycopg.connect(
                self.conninfo(), autocommit=True, cursor_factory=psycopg.RawCursor
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

    def primary_key(self, table: TableRef) -> list[str]:
        rows = self.fetchall(
            "SELECT a.attname FROM pg_index i "
            "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
            "WHERE i.indrelid = (quote_ident($1) || '.' || quote_ident($2))::regclass "
            "AND i.indisprimary ORDER BY array_position(i.indkey, a.attnum)",
            (table.schema, table.name),
        )
        return [r[0] for r in rows]

    # Loading ------------------------------------------------------------------------

    def prepare(self, batch: Batch) -> Prepared:
        json_positions = [i for i, c in enumerate(batch.columns) if c.sql_type.kind == "json"]
        if not json_positions:
            return Prepared(batch, batch.rows)
        rows = []
        for row in batch.rows:
            values = list(row)
            for i in json_positions:
                if values[i] is not None:
                    values[i] = _json_encode(values[i]).decode()
            rows.append(tuple(values))
        return Prepared(batch, rows)

    def _copy(self, cur: psycopg.Cursor, table_sql: str, columns: str, rows: list[tuple]) -> None:
        with cur.copy(f"COPY {table_sql} ({columns}) FROM STDIN") as copy:
            write_row = copy.write_row
            for row in rows:
                write_row(row)

    def merge(self, prepared: Prepared) -> MergeCounts:
        batch = prepared.batch
        target = self.qualified(batch.table)
        columns = ", ".join(self.quote(c) for c in batch.column_names)
        with self.conn.cursor() as cur:
            if batch.truncate_first:
                cur.execute(f"DELETE FROM {target}")
            if not batch.keys or batch.load_method == APPEND_ONLY:
                self._copy(cur, target, columns, prepared.payload)
                return MergeCounts(inserted=len(prepared.payload))
            stage = self.quote(_STAGE)
            cur.execute(f"DROP TABLE IF EXISTS {stage}")
            cur.execute(
                f"CREATE TEMP TABLE {stage} ON COMMIT DROP AS "
                f"SELECT {columns} FROM {target} WITH NO DATA"
            )
            self._copy(cur, stage, columns, prepared.payload)
            cur.execute(self._upsert_sql(batch, target, stage, columns))
            inserted, updated = cur.fetchone()
            if TABLE_VERSION_COLUMN in batch.column_names:
                self._confirm_presence(cur, batch, target, stage)
        return MergeCounts(inserted, updated, len(prepared.payload) - inserted - updated)

    def _upsert_sql(self, batch: Batch, target: str, stage: str, columns: str) -> str:
        keys = ", ".join(self.quote(k) for k in batch.keys)
        updates = ", ".join(
            f"{self.quote(c)} = EXCLUDED.{self.quote(c)}"
            for c in batch.column_names
            if c not in batch.keys
        )
        version = self.quote(VERSION_COLUMN)
        guard = self.version_guard(f"EXCLUDED.{version}", f"t.{version}")
        return (
            f"WITH merged AS (INSERT INTO {target} AS t ({columns}) "
            f"SELECT {columns} FROM {stage} "
            f"ON CONFLICT ({keys}) DO UPDATE SET {updates} WHERE {guard} "
            f"RETURNING (t.xmax = 0) AS inserted) "
            f"SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) "
            f"FROM merged"
        )

    def _confirm_presence(self, cur: psycopg.Cursor, batch: Batch, target: str, stage: str) -> None:
        """Rows skipped as older still exist in IFS: keep them out of ACTIVATE_VERSION's reach."""
        tv = self.quote(TABLE_VERSION_COLUMN)
        cur.execute(
            f"UPDATE {target} AS t SET {tv} = s.{tv}, {self.quote('_sdc_deleted_at')} = NULL "
            f"FROM {stage} AS s WHERE {self.key_match('t', 's', batch.keys)} "
            f"AND s.{tv} IS NOT NULL AND (t.{tv} IS NULL OR t.{tv} < s.{tv})"
        )

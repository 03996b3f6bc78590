"""The database behind a sandbox Looker connection: SQL Runner executes SQL here for real.

A Looker connection runs SQL Runner text on a pooled database session; a script of
several statements (`BEGIN; ...; COMMIT;`) runs as sent, and the rows of the last
statement that returns rows come back. A database error is reported, not raised
through HTTP: the caller turns it into Looker's `[{"looker_error": ...}]`.
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit


class SqlError(Exception):
    """The database refused the SQL; the message is the database's own."""


@dataclass(frozen=True)
class Result:
    columns: list[str]
    rows: list[tuple]


class Database:
    """One warehouse database named by a URL: `postgresql://...` or `duckdb:///path`."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.url = url
        self.dialect = "duckdb" if parts.scheme.startswith("duckdb") else "postgres"
        if self.dialect == "postgres" and not parts.scheme.startswith("postgres"):
            raise ValueError(
                f"connection URL scheme {parts.scheme!r}: use postgresql:// or duckdb:///"
            )
        self.host = parts.hostname or ""
        self.port = parts.port
        self.username = unquote(parts.username or "")
        self.has_password = bool(parts.password)
        self.database = (
            unquote(parts.path.lstrip("/"))
            if self.dialect == "postgres"
            else unquote(parts.path[1:] if parts.path.startswith("/") else parts.path)
        )
        self._lock = threading.Lock()  # one session per connection, one statement at a time
        self._pg = None

    def _pg_conninfo(self) -> str:
        _scheme, _, rest = self.url.partition("://")
        return f"postgresql://{rest}"

    def run(self, sql: str) -> Result:
        """Execute `sql` (one or more statements); the rows of the last row-returning one."""
        with self._lock:
            if self.dialect == "postgres":
                return self._run_postgres(sql)
            return self._run_duckdb(sql)

    def _pg_connection(self):
        """One pooled session, as Looker keeps; a broken one is replaced."""
        import psycopg

        if self._pg is not None and not self._pg.closed and not self._pg.broken:
            return self._pg
        try:
            self._pg = psycopg.connect(self._pg_conninfo(), autocommit=True, connect_timeout=10)
        except psycopg.OperationalError as exc:
            raise SqlError(f"Cannot connect to the database: {exc}") from None
        return self._pg

    def _run_postgres(self, sql: str) -> Result:
        import psycopg

        conn = self._pg_connection()
        result = Result([], [])
        with conn.cursor() as cur:
            try:
                cur.execute(sql.encode())
                while True:
                    if cur.description is not None:
                        result = Result([d.name for d in cur.description], cur.fetchall())
                    if not cur.nextset():
                        break
            except psycopg.Error as exc:
                if not conn.broken and conn.info.transaction_status != 0:
                    conn.execute("ROLLBACK")
                raise SqlError(f"ERROR: {exc.diag.message_primary or exc}") from None
        return result

    def close(self) -> None:
        with self._lock:
            if self._pg is not None:
                self._pg.close()
                self._pg = None

    def _run_duckdb(self, sql: str) -> Result:
        import duckdb

        path = self.database or ":memory:"
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        conn = duckdb.connect(path)
        result = Result([], [])
        try:
            for statement in duckdb.extract_statements(sql):
                cursor = conn.execute(statement)
                if cursor.description is not None and statement.type == duckdb.StatementType.SELECT:
                    result = Result([d[0] for d in cursor.description], cursor.fetchall())
        except duckdb.Error as exc:
            with contextlib.suppress(duckdb.Error):
                conn.execute("ROLLBACK")
            raise SqlError(str(exc)) from None
        finally:
            conn.close()
        return result

    def test(self) -> list[tuple[str, str, str]]:
        """Looker's connection tests: (name, status, message) for `connect` and `query`."""
        try:
            self.run("SELECT 1")
        except SqlError as exc:
            return [("connect", "error", str(exc)), ("query", "skipped", "Cannot connect")]
        return [
            ("connect", "success", "Can connect"),
            ("query", "success", "Query run successfully"),
        ]

    def describe(self) -> dict[str, Any]:
        return {
            "dialect_name": "postgres" if self.dialect == "postgres" else "duckdb",
            "host": self.host or None,
            "port": str(self.port) if self.port else None,
            "database": self.database or None,
            "username": self.username or None,
            "has_password": self.has_password,
        }

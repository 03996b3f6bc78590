"""One running Looker sandbox: sessions, connections, SQL Runner, datagroups, PDTs, request log."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..clock import TimeSource
from ..loopback import LoopbackServer
from .config import LookerConfig
from .database import Database
from .lint import lint_project
from .openapi import API_PREFIX, OpenApiSpec
from .server import LookerHandler
from .state import LookerState
from .tokens import LookerTokens


@dataclass(frozen=True)
class LoggedRequest:
    """One request as the sandbox saw it; form secrets are masked, tokens never kept."""

    method: str
    path: str
    query: dict[str, str]
    status: int
    body: Any
    at: float  # UNIX seconds, by the sandbox's time source
    problems: list[str] = field(default_factory=list)  # spec violations of the request


@dataclass(frozen=True)
class SqlRun:
    connection_name: str
    sql: str
    result: list[dict]


class LookerSandbox(LoopbackServer[LookerConfig]):
    """A Looker API 4.0 on loopback; start with `start()` or as a context manager (port 0: any).

    `time_source` (`self.time`; real time unless a test passes a `ManualClock`) runs
    token lifetimes, PDT builds, datagroup and request-log timestamps.
    """

    handler_class = LookerHandler
    thread_name = "looker-sandbox"

    def __init__(
        self,
        config: LookerConfig | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        verbose: bool = False,
        lookml_dirs: dict[str, str | Path] | None = None,
        time_source: TimeSource | None = None,
    ) -> None:
        super().__init__(config or LookerConfig(), host, port, verbose, time_source)
        self.lookml_dirs = {k: Path(v) for k, v in (lookml_dirs or {}).items()}
        self.spec = OpenApiSpec.bundled()
        self.tokens = LookerTokens(self.config.client_id, self.config.client_secret, self.time)
        self.state = LookerState.create(self.config.datagroups, self.time)
        self._databases = {name: Database(url) for name, url in self.config.connections.items()}
        self.request_log: list[LoggedRequest] = []
        self.sql_log: list[SqlRun] = []
        self.response_problems: list[str] = []
        # 401 mid-load: sessions end just before SQL Runner runs that tests pick, by run
        # number (1-based) or by their SQL (each query once, so its resend succeeds)
        self.expire_tokens_before_runs: set[int] = set()
        self.expire_tokens_before_sql: Callable[[str], bool] | None = None
        self.sql_runs_seen = 0
        self._expired_for: set[str] = set()
        # lost answers: SQL that runs (and commits) but whose response never arrives, once
        self.lose_answer_to_sql: Callable[[str], bool] | None = None
        self._answers_lost: set[str] = set()
        self._log_lock = threading.Lock()

    # addresses -----------------------------------------------------------------------------------

    @property
    def api_url(self) -> str:
        return self.base_url + API_PREFIX

    # behaviour -----------------------------------------------------------------------------------

    def expire_tokens(self) -> None:
        """Invalidate every session now: the next authenticated request gets 401."""
        self.tokens.expire_all()

    def before_sql_run(self, slug: str, sql: str) -> None:
        """Count SQL Runner runs; end every session before the runs tests picked."""
        predicate = self.expire_tokens_before_sql
        with self._log_lock:
            self.sql_runs_seen += 1
            expire = self.sql_runs_seen in self.expire_tokens_before_runs
            if predicate is not None and slug not in self._expired_for and predicate(sql):
                self._expired_for.add(slug)
                expire = True
        if expire:
            self.expire_tokens()

    def lose_answer(self, slug: str, sql: str) -> bool:
        """True once per query the tests picked: its connection drops after the SQL ran."""
        predicate = self.lose_answer_to_sql
        with self._log_lock:
            if predicate is None or slug in self._answers_lost or not predicate(sql):
                return False
            self._answers_lost.add(slug)
            return True

    def database(self, connection_name: str) -> Database | None:
        return self._databases.get(connection_name)

    def validate_project(self, project_id: str) -> list[dict]:
        directory = self.lookml_dirs.get(project_id)
        return [] if directory is None else lint_project(directory)

    # logs ----------------------------------------------------------------------------------------

    def record(
        self,
        method: str,
        path: str,
        query: dict[str, str],
        status: int,
        body: Any,
        problems: list[str],
    ) -> None:
        entry = LoggedRequest(method, path, query, status, body, self.time.time(), list(problems))
        with self._log_lock:
            self.request_log.append(entry)

    def record_sql(self, connection_name: str, sql: str, result: list[dict]) -> None:
        with self._log_lock:
            self.sql_log.append(SqlRun(connection_name, sql, result))

    def record_response_problems(
        self, method: str, path: str, status: int, problems: list[str]
    ) -> None:
        if problems:
            with self._log_lock:
                self.response_problems += [f"{method} {path} {status}: {p}" for p in problems]

    def requests(self, method: str | None = None, path_contains: str = "") -> list[LoggedRequest]:
        """Logged requests, optionally filtered by method and a path fragment."""
        with self._log_lock:
            return [
                r
                for r in self.request_log
                if (method is None or r.method == method) and path_contains in r.path
            ]

    def request_problems(self) -> list[str]:
        """Every spec violation seen in requests so far."""
        with self._log_lock:
            return [f"{r.method} {r.path}: {p}" for r in self.request_log for p in r.problems]

"""What the sandbox Looker instance remembers: datagroups, PDT builds and SQL Runner queries."""

from __future__ import annotations

import hashlib
import secrets
import threading
from dataclasses import dataclass, field

from ..clock import TimeSource


@dataclass
class Datagroup:
    id: str
    model_name: str
    name: str
    created_at: int
    stale_before: int | None = None
    triggered_at: int | None = None

    def as_json(self) -> dict:
        return {
            "can": {"show": True, "update": True},
            "created_at": self.created_at,
            "id": self.id,
            "model_name": self.model_name,
            "name": self.name,
            "stale_before": self.stale_before,
            "trigger_check_at": self.created_at,
            "trigger_error": None,
            "trigger_value": None,
            "triggered_at": self.triggered_at,
        }


@dataclass
class Build:
    materialization_id: str
    model_name: str
    view_name: str
    started: float  # the time source's monotonic() at the start
    seconds: float

    def status(self, time_source: TimeSource) -> str:
        done = time_source.monotonic() - self.started >= self.seconds
        return (
            f"{self.model_name}/{self.view_name}: "
            f"{'complete: table regenerated' if done else 'running'}"
        )


@dataclass
class SqlQuery:
    slug: str
    connection_name: str
    sql: str
    run_count: int = 0
    last_run_at: str | None = None
    last_runtime: float | None = None


@dataclass
class LookerState:
    """Mutable instance state, guarded by one lock."""

    datagroups: dict[str, Datagroup] = field(default_factory=dict)
    builds: dict[str, Build] = field(default_factory=dict)
    queries: dict[str, SqlQuery] = field(default_factory=dict)
    validations: dict[str, dict] = field(default_factory=dict)  # project id -> last result
    lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def create(cls, datagroups: tuple[str, ...], time_source: TimeSource) -> LookerState:
        state = cls()
        now = int(time_source.time())
        for index, qualified in enumerate(datagroups, start=1):
            model, _, name = qualified.partition("::")
            state.datagroups[str(index)] = Datagroup(str(index), model, name, now)
        return state

    def new_query(self, connection_name: str, sql: str) -> SqlQuery:
        digest = hashlib.sha256(f"{connection_name}\0{sql}".encode()).hexdigest()
        slug = f"{digest[:6]}{secrets.token_hex(5)}"
        query = SqlQuery(slug, connection_name, sql)
        with self.lock:
            self.queries[slug] = query
        return query

    def start_build(self, model: str, view: str, seconds: float, time_source: TimeSource) -> Build:
        build = Build(secrets.token_hex(8), model, view, time_source.monotonic(), seconds)
        with self.lock:
            self.builds[build.materialization_id] = build
        return build

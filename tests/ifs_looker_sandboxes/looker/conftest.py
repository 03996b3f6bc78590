"""Fixtures for the Looker sandbox tests: a real PostgreSQL database behind its connection.

The sandbox runs on a `ManualClock` (`looker.time`): tests advance it, they never sleep.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal

import pytest
import requests

from ifs_looker_sandboxes.clock import ManualClock
from ifs_looker_sandboxes.looker import LookerConfig, LookerSandbox
from tests.postgres import database_url, fresh_database
from tests.sandboxes import running_looker

CONNECTION = "warehouse"
SECRET = "looker-sandbox-secret"


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this module (fails, not skips, without PostgreSQL)."""
    with fresh_database("looker_sb") as name:
        yield database_url(name)


@pytest.fixture
def looker(pg_url: str, tmp_path) -> Iterator[LookerSandbox]:
    """A Looker sandbox whose `warehouse` connection is PostgreSQL and `local` a DuckDB file.

    Requests are not required to match the spec here (tests send bad ones on purpose);
    every response must.
    """
    config = LookerConfig(
        connections={CONNECTION: pg_url, "local": f"duckdb:///{tmp_path / 'local.duckdb'}"},
        pdt_build_seconds=0.2,
    )
    with running_looker(
        config,
        time_source=ManualClock(),
        lookml_dirs={"ifs_cloud": tmp_path / "lookml"},
        check_requests=False,
    ) as sandbox:
        yield sandbox


class Api:
    """Raw HTTP against the sandbox, the way a Looker SDK would send it."""

    def __init__(self, sandbox: LookerSandbox) -> None:
        self.sandbox = sandbox
        self.session = requests.Session()
        self.token: str | None = None

    def login(self, client_id: str = "looker-sandbox", secret: str = SECRET):
        response = self.session.post(
            self.sandbox.api_url + "/login", data={"client_id": client_id, "client_secret": secret}
        )
        if response.status_code == 200:
            self.token = response.json()["access_token"]
        return response

    def call(self, method: str, path: str, **kwargs: object) -> requests.Response:
        headers = {"Authorization": f"token {self.token}"} if self.token else {}
        return self.session.request(method, self.sandbox.api_url + path, headers=headers, **kwargs)

    def sql(self, sql: str, connection: str = CONNECTION) -> list[dict]:
        slug = self.call("POST", "/sql_queries", json={"connection_name": connection, "sql": sql})
        assert slug.status_code == 200, slug.text
        run = self.call("POST", f"/sql_queries/{slug.json()['slug']}/run/json")
        assert run.status_code == 200, run.text
        return json.loads(run.text, parse_float=Decimal)


@pytest.fixture
def api(looker: LookerSandbox) -> Api:
    client = Api(looker)
    assert client.login().status_code == 200
    return client

"""The Looker sandbox answers Google's official Python client, `looker-sdk`, unmodified.

The SDK is configured the way its users configure it (a `looker.ini` file), pointed
at the sandbox, and drives every operation the sandbox offers; the sandbox checks each
request and response against the Looker API spec subset (`running_looker`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import looker_sdk
import pytest
from looker_sdk import error as sdk_error
from looker_sdk import models40
from looker_sdk.sdk.api40.methods import Looker40SDK

from ifs_looker_sandboxes.clock import ManualClock
from ifs_looker_sandboxes.looker import DEFAULT_MODEL, LookerConfig, LookerSandbox
from tests.sandboxes import running_looker

from .conftest import CONNECTION, SECRET


@pytest.fixture
def sandbox(pg_url: str, tmp_path: Path) -> Iterator[LookerSandbox]:
    """A sandbox that requires spec-valid requests as well as responses."""
    config = LookerConfig(
        connections={CONNECTION: pg_url, "local": f"duckdb:///{tmp_path / 'local.duckdb'}"},
        pdt_build_seconds=30,
    )
    project = tmp_path / "lookml"
    (project / "views").mkdir(parents=True)
    (project / "views" / "orders.view.lkml").write_text(
        'view: orders {\n  sql_table_name: "s"."orders" ;;\n'
        "  dimension: id {\n    primary_key: yes\n    sql: ${TABLE}.id ;;\n  }\n}\n"
    )
    (project / f"{DEFAULT_MODEL}.model.lkml").write_text(
        'connection: "warehouse"\ninclude: "/views/*.view.lkml"\nexplore: orders {}\n'
    )
    with running_looker(
        config, time_source=ManualClock(), lookml_dirs={DEFAULT_MODEL: project}
    ) as looker:
        yield looker


@pytest.fixture
def sdk(sandbox: LookerSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Looker40SDK:
    for name in [n for n in os.environ if n.startswith("LOOKERSDK_")]:
        monkeypatch.delenv(name)
    ini = tmp_path / "looker.ini"
    ini.write_text(
        "[Looker]\n"
        f"base_url={sandbox.base_url}\n"
        "client_id=looker-sandbox\n"
        f"client_secret={SECRET}\n"
        "verify_ssl=False\n"
        "timeout=30\n"
    )
    return looker_sdk.init40(config_file=str(ini))


def test_login_me_and_logout(sdk: Looker40SDK, sandbox: LookerSandbox) -> None:
    me = sdk.me()
    assert me.id == "1" and me.display_name == "API client"
    assert sdk.auth.is_authenticated
    token = sdk.auth.token.access_token
    assert sandbox.tokens.valid(f"Bearer {token}") == token
    sdk.auth.logout()
    assert not sdk.auth.is_authenticated
    [logout] = sandbox.requests("DELETE", "/logout")
    assert (logout.path, logout.status) == ("/api/logout", 204)  # where looker-sdk sends it
    assert sandbox.tokens.valid(f"Bearer {token}") is None  # the session is over
    assert [r.path for r in sandbox.requests("POST", "/login")] == ["/api/4.0/login"]


def test_the_sdk_logs_in_again_after_logging_out(sdk: Looker40SDK, sandbox: LookerSandbox) -> None:
    sdk.me()
    sdk.auth.logout()
    assert sdk.me().id == "1"
    assert len(sandbox.requests("POST", "/login")) == 2


def test_wrong_credentials_are_an_sdk_error(
    sandbox: LookerSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOOKERSDK_BASE_URL", sandbox.base_url)
    monkeypatch.setenv("LOOKERSDK_CLIENT_ID", "looker-sandbox")
    monkeypatch.setenv("LOOKERSDK_CLIENT_SECRET", "wrong")
    monkeypatch.setenv("LOOKERSDK_VERIFY_SSL", "false")
    ini = tmp_path / "empty.ini"
    ini.write_text("[Looker]\n")
    with pytest.raises(sdk_error.SDKError, match="Not found"):
        looker_sdk.init40(config_file=str(ini)).me()


def test_connections(sdk: Looker40SDK, pg_url: str) -> None:
    connections = sdk.all_connections()
    assert [c.name for c in connections] == ["local", CONNECTION]
    assert {c.name: c.dialect_name for c in connections} == {
        "local": "duckdb",
        CONNECTION: "postgres",
    }
    only = sdk.all_connections(fields="name,dialect_name")
    assert [(c.name, c.dialect_name, c.host) for c in only] == [
        ("local", "duckdb", None),
        (CONNECTION, "postgres", None),
    ]
    connection = sdk.connection(CONNECTION)
    assert connection.database == pg_url.rsplit("/", 1)[1]
    results = sdk.test_connection(CONNECTION)
    assert results and all(r.status == "success" for r in results)
    with pytest.raises(sdk_error.SDKError):
        sdk.connection("nope")


def test_sql_runner(sdk: Looker40SDK, sandbox: LookerSandbox) -> None:
    query = sdk.create_sql_query(
        models40.SqlQueryCreate(
            connection_name=CONNECTION,
            sql="SELECT 1 AS n, 12345678901234567890.123456789::numeric AS amount, 'x' AS t",
        )
    )
    assert query.slug and query.connection.name == CONNECTION
    text = sdk.run_sql_query(query.slug, "json")
    [row] = json.loads(text)
    assert row["n"] == 1 and row["t"] == "x"
    assert '"amount":12345678901234567890.123456789' in text.replace(" ", "")
    again = sdk.sql_query(query.slug)
    assert again.run_count == 1 and again.sql == query.sql
    broken = sdk.create_sql_query(
        models40.SqlQueryCreate(connection_name=CONNECTION, sql="SELECT * FROM no_such_table")
    )
    [error] = json.loads(sdk.run_sql_query(broken.slug, "json"))
    assert "no_such_table" in error["looker_error"]
    assert len(sandbox.sql_log) == 2


def test_datagroups(sdk: Looker40SDK, sandbox: LookerSandbox) -> None:
    groups = sdk.all_datagroups()
    assert [(g.model_name, g.name) for g in groups] == [
        (DEFAULT_MODEL, "ifs_nightly"),
        (DEFAULT_MODEL, "ifs_gl"),
    ]
    now = int(sandbox.time.time())
    updated = sdk.update_datagroup(groups[0].id, models40.WriteDatagroup(stale_before=now))
    assert updated.stale_before == now
    assert sdk.datagroup(groups[0].id).stale_before == now
    with pytest.raises(sdk_error.SDKError, match="Validation Failed"):
        sdk.update_datagroup(groups[0].id, models40.WriteDatagroup(stale_before=now + 3600))


def test_pdt_builds(sdk: Looker40SDK, sandbox: LookerSandbox) -> None:
    build = sdk.start_pdt_build(DEFAULT_MODEL, "gl_monthly_balances", source="looker-sdk test")
    assert build.materialization_id
    assert sdk.check_pdt_build(build.materialization_id).resp_text.endswith("running")
    sandbox.time.advance(31)
    assert "complete" in sdk.check_pdt_build(build.materialization_id).resp_text
    with pytest.raises(sdk_error.SDKError):
        sdk.start_pdt_build(DEFAULT_MODEL, "nope")


def test_project_validation(sdk: Looker40SDK, sandbox: LookerSandbox) -> None:
    assert not sdk.project_validation_results(DEFAULT_MODEL)  # 204: never validated
    result = sdk.validate_project(DEFAULT_MODEL)
    assert result.errors == [] and result.models_not_validated == []
    cached = sdk.project_validation_results(DEFAULT_MODEL)
    assert cached.errors == [] and cached.stale is False
    views = sandbox.lookml_dirs[DEFAULT_MODEL] / "views" / "orders.view.lkml"
    views.write_text(views.read_text().replace("${TABLE}.id", "${nope}"))
    [problem] = sdk.validate_project(DEFAULT_MODEL).errors
    assert problem.message == "Unknown field 'nope' in view orders"
    assert problem.file_path == "views/orders.view.lkml"

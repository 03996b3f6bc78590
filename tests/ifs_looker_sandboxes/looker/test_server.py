"""The Looker sandbox over real HTTP: sessions, connections, SQL Runner, datagroups, PDTs.

Every response is checked against the spec subset by the `looker` fixture on teardown.
Time is the sandbox's `ManualClock`: tests advance it, they never sleep.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from ifs_looker_sandboxes.clock import ManualClock
from ifs_looker_sandboxes.looker import LookerConfig, LookerSandbox
from tests.sandboxes import running_looker

from .conftest import CONNECTION, Api

AUTH_ERROR = {
    "message": "Requires authentication.",
    "documentation_url": "https://cloud.google.com/looker/docs/r/api",
}


# sessions ----------------------------------------------------------------------------------------


def test_login_returns_a_token_that_authorizes_requests(looker: LookerSandbox) -> None:
    api = Api(looker)
    response = api.login()
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert api.call("GET", "/datagroups").status_code == 200


def test_wrong_credentials_get_404_like_looker(looker: LookerSandbox) -> None:
    response = Api(looker).login(secret="wrong")
    assert response.status_code == 404
    assert response.json()["message"] == "Not found"
    logged = looker.requests("POST", "/login")[-1]
    assert logged.body == {"client_id": "looker-sandbox", "client_secret": "***"}


def test_missing_or_expired_tokens_get_401(pg_url: str) -> None:
    clock = ManualClock()
    config = LookerConfig(connections={CONNECTION: pg_url}, token_lifetime=1)
    with running_looker(config, time_source=clock) as looker:
        api = Api(looker)
        assert api.call("GET", "/datagroups").json() == AUTH_ERROR
        api.login()
        assert api.call("GET", "/datagroups").status_code == 200
        clock.advance(0.5)
        assert api.call("GET", "/datagroups").status_code == 200
        clock.advance(0.5)  # exactly the lifetime
        expired = api.call("GET", "/datagroups")
        assert (expired.status_code, expired.json()) == (401, AUTH_ERROR)


def test_logout_ends_the_session(api: Api) -> None:
    assert api.call("DELETE", "/logout").status_code == 204
    assert api.call("GET", "/datagroups").status_code == 401


def test_expire_tokens_turns_live_sessions_into_401(looker: LookerSandbox, api: Api) -> None:
    looker.expire_tokens()
    assert api.call("GET", "/datagroups").status_code == 401


# connections -------------------------------------------------------------------------------------


def test_connection_describes_the_database_without_its_password(api: Api, pg_url: str) -> None:
    body = api.call("GET", f"/connections/{CONNECTION}").json()
    assert body["name"] == CONNECTION
    assert body["dialect_name"] == "postgres"
    assert body["database"] == pg_url.rsplit("/", 1)[1]
    assert body["has_password"] is False
    assert "password" not in body


def test_connection_test_reports_each_step(api: Api) -> None:
    results = api.call("PUT", f"/connections/{CONNECTION}/test").json()
    assert [(r["name"], r["status"]) for r in results] == [
        ("connect", "success"),
        ("query", "success"),
    ]


def test_connection_test_reports_an_unreachable_database() -> None:
    config = LookerConfig(connections={"gone": "postgresql://postgres@127.0.0.1:1/none"})
    with running_looker(config) as looker:
        api = Api(looker)
        api.login()
        results = api.call("PUT", "/connections/gone/test").json()
        assert results[0]["name"] == "connect"
        assert results[0]["status"] == "error"
        assert "Cannot connect" in results[0]["message"]


def test_unknown_connection_is_404(api: Api) -> None:
    assert api.call("GET", "/connections/nope").status_code == 404


# SQL Runner --------------------------------------------------------------------------------------


def test_sql_runner_executes_against_postgres_with_exact_numbers(api: Api) -> None:
    rows = api.sql("SELECT 12345678901234567890.123456789::numeric AS amount, 'å''s' AS text")
    assert rows == [{"amount": Decimal("12345678901234567890.123456789"), "text": "å's"}]


def test_sql_runner_executes_against_a_duckdb_file(api: Api) -> None:
    api.sql("CREATE TABLE t AS SELECT 42 AS answer", connection="local")
    assert api.sql("SELECT answer FROM t", connection="local") == [{"answer": 42}]


def test_a_script_commits_as_one_transaction_or_not_at_all(api: Api) -> None:
    api.sql("CREATE TABLE IF NOT EXISTS atomic (id int PRIMARY KEY)")
    failed = api.sql("BEGIN; INSERT INTO atomic VALUES (1); INSERT INTO atomic VALUES (1); COMMIT;")
    assert "duplicate key" in failed[0]["looker_error"]
    assert api.sql("SELECT count(*) AS n FROM atomic") == [{"n": 0}]
    api.sql("BEGIN; INSERT INTO atomic VALUES (1); INSERT INTO atomic VALUES (2); COMMIT;")
    assert api.sql("SELECT count(*) AS n FROM atomic") == [{"n": 2}]


def test_sql_errors_are_http_200_with_looker_error(api: Api) -> None:
    slug = api.call("POST", "/sql_queries", json={"connection_name": CONNECTION, "sql": "SELEC 1"})
    run = api.call("POST", f"/sql_queries/{slug.json()['slug']}/run/json")
    assert run.status_code == 200
    assert list(run.json()[0]) == ["looker_error"]
    assert "syntax error" in run.json()[0]["looker_error"]


def test_sql_query_bodies_are_validated(api: Api, looker: LookerSandbox) -> None:
    response = api.call("POST", "/sql_queries", json={"connection_name": CONNECTION, "sql": 7})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "<body>"
    assert looker.request_problems() == [
        "POST /api/4.0/sql_queries: sql: 7 is not of type 'string', 'null'"
    ]


def test_sql_query_can_be_read_back(api: Api) -> None:
    created = api.call(
        "POST", "/sql_queries", json={"connection_name": CONNECTION, "sql": "SELECT 1"}
    )
    slug = created.json()["slug"]
    api.call("POST", f"/sql_queries/{slug}/run/json")
    body = api.call("GET", f"/sql_queries/{slug}").json()
    assert (body["sql"], body["run_count"], body["connection"]["name"]) == (
        "SELECT 1",
        1,
        CONNECTION,
    )


# datagroups and PDTs -----------------------------------------------------------------------------


def test_datagroups_can_be_marked_stale_but_not_in_the_future(
    api: Api, looker: LookerSandbox
) -> None:
    groups = api.call("GET", "/datagroups").json()
    assert [(g["model_name"], g["name"]) for g in groups] == [
        ("ifs_cloud", "ifs_nightly"),
        ("ifs_cloud", "ifs_gl"),
    ]
    now = int(looker.time.time())
    assert {g["created_at"] for g in groups} == {now}
    future = api.call("PATCH", "/datagroups/1", json={"stale_before": now + 60})
    assert future.status_code == 422
    assert future.json()["errors"][0]["field"] == "stale_before"
    ok = api.call("PATCH", "/datagroups/1", json={"stale_before": now, "triggered_at": now})
    assert (ok.json()["stale_before"], ok.json()["triggered_at"]) == (now, now)
    assert api.call("GET", "/datagroups/1").json()["stale_before"] == now
    assert api.call("PATCH", "/datagroups/99", json={"stale_before": now}).status_code == 404


def test_pdt_builds_start_and_complete(api: Api, looker: LookerSandbox) -> None:
    started = api.call("GET", "/derived_table/ifs_cloud/gl_monthly_balances/start").json()
    status = f"/derived_table/{started['materialization_id']}/status"
    assert api.call("GET", status).json()["resp_text"].endswith("running")
    looker.time.advance(0.1)  # the fixture's builds take 0.2 s
    assert api.call("GET", status).json()["resp_text"].endswith("running")
    looker.time.advance(0.15)
    assert "complete" in api.call("GET", status).json()["resp_text"]
    assert api.call("GET", "/derived_table/ifs_cloud/nope/start").status_code == 404


# projects ----------------------------------------------------------------------------------------


def test_project_validate_lints_the_lookml_checkout(api: Api, looker: LookerSandbox) -> None:
    root = looker.lookml_dirs["ifs_cloud"]
    (root / "views").mkdir(parents=True)
    (root / "views" / "orders.view.lkml").write_text(
        'view: orders {\n  sql_table_name: "s"."orders" ;;\n'
        "  dimension: id {\n    primary_key: yes\n    sql: ${TABLE}.id ;;\n  }\n"
        "  dimension_group: created {\n    type: time\n    timeframes: [raw, date, month]\n"
        "    sql: ${TABLE}.created ;;\n  }\n"
        "  measure: total {\n    type: sum\n    sql: ${amount} ;;\n  }\n}\n"
    )
    (root / "ifs_cloud.model.lkml").write_text(
        'connection: "warehouse"\nexplore: orders {\n  join: customers {\n'
        "    sql_on: ${orders.created_month} = ${customers.id} ;;\n  }\n}\n"
    )
    result = api.call("POST", "/projects/ifs_cloud/validate").json()
    messages = sorted(e["message"] for e in result["errors"])
    assert messages == [
        "Unknown field 'amount' in view orders",
        "Unknown field 'customers.id' in orders",
        "View 'customers' (as customers) not found",
    ]
    assert api.call("POST", "/projects/other/validate").status_code == 404


# faults and the request log ----------------------------------------------------------------------


def test_throttling_answers_429_with_retry_after(looker: LookerSandbox, api: Api) -> None:
    looker.update_config(rate_429=1.0, retry_after_seconds=3)
    response = api.call("GET", "/datagroups")
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "3"
    assert response.json()["message"] == "Too Many Requests"
    looker.update_config(rate_429=0.0, rate_5xx=1.0)
    assert api.call("GET", "/datagroups").status_code in (502, 503, 504)


def test_request_log_records_method_path_status_and_body(looker: LookerSandbox, api: Api) -> None:
    looker.time.advance(42)
    api.call("PATCH", "/datagroups/2", json={"stale_before": int(looker.time.time())})
    entry = looker.requests("PATCH")[-1]
    assert (entry.method, entry.path, entry.status) == ("PATCH", "/api/4.0/datagroups/2", 200)
    assert set(entry.body) == {"stale_before"}
    assert entry.problems == []
    assert entry.at == looker.time.time()


@pytest.mark.parametrize("path", ["/nope", "/api/4.0/nope"])
def test_unknown_paths_are_404_with_an_error_body(api: Api, path: str) -> None:
    response = api.session.get(api.sandbox.base_url + path)
    assert response.status_code == 404
    assert set(response.json()) == {"message", "documentation_url"}

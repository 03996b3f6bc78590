"""The Looker API client against the Looker sandbox over real HTTP.

Sessions are reused and renewed (before expiry and once after a 401), throttling and
gateway errors are ridden out with the shared retry policy, SQL errors reported with
HTTP 200 are failures, and no token or secret reaches a log line or an exception.
Every request the client sends is checked against the spec subset by the sandbox.
"""

from __future__ import annotations

import logging
import time

import pytest
import requests

from ifs_looker_core.retry import RetryPolicy
from ifs_looker_sandboxes.clock import ManualClock
from ifs_looker_sandboxes.looker import LookerConfig, LookerSandbox
from target_looker.looker_api import (
    LookerAPIError,
    LookerAuthError,
    LookerClient,
    LookerCredentials,
    LookerSqlError,
)
from tests.sandboxes import running_looker

SECRET = "looker-sandbox-secret"
FAST = RetryPolicy(max_retries=30, max_backoff_seconds=0.05, base_seconds=0.01)


@pytest.fixture
def sandbox(looker_sandbox: LookerSandbox) -> LookerSandbox:
    return looker_sandbox


class TokenSpy:
    """Collects every access token the sandbox hands out (to prove none is logged)."""

    def __init__(self, session: requests.Session) -> None:
        self.tokens: list[str] = []
        session.hooks["response"].append(self._seen)

    def _seen(self, response: requests.Response, *args: object, **kwargs: object) -> None:
        if response.request.url.endswith("/login") and response.status_code == 200:
            self.tokens.append(response.json()["access_token"])


def client_for(sandbox: LookerSandbox, secret: str = SECRET, **kwargs: object) -> LookerClient:
    credentials = LookerCredentials(sandbox.base_url, "looker-sandbox", secret)
    return LookerClient(credentials, policy=kwargs.pop("policy", FAST), **kwargs)  # type: ignore[arg-type]


def test_one_login_serves_many_requests_and_logout_ends_it(sandbox: LookerSandbox) -> None:
    with client_for(sandbox) as client:
        for _ in range(3):
            assert len(client.datagroups()) == 2
        assert client.login_count == 1
    methods = [(r.method, r.path.rsplit("/", 1)[-1], r.status) for r in sandbox.request_log]
    assert methods == [
        ("POST", "login", 200),
        ("GET", "datagroups", 200),
        ("GET", "datagroups", 200),
        ("GET", "datagroups", 200),
        ("DELETE", "logout", 204),
    ]


def test_tokens_expiring_every_second_are_renewed_during_a_long_session(tmp_path) -> None:
    # one manual clock drives both sides: the sandbox expires tokens by it, the client renews by it
    clock = ManualClock()
    config = LookerConfig(
        connections={"local": f"duckdb:///{tmp_path / 'w.duckdb'}"}, token_lifetime=1
    )
    with running_looker(config, time_source=clock) as sandbox:
        client = client_for(sandbox, clock=clock.monotonic, sleep=clock.sleep)
        for _ in range(20):  # 5 s of session, a call every 0.25 s
            assert client.datagroups()
            clock.advance(0.25)
        client.close()
    # renewed 0.1 s before each expiry (a tenth of the lifetime): at 0, 1, 2, 3 and 4 s
    assert client.login_count == 5
    assert [r.status for r in sandbox.requests("GET", "/datagroups")] == [200] * 20
    assert len(sandbox.requests("POST", "/login")) == 5


def test_a_401_logs_in_again_and_resends_once(sandbox: LookerSandbox) -> None:
    client = client_for(sandbox)
    client.datagroups()
    sandbox.expire_tokens()
    assert client.datagroups()
    statuses = [r.status for r in sandbox.requests("GET", "/datagroups")]
    assert statuses == [200, 401, 200]
    assert client.login_count == 2


class RushingClock(ManualClock):
    """Each reading a second after the one before: a token is dead before its first use
    (however fast the machine answers)."""

    def monotonic(self) -> float:
        self.advance(1.0)
        return super().monotonic()


def test_a_second_401_after_relogin_is_an_error_not_a_loop(tmp_path) -> None:
    config = LookerConfig(
        connections={"local": f"duckdb:///{tmp_path / 'w.duckdb'}"}, token_lifetime=0.001
    )  # reported as 1 s to the client, dead on the sandbox's next reading of its clock
    with running_looker(config, time_source=RushingClock()) as sandbox:
        client = client_for(sandbox)
        with pytest.raises(LookerAPIError) as caught:
            client.datagroups()
        assert caught.value.status == 401
        assert "Requires authentication." in str(caught.value)
        assert client.login_count == 2
        assert len(sandbox.requests("GET", "/datagroups")) == 2


def test_a_429_storm_is_ridden_out(sandbox: LookerSandbox) -> None:
    sandbox.update_config(rate_429=0.6, rate_5xx=0.1)
    client = client_for(sandbox)
    for _ in range(15):
        assert len(client.datagroups()) == 2
    throttled = [r for r in sandbox.request_log if r.status == 429]
    assert len(throttled) >= 10


def test_giving_up_names_the_request_and_last_status(sandbox: LookerSandbox) -> None:
    sandbox.update_config(rate_5xx=1.0)
    client = client_for(sandbox, policy=RetryPolicy(max_retries=2, base_seconds=0.01))
    with pytest.raises(LookerAPIError) as caught:
        client.datagroups()
    message = str(caught.value)
    assert "GET /datagroups" in message
    assert "after 3 attempts" in message
    assert len(sandbox.request_log) == 3  # login attempts are part of the first send


def test_an_explicit_login_that_never_gets_an_answer_names_the_login(
    sandbox: LookerSandbox,
) -> None:
    sandbox.update_config(rate_5xx=1.0)
    client = client_for(sandbox, policy=RetryPolicy(max_retries=1, base_seconds=0.01))
    with pytest.raises(LookerAPIError) as caught:
        client.login()
    assert str(caught.value).startswith("Looker API POST /login failed: HTTP 0: Gave up on POST")
    assert client.login_count == 0


def test_wrong_credentials_fail_clearly_without_the_secret(sandbox: LookerSandbox) -> None:
    client = client_for(sandbox, secret="not-the-secret-123")
    with pytest.raises(LookerAuthError) as caught:
        client.datagroups()
    message = str(caught.value)
    assert "refused the API client id/secret" in message
    assert "looker-sandbox" in message
    assert "not-the-secret-123" not in message
    assert "not-the-secret-123" not in repr(client.credentials)


def test_sql_runner_errors_reported_with_http_200_raise(sandbox: LookerSandbox) -> None:
    client = client_for(sandbox)
    assert client.run_sql("local", "SELECT 1 AS one") == [{"one": 1}]
    with pytest.raises(LookerSqlError) as caught:
        client.run_sql("local", "SELECT * FROM missing_table")
    assert caught.value.status == 200
    assert "missing_table" in str(caught.value)


def test_api_errors_carry_lookers_message(sandbox: LookerSandbox) -> None:
    client = client_for(sandbox)
    with pytest.raises(LookerAPIError) as caught:
        client.update_datagroup("1", stale_before=int(time.time()) + 3600)
    assert caught.value.status == 422
    assert "stale_before: stale_before cannot be in the future" in str(caught.value)


def test_no_token_or_secret_in_logs_through_relogins_and_retries(
    sandbox: LookerSandbox, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    session = requests.Session()
    spy = TokenSpy(session)
    client = client_for(sandbox, session=session)
    client.datagroups()
    sandbox.expire_tokens()
    sandbox.update_config(rate_429=0.5)
    client.datagroups()
    client.test_connection("local")
    sandbox.update_config(rate_429=0.0)
    client.close()
    assert len(spy.tokens) == 2
    text = caplog.text
    assert "401 Unauthorized" in text
    for secret in [*spy.tokens, SECRET]:
        assert secret not in text


def test_every_operation_the_target_uses_speaks_the_spec(sandbox: LookerSandbox) -> None:
    """The sandbox fixture fails this test on any request or response off the spec."""
    with client_for(sandbox) as client:
        client.connection("local")
        client.test_connection("local")
        slug = client.create_sql_query("local", "SELECT 1 AS x")
        assert client.run_sql_query(slug) == [{"x": 1}]
        group = client.datagroups()[0]
        client.update_datagroup(group["id"], stale_before=int(time.time()))
        build = client.start_pdt_build("ifs_cloud", "gl_monthly_balances")
        assert client.pdt_build_status(build["materialization_id"])["resp_text"]
        assert client.validate_project("ifs_cloud")["errors"] == []
    assert len(sandbox.request_log) == 11

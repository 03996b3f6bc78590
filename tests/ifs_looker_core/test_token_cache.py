"""The shared token cache, with a fake clock and a fake token endpoint: no HTTP, no sleeping.

Renewal happens `renewal_margin` before expiry counted from when the token was
requested; many threads meeting one 401 cause one renewal; a 401 for a token some
other thread already replaced causes none; and the token never shows in a repr.
"""

from __future__ import annotations

import io
import threading

import pytest
import requests

from ifs_looker_core.retry import RetryPolicy
from ifs_looker_core.token_cache import IssuedToken, TokenCache, renewal_margin, send_authorized

NO_WAIT = RetryPolicy(max_retries=3, base_seconds=0.0, max_backoff_seconds=0.0)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeIssuer:
    """Hands out token-1, token-2, ...; each request to it takes `takes` seconds of the clock."""

    def __init__(self, clock: FakeClock, lifetime: float = 3600.0, takes: float = 0.0) -> None:
        self.clock, self.lifetime, self.takes = clock, lifetime, takes
        self.reasons: list[str] = []

    def __call__(self, reason: str) -> IssuedToken:
        self.reasons.append(reason)
        self.clock.now += self.takes
        return IssuedToken(f"token-{len(self.reasons)}", self.lifetime)


def response(status: int) -> requests.Response:
    answer = requests.Response()
    answer.status_code = status
    answer.raw = io.BytesIO(b"")
    return answer


def test_renewal_margin_is_60_seconds_or_a_tenth_of_short_lifetimes() -> None:
    assert renewal_margin(3600) == 60
    assert renewal_margin(180) == 18
    assert renewal_margin(2) == pytest.approx(0.2)


def test_a_token_is_reused_until_the_margin_before_expiry_counted_from_the_request() -> None:
    clock = FakeClock()
    issuer = FakeIssuer(clock, lifetime=180, takes=5)  # the endpoint takes 5 s to answer
    cache = TokenCache(issuer, clock=clock)
    assert cache.token() == "token-1"
    # requested at 1000: renewed at 1000 + 180 - 18 = 1162, not 5 s later
    clock.now = 1161.9
    assert cache.token() == "token-1"
    clock.now = 1162.0
    assert cache.token() == "token-2"
    assert issuer.reasons == ["first use", "expiring"]
    assert cache.issued_count == 2


def test_many_threads_meeting_one_401_renew_once() -> None:
    clock = FakeClock()
    entered, release = threading.Event(), threading.Event()
    issued: list[str] = []

    def slow_issue(reason: str) -> IssuedToken:
        issued.append(reason)
        if len(issued) == 2:  # the renewal: hold it until every thread has asked
            entered.set()
            release.wait(5)
        return IssuedToken(f"token-{len(issued)}", 3600)

    cache = TokenCache(slow_issue, clock=clock)
    rejected = cache.token()
    threads = [
        threading.Thread(target=cache.renew_after_unauthorized, args=(rejected,)) for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    assert entered.wait(5)
    release.set()
    for thread in threads:
        thread.join(5)
    assert issued == ["first use", "401 Unauthorized"]
    assert cache.token() == "token-2"


def test_a_401_for_a_token_already_replaced_renews_nothing() -> None:
    clock = FakeClock()
    issuer = FakeIssuer(clock)
    cache = TokenCache(issuer, clock=clock)
    first = cache.token()
    cache.renew_after_unauthorized(first)  # this thread's 401: renewed
    cache.renew_after_unauthorized(first)  # another thread's 401 for the same old token
    assert cache.token() == "token-2"
    assert cache.issued_count == 2


def test_take_hands_the_token_over_once_and_the_next_use_issues_a_new_one() -> None:
    clock = FakeClock()
    cache = TokenCache(FakeIssuer(clock), clock=clock)
    assert cache.take() is None
    cache.token()
    assert cache.take() == "token-1"
    assert cache.take() is None
    assert cache.token() == "token-2"


def test_a_failed_issue_keeps_no_token_and_the_next_use_tries_again() -> None:
    clock = FakeClock()
    calls: list[str] = []

    def flaky(reason: str) -> IssuedToken:
        calls.append(reason)
        if len(calls) == 1:
            raise RuntimeError("endpoint down")
        return IssuedToken("token-ok", 60)

    cache = TokenCache(flaky, clock=clock)
    with pytest.raises(RuntimeError, match="endpoint down"):
        cache.token()
    assert cache.issued_count == 0
    assert cache.token() == "token-ok"


def test_the_token_never_shows_in_a_repr() -> None:
    clock = FakeClock()
    cache = TokenCache(lambda reason: IssuedToken("s3cret-token-value", 60), clock=clock)
    cache.token()
    assert "s3cret-token-value" not in repr(cache)
    assert repr(cache) == "TokenCache(held=True, issued=1)"
    assert "s3cret-token-value" not in repr(IssuedToken("s3cret-token-value", 60))


def test_send_authorized_renews_and_resends_once_after_a_401() -> None:
    clock = FakeClock()
    cache = TokenCache(FakeIssuer(clock), clock=clock)
    sent: list[str] = []
    answers = iter([401, 200])

    def send(token: str) -> requests.Response:
        sent.append(token)
        return response(next(answers))

    got = send_authorized(cache, send, policy=NO_WAIT, method="GET", url="https://x/api")
    assert got.status_code == 200
    assert sent == ["token-1", "token-2"]
    assert cache.issued_count == 2


def test_send_authorized_returns_a_second_401_instead_of_looping() -> None:
    clock = FakeClock()
    cache = TokenCache(FakeIssuer(clock), clock=clock)
    sent: list[str] = []

    def send(token: str) -> requests.Response:
        sent.append(token)
        return response(401)

    got = send_authorized(cache, send, policy=NO_WAIT, method="GET", url="https://x/api")
    assert got.status_code == 401
    assert sent == ["token-1", "token-2"]
    assert cache.issued_count == 2


def test_send_authorized_rides_out_throttling_with_the_same_token() -> None:
    clock = FakeClock()
    cache = TokenCache(FakeIssuer(clock), clock=clock)
    sent: list[str] = []
    answers = iter([429, 503, 200])

    def send(token: str) -> requests.Response:
        sent.append(token)
        return response(next(answers))

    got = send_authorized(
        cache, send, policy=NO_WAIT, method="GET", url="https://x/api", sleep=lambda _: None
    )
    assert got.status_code == 200
    assert sent == ["token-1"] * 3
    assert cache.issued_count == 1

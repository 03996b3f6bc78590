"""Fault knobs: each produces the failure a client must survive, at the configured share."""

from __future__ import annotations

from datetime import timedelta
from email.utils import parsedate_to_datetime

import pytest
import requests

from ifs_looker_sandboxes.clock import ManualClock

from .conftest import ODataClient

VOUCHERS = ("VoucherRowsAnalysis", "VoucherRowSet")


def statuses(client: ODataClient, count: int) -> list[requests.Response]:
    return [client.get(*VOUCHERS, **{"$top": "1"}) for _ in range(count)]


def test_every_request_throttled_carries_each_retry_after_form(sandbox_factory) -> None:
    clock = ManualClock()
    sandbox = sandbox_factory(
        time_source=clock, rate_429=1.0, retry_after="mixed", retry_after_seconds=2
    )
    client = ODataClient(sandbox)
    responses = statuses(client, 3)
    assert [r.status_code for r in responses] == [429, 429, 429]
    forms = [r.headers.get("Retry-After") for r in responses]
    assert forms[0] == "2"
    # a date one second later than the seconds form, as HTTP dates have no fractions
    assert parsedate_to_datetime(forms[1]) == clock.now() + timedelta(seconds=3)
    assert forms[2] is None
    assert responses[0].json()["error"]["message"] == "Too many requests."


@pytest.mark.parametrize("mode", ["seconds", "http-date", "none"])
def test_retry_after_mode_is_fixed_when_chosen(sandbox_factory, mode: str) -> None:
    client = ODataClient(sandbox_factory(rate_429=1.0, retry_after=mode))
    headers = {r.headers.get("Retry-After") is not None for r in statuses(client, 4)}
    assert headers == {mode != "none"}


def test_throttle_share_is_roughly_the_configured_share(sandbox_factory) -> None:
    client = ODataClient(sandbox_factory(rate_429=0.2, voucher_rows_per_company=10))
    codes = [r.status_code for r in statuses(client, 300)]
    assert set(codes) == {200, 429}
    assert 0.12 <= codes.count(429) / len(codes) <= 0.28


def test_server_errors_rotate_through_502_503_504(sandbox_factory) -> None:
    client = ODataClient(sandbox_factory(rate_5xx=1.0, voucher_rows_per_company=10))
    assert [r.status_code for r in statuses(client, 3)] == [503, 502, 504]


def test_dropped_connections_give_connection_errors(sandbox_factory) -> None:
    client = ODataClient(sandbox_factory(drop_rate=1.0, voucher_rows_per_company=10))
    with pytest.raises(requests.ConnectionError):
        client.get(*VOUCHERS)
    # the server thread logs after the client has seen the reset
    logged = client.sandbox.wait_for_request(lambda entry: entry[2] == 0)
    assert logged is not None
    assert (logged[0], logged[2]) == ("GET", 0)


def test_latency_delays_answers(sandbox_factory) -> None:
    clock = ManualClock()  # waiting on a manual clock moves it on: no wall time in the test
    client = ODataClient(
        sandbox_factory(time_source=clock, latency_ms=300, voucher_rows_per_company=10)
    )
    before = clock.monotonic()
    assert client.get(*VOUCHERS, **{"$top": "1"}).status_code == 200
    assert clock.monotonic() - before == pytest.approx(0.3)


def test_faults_spare_the_token_endpoint_and_can_be_switched_at_runtime(sandbox_factory) -> None:
    sandbox = sandbox_factory(rate_429=1.0, voucher_rows_per_company=10)
    client = ODataClient(sandbox)  # logging in works although every OData request is throttled
    assert client.get(*VOUCHERS).status_code == 429
    sandbox.update_config(rate_429=0.0)
    assert client.get(*VOUCHERS).status_code == 200

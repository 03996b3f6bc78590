"""IFS IAM tokens: one per process (the core's token cache), renewed early, never shown."""

from __future__ import annotations

import pytest

from ifs_looker_core.token_cache import renewal_margin
from tap_ifscloud.auth import IFSTokenProvider
from tap_ifscloud.errors import AuthenticationError


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def provider(sandbox, clock, secret=None) -> IFSTokenProvider:
    return IFSTokenProvider(
        token_url=sandbox.token_url,
        client_id=sandbox.config.client_id,
        client_secret=secret or sandbox.config.client_secret,
        clock=clock,
    )


def test_renewal_margin_is_60_seconds_or_a_tenth_of_the_lifetime():
    assert renewal_margin(3600) == 60
    assert renewal_margin(180) == 18
    assert renewal_margin(3) == pytest.approx(0.3)


def test_token_is_reused_until_the_margin_then_renewed(shared_sandbox):
    clock = Clock()
    tokens = provider(shared_sandbox, clock)
    first = tokens.token()
    clock.now += 3600 - 61
    assert tokens.token() == first
    clock.now += 2  # now inside the 60 s margin
    second = tokens.token()
    assert second != first
    assert tokens.refresh_count == 2


def test_a_rejected_token_is_replaced_once_even_if_several_streams_report_it(shared_sandbox):
    tokens = provider(shared_sandbox, Clock())
    first = tokens.token()
    tokens.cache.renew_after_unauthorized(first)
    second = tokens.token()
    tokens.cache.renew_after_unauthorized(first)  # a late report about the old token
    assert tokens.token() == second != first
    assert tokens.refresh_count == 2


def test_wrong_secret_is_a_clear_error_without_the_secret(shared_sandbox):
    tokens = provider(shared_sandbox, Clock(), secret="wrong-secret-value")
    with pytest.raises(AuthenticationError) as caught:
        tokens.token()
    message = str(caught.value)
    assert "refused client 'ifs-looker-sandbox' (HTTP 401)" in message
    assert "wrong-secret-value" not in message
    assert "wrong-secret-value" not in repr(tokens)

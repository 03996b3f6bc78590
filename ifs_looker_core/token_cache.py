"""One bearer token per process, renewed before it expires and once after a 401.

IFS IAM and Looker both hand out tokens that expire (IFS IAM clients are often set
to 180 s; Looker to 3600 s), and both answer 401 to an expired or revoked one. The
rules live here once, so the tap and the target cannot drift apart:

- a token is renewed `renewal_margin(lifetime)` before it expires (60 s, or 10% of
  its life when that is shorter, so short-lived tokens still get used), counting its
  life from the moment it was requested, not received;
- a 401 renews the token once, unless another thread already replaced the token
  that was refused (many threads hitting one expiry must cause one renewal, not many);
- the token itself never appears in `repr`, logs or errors.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import requests

from ifs_looker_core.retry import RetryPolicy, send_with_retries

MAX_RENEWAL_MARGIN_SECONDS = 60.0


def renewal_margin(lifetime: float) -> float:
    """How long before expiry a token is replaced."""
    return min(MAX_RENEWAL_MARGIN_SECONDS, 0.1 * lifetime)


@dataclass(frozen=True)
class IssuedToken:
    """What a login or token endpoint answered."""

    value: str = field(repr=False)
    lifetime_seconds: float


class TokenCache:
    """Holds the current token; `issue(reason)` obtains a new one when it is due."""

    def __init__(
        self,
        issue: Callable[[str], IssuedToken],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._issue = issue
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._renew_at = 0.0
        self.issued_count = 0

    def __repr__(self) -> str:
        return f"TokenCache(held={self._token is not None}, issued={self.issued_count})"

    def token(self) -> str:
        """A token valid for at least the renewal margin."""
        with self._lock:
            if self._token is None or self._clock() >= self._renew_at:
                self._renew("expiring" if self._token else "first use")
            return _held(self._token)

    def renew_after_unauthorized(self, rejected: str | None) -> None:
        """Replace the token the server refused, unless another thread already did."""
        with self._lock:
            if self._token is None or rejected is None or self._token == rejected:
                self._renew("401 Unauthorized")

    def take(self) -> str | None:
        """Forget the token and hand it over (to log it out); None when none is held."""
        with self._lock:
            token, self._token = self._token, None
            return token

    def _renew(self, reason: str) -> None:
        requested = self._clock()
        issued = self._issue(reason)
        lifetime = issued.lifetime_seconds
        self._token = issued.value
        self._renew_at = requested + lifetime - renewal_margin(lifetime)
        self.issued_count += 1


def _held(token: str | None) -> str:
    if token is None:  # _renew either sets a token or raises
        raise RuntimeError("no token after renewal")
    return token


def send_authorized(
    cache: TokenCache,
    send: Callable[[str], requests.Response],
    *,
    policy: RetryPolicy,
    method: str,
    url: str,
    **retry_options: object,
) -> requests.Response:
    """`send(token)` through the retry policy; a 401 renews the token and resends once."""
    used: list[str] = []

    def attempt() -> requests.Response:
        token = cache.token()
        used.append(token)
        return send(token)

    def renew() -> bool:
        cache.renew_after_unauthorized(used[-1] if used else None)
        return True

    return send_with_retries(
        attempt,
        policy=policy,
        method=method,
        url=url,
        on_unauthorized=renew,
        **retry_options,  # type: ignore[arg-type]
    )

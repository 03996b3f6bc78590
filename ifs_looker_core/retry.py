"""HTTP retry policy shared by the IFS Cloud tap and the Looker API client.

Both sides talk to services that throttle (429, with or without `Retry-After`),
have transient gateway failures (502/503/504) and drop connections. The rules
for when to retry, how long to wait and when to give up live here once, so the
two clients cannot drift apart. Authentication is the caller's business: a
caller passes `on_unauthorized`, which refreshes its credentials and says
whether the request may be sent again.
"""

from __future__ import annotations

import email.utils
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone

import requests

from ifs_looker_core.redaction import redact_url

logger = logging.getLogger(__name__)

RETRY_STATUSES: frozenset[int] = frozenset({429, 502, 503, 504})
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    requests.exceptions.ChunkedEncodingError,
    ConnectionResetError,
)


class RetriesExhaustedError(RuntimeError):
    """The service kept failing transiently until the retry budget ran out."""

    def __init__(self, method: str, url: str, attempts: int, last_status: int | str) -> None:
        self.url = url
        self.last_status = last_status
        super().__init__(
            f"Gave up on {method} {url} after {attempts} attempts; last status: {last_status}"
        )


@dataclass(frozen=True)
class RetryPolicy:
    """When to retry and how long to wait.

    `max_retries` counts retries after the first attempt. Waits grow as
    `base_seconds * 2**retry` with full jitter in the upper half (so clients
    that were throttled together do not come back together) and never exceed
    `max_backoff_seconds`, even when the server asks for longer in
    `Retry-After`: a throttled nightly job should fail visibly rather than hang.
    """

    max_retries: int = 8
    max_backoff_seconds: float = 60.0
    base_seconds: float = 1.0
    retry_statuses: frozenset[int] = RETRY_STATUSES
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def should_retry_status(self, status: int) -> bool:
        return status in self.retry_statuses

    def wait_seconds(self, retry: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number `retry` (0-based)."""
        if retry_after is not None:
            # Honour the server, add a little jitter so throttled clients spread out.
            wait = retry_after + self.rng.uniform(0, min(1.0, self.base_seconds))
        else:
            ceiling = self.base_seconds * (2**retry)
            wait = self.rng.uniform(ceiling / 2, ceiling)
        return max(0.0, min(wait, self.max_backoff_seconds))


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header (delta-seconds or HTTP date)."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    now = now or datetime.now(timezone.utc)
    return max(0.0, (when - now).total_seconds())


def send_with_retries(
    send: Callable[[], requests.Response],
    *,
    policy: RetryPolicy,
    method: str,
    url: str,
    on_unauthorized: Callable[[], bool] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    log: logging.Logger = logger,
) -> requests.Response:
    """Send a request (one call of `send` per attempt) until it is not transient.

    Returns the first response whose status is not retriable; the caller decides
    what a 4xx means for it. A 401 is handed to `on_unauthorized` once: if it
    returns True (credentials refreshed) the request is sent again. Raises
    RetriesExhaustedError, naming the redacted URL and the last status, after
    `policy.max_retries` retries.
    """
    safe_url = redact_url(url)
    retry = 0
    reauthorized = False
    while True:
        retry_after: float | None = None
        try:
            response = send()
        except CONNECTION_ERRORS as exc:
            last_status: int | str = f"connection error ({type(exc).__name__})"
        else:
            status = response.status_code
            if status == 401 and on_unauthorized is not None and not reauthorized:
                reauthorized = True
                log.info(
                    "%s %s: 401 Unauthorized, refreshed credentials, retrying", method, safe_url
                )
                if on_unauthorized():
                    continue
                return response
            if not policy.should_retry_status(status):
                return response
            reauthorized = False
            last_status = status
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            response.close()
        if retry >= policy.max_retries:
            raise RetriesExhaustedError(method, safe_url, retry + 1, last_status)
        wait = policy.wait_seconds(retry, retry_after)
        log.warning(
            "%s %s: %s, backing off %.2f s (retry %d of %d%s)",
            method,
            safe_url,
            last_status,
            wait,
            retry + 1,
            policy.max_retries,
            "" if retry_after is None else f", Retry-After {retry_after:.2f} s",
        )
        sleep(wait)
        retry += 1

"""The time source the sandboxes read: real time by default, a manual clock in tests.

Everything time-based in a sandbox (token expiry, PDT build progress, Retry-After
dates, the timestamps of changed rows and logged requests, the latency knob) asks
its time source, never the `time` module. Tests pass a `ManualClock` and `advance()`
it instead of sleeping; the sandbox then sees exactly the time the test says.

Durations of real work (how long SQL Runner took) are measured, not simulated, so
they are not read from here.
"""

from __future__ import annotations

import threading
import time as _time
from datetime import UTC, datetime


class TimeSource:
    """`monotonic()` for lifetimes and durations, `time()` (UNIX seconds) for timestamps."""

    def monotonic(self) -> float:
        raise NotImplementedError

    def time(self) -> float:
        raise NotImplementedError

    def sleep(self, seconds: float) -> None:
        raise NotImplementedError

    def now(self) -> datetime:
        """The current time as an aware UTC datetime."""
        return datetime.fromtimestamp(self.time(), UTC)


class RealTime(TimeSource):
    """The machine's clocks; `sleep` really waits."""

    def monotonic(self) -> float:
        return _time.monotonic()

    def time(self) -> float:
        return _time.time()

    def sleep(self, seconds: float) -> None:
        _time.sleep(seconds)


REAL_TIME = RealTime()

# 2026-10-01T00:00:00Z: where a ManualClock's wall time starts unless told otherwise; after
# every change time in the IFS sandbox's generated data, so mutated rows are the newest
DEFAULT_EPOCH = 1_790_812_800.0


class ManualClock(TimeSource):
    """Time that moves only when told: `advance(seconds)` (or `sleep`, which advances).

    `monotonic()` starts at 0, `time()` at `start` (UNIX seconds; a fixed date by
    default, so timestamps are reproducible). Safe to read from server threads.
    """

    def __init__(self, start: float = DEFAULT_EPOCH) -> None:
        self._start = float(start)
        self._elapsed = 0.0
        self._lock = threading.Lock()

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a clock does not run backwards")
        with self._lock:
            self._elapsed += seconds

    def sleep(self, seconds: float) -> None:
        """Waiting on a manual clock moves it on at once (latency knob, a client's backoff)."""
        self.advance(max(0.0, seconds))

    def monotonic(self) -> float:
        with self._lock:
            return self._elapsed

    def time(self) -> float:
        with self._lock:
            return self._start + self._elapsed

    def __repr__(self) -> str:
        return f"ManualClock(now={self.now().isoformat()})"

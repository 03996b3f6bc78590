"""Fault knobs shared by the sandboxes: throttling, server errors, dropped connections, latency.

`FaultInjector.draw` decides; `SandboxRequestHandler.inject_fault` (loopback.py)
applies the decision for either sandbox, which only words the error body.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass
from datetime import timedelta
from email.utils import format_datetime

from .clock import REAL_TIME, TimeSource

ERROR_STATUSES = (503, 502, 504)
RETRY_AFTER_MODES = ("seconds", "http-date", "none", "mixed")


@dataclass(frozen=True)
class FaultKnobs:
    """Fault settings every sandbox config carries, by name, so one injector serves all.

    `seed` makes the fault draws reproducible (each sandbox config sets its own default).
    """

    seed: int = 0
    rate_429: float = 0.0
    retry_after: str = "mixed"
    retry_after_seconds: int = 1
    rate_5xx: float = 0.0
    drop_rate: float = 0.0
    latency_ms: float = 0.0

    def check_faults(self) -> None:
        if self.retry_after not in RETRY_AFTER_MODES:
            raise ValueError(
                f"retry_after must be one of {RETRY_AFTER_MODES}, not {self.retry_after!r}"
            )
        for name in ("rate_429", "rate_5xx", "drop_rate"):
            share = getattr(self, name)
            if not 0.0 <= share <= 1.0:
                raise ValueError(f"{name} is a share between 0 and 1, not {share}")


@dataclass(frozen=True)
class Fault:
    kind: str  # "drop", "throttle" or "error"
    status: int = 0
    headers: tuple[tuple[str, str], ...] = ()


class FaultInjector:
    """Draws one fault (or none) per request; deterministic for a seed and request order.

    HTTP-date Retry-After values are dated by `time_source` (the sandbox's clock).
    """

    def __init__(self, seed: int, time_source: TimeSource = REAL_TIME) -> None:
        self.rng = random.Random(f"{seed}:faults")
        self.time = time_source
        self.lock = threading.Lock()
        self.counts = {"drop": 0, "throttle": 0, "error": 0}

    def draw(self, config: FaultKnobs) -> Fault | None:
        with self.lock:
            roll = self.rng.random()
            if roll < config.drop_rate:
                return self._count(Fault("drop"))
            roll -= config.drop_rate
            if roll < config.rate_429:
                return self._count(Fault("throttle", 429, self._retry_after(config)))
            roll -= config.rate_429
            if roll < config.rate_5xx:
                status = ERROR_STATUSES[self.counts["error"] % len(ERROR_STATUSES)]
                return self._count(Fault("error", status))
            return None

    def _count(self, fault: Fault) -> Fault:
        self.counts[fault.kind] += 1
        return fault

    def _retry_after(self, config: FaultKnobs) -> tuple[tuple[str, str], ...]:
        mode = config.retry_after
        if mode == "mixed":
            mode = ("seconds", "http-date", "none")[self.counts["throttle"] % 3]
        if mode == "seconds":
            return (("Retry-After", str(config.retry_after_seconds)),)
        if mode == "http-date":
            when = self.time.now() + timedelta(seconds=config.retry_after_seconds + 1)
            return (("Retry-After", format_datetime(when, usegmt=True)),)
        return ()

"""The sandboxes' time source: a manual clock moves only when told, and by exactly that much."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ifs_looker_sandboxes.clock import DEFAULT_EPOCH, ManualClock


def test_a_manual_clock_moves_only_when_advanced() -> None:
    clock = ManualClock()
    assert (clock.monotonic(), clock.time()) == (0.0, DEFAULT_EPOCH)
    clock.advance(1.5)
    clock.sleep(0.5)  # waiting on it moves it on at once
    assert (clock.monotonic(), clock.time()) == (2.0, DEFAULT_EPOCH + 2)
    assert clock.now() == datetime(2026, 10, 1, 0, 0, 2, tzinfo=UTC)


def test_a_manual_clock_does_not_run_backwards() -> None:
    clock = ManualClock(start=0)
    with pytest.raises(ValueError, match="backwards"):
        clock.advance(-1)
    clock.sleep(-1)  # a negative wait is no wait
    assert clock.time() == 0

"""The STATE ledger alone: which STATE may be emitted after which commits (no warehouse)."""

from __future__ import annotations

import random

import pytest

from target_looker.state_ledger import StateLedger


def records(ledger: StateLedger, count: int) -> list[int]:
    """`count` records arrive; returns their sequence numbers (as the target numbers them)."""
    numbers = []
    for _ in range(count):
        ledger.last_seq += 1
        numbers.append(ledger.last_seq)
    return numbers


def test_a_state_with_nothing_buffered_is_safe_at_once() -> None:
    ledger = StateLedger()
    ledger.state_received({"a": 1})
    assert ledger.has_pending
    assert ledger.take_safe(None) == {"a": 1}
    assert not ledger.has_pending
    assert ledger.take_safe(None) is None  # handed out once only


def test_a_state_waits_for_the_records_before_it() -> None:
    ledger = StateLedger()
    first, *_ = records(ledger, 3)
    ledger.state_received({"n": 3})
    assert ledger.take_safe(oldest_buffered=first) is None
    assert ledger.take_safe(oldest_buffered=3) is None  # record 3 came before the STATE
    assert ledger.take_safe(oldest_buffered=None) == {"n": 3}


def test_records_after_a_state_do_not_hold_it_back() -> None:
    ledger = StateLedger()
    records(ledger, 2)
    ledger.state_received({"n": 2})
    later, *_ = records(ledger, 5)
    assert ledger.take_safe(oldest_buffered=later) == {"n": 2}


def test_the_newest_safe_state_supersedes_older_ones() -> None:
    ledger = StateLedger()
    for n in range(1, 4):
        records(ledger, 1)
        ledger.state_received({"n": n})
    records(ledger, 1)
    ledger.state_received({"n": 4})
    # Record 4 is still buffered: states 1-3 are safe, 4 is not.
    assert ledger.take_safe(oldest_buffered=4) == {"n": 3}
    assert ledger.take_safe(oldest_buffered=4) is None
    assert ledger.take_safe(oldest_buffered=None) == {"n": 4}


def test_a_state_before_any_record_is_safe_even_with_records_buffered() -> None:
    ledger = StateLedger()
    ledger.state_received({"start": True})
    records(ledger, 10)
    assert ledger.take_safe(oldest_buffered=1) == {"start": True}


def test_any_stream_buffering_an_older_record_holds_the_state() -> None:
    """The caller passes the oldest record buffered in any sink: one slow stream holds all."""
    ledger = StateLedger()
    stream_a = records(ledger, 1)  # record 1, stream a: still buffered
    records(ledger, 5)  # records 2-6, stream b: committed
    ledger.state_received({"n": 6})
    assert ledger.take_safe(oldest_buffered=min(stream_a)) is None
    assert ledger.take_safe(oldest_buffered=None) == {"n": 6}


@pytest.mark.parametrize("seed", range(20))
def test_an_emitted_state_never_runs_ahead_of_the_data(seed: int) -> None:
    """Random arrivals and commits: every record before an emitted STATE is committed,
    STATEs come out in order, and the last one comes out once everything is committed."""
    rng = random.Random(seed)
    ledger = StateLedger()
    buffered: dict[str, list[int]] = {"a": [], "b": [], "c": []}
    committed: set[int] = set()
    stamps: dict[int, int] = {}  # state id -> last record before it
    emitted: list[int] = []
    next_state = 0

    def take() -> None:
        oldest = min((seqs[0] for seqs in buffered.values() if seqs), default=None)
        state = ledger.take_safe(oldest)
        if state is not None:
            assert all(seq in committed for seq in range(1, stamps[state["id"]] + 1))
            emitted.append(state["id"])

    for _ in range(300):
        action = rng.random()
        if action < 0.6:
            ledger.last_seq += 1
            buffered[rng.choice("abc")].append(ledger.last_seq)
        elif action < 0.8:
            stamps[next_state] = ledger.last_seq
            ledger.state_received({"id": next_state})
            next_state += 1
        else:
            stream = rng.choice("abc")
            committed.update(buffered[stream])
            buffered[stream] = []
        take()
    for stream in buffered:
        committed.update(buffered[stream])
        buffered[stream] = []
    take()
    assert emitted == sorted(emitted)
    assert not ledger.has_pending
    if next_state:
        assert emitted[-1] == next_state - 1


# Held records: committed, not visible yet (an overwrite's shadow table) ---------------------


def test_held_records_hold_back_the_states_after_them_until_released() -> None:
    ledger = StateLedger()
    ledger.state_received({"n": 0})
    first, second = records(ledger, 2)
    ledger.state_received({"n": 2})
    ledger.hold("items", first)  # records 1-2 are in the shadow, committed
    assert ledger.take_safe(oldest_buffered=None) == {"n": 0}
    records(ledger, 1)
    ledger.state_received({"n": 3})
    ledger.hold("items", second)  # holding again keeps the earliest record
    assert ledger.take_safe(oldest_buffered=None) is None
    ledger.release("items")  # the swap is submitted: its STATE rides on it
    assert ledger.take_safe(oldest_buffered=None) == {"n": 3}


def test_a_held_stream_and_a_buffered_one_the_oldest_record_wins() -> None:
    ledger = StateLedger()
    held = records(ledger, 2)
    ledger.state_received({"n": 2})
    buffered = records(ledger, 2)
    ledger.state_received({"n": 4})
    ledger.hold("a", held[0])
    assert ledger.take_safe(oldest_buffered=buffered[0]) is None
    ledger.release("a")
    assert ledger.take_safe(oldest_buffered=buffered[0]) == {"n": 2}
    ledger.release("never held")  # harmless
    assert ledger.take_safe(oldest_buffered=None) == {"n": 4}

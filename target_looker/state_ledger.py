"""Which STATE message may be passed on, and after which commits.

A tap's STATE vouches for every record it sent before it. Meltano stores each STATE
line the target emits as the new bookmark, so the target may emit a STATE only once
every record received before it is committed; otherwise a crash after the STATE would
lose those records for good.

The ledger is pure bookkeeping (no warehouse, no threads, no clock): records are
numbered in arrival order, each STATE is stamped with the number of the last record
before it, and the caller says which records are still buffered in sinks.

Committed is not always enough: an overwrite loads a stream's batches into a shadow
table that users cannot see until it is swapped in at the end (overwrite.py). Until
then the records from the first one in the shadow on are `hold`-ed: no STATE received
after that record is handed out before `release`, which the caller does when it
submits the swap (the STATE then rides on the swap and is emitted once it commits).
"""

from __future__ import annotations

import bisect
import operator
import typing as t

_stamp = operator.itemgetter(0)


class StateLedger:
    """STATE messages waiting for the records received before them to be committed.

    Invariant: a value returned by `take_safe` was stamped before any record that is
    still buffered or held. Records already handed to the loader thread count as
    committed here: the STATE rides on the last job submitted and is emitted only once
    that job has committed (see committer.py), so it never runs ahead of the data.
    """

    __slots__ = ("_held", "_pending", "last_seq")

    def __init__(self) -> None:
        #: Sequence number of the latest RECORD (records are numbered 1, 2, ...). The
        #: target bumps it on its hot path, so it is a plain attribute, not a method.
        self.last_seq = 0
        # (stamp, value), oldest first; stamps never decrease.
        self._pending: list[tuple[int, dict]] = []
        # what -> the first record of it that is committed but not yet visible
        self._held: dict[t.Hashable, int] = {}

    def state_received(self, value: dict) -> None:
        """A STATE arrived after record number `last_seq`."""
        self._pending.append((self.last_seq, value))

    def hold(self, what: t.Hashable, first_seq: int) -> None:
        """Records of `what` from `first_seq` on are committed but not visible yet (an
        overwrite's shadow table): no STATE after `first_seq` is safe until `release`.
        Holding `what` again keeps the earliest record."""
        self._held[what] = min(first_seq, self._held.get(what, first_seq))

    def release(self, what: t.Hashable) -> None:
        """`what` is becoming visible (its swap is submitted): it holds nothing back now."""
        self._held.pop(what, None)

    @property
    def has_pending(self) -> bool:
        """Some STATE is still held back by buffered records."""
        return bool(self._pending)

    def take_safe(self, oldest_buffered: int | None) -> dict | None:
        """The newest pending STATE with no buffered record before it, or None.

        `oldest_buffered` is the lowest sequence number still buffered in any sink
        (None: nothing is buffered); held records count as buffered. The STATE returned
        and every older one leave the ledger: the newest safe STATE covers them, so they
        are never emitted.
        """
        if self._held:
            oldest_held = min(self._held.values())
            if oldest_buffered is None or oldest_held < oldest_buffered:
                oldest_buffered = oldest_held
        if oldest_buffered is None:
            safe = len(self._pending)
        else:
            safe = bisect.bisect_left(self._pending, oldest_buffered, key=_stamp)
        if not safe:
            return None
        state = self._pending[safe - 1][1]
        del self._pending[:safe]
        return state


__all__ = ["StateLedger"]

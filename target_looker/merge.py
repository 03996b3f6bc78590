"""The version guard: which of two versions of one IFS row may replace the other.

`_ifs_objversion` is a `YYYYMMDDHH24MISS` string or an integer counter, both carried
as strings. Digits compare as numbers (so counter "10" beats "9"); anything else
compares as text in code-point order, which is what the SQL side does with
`COLLATE "C"`. A missing version carries no evidence, so it never blocks a write:
streams without versions are last-write-wins.
"""

from __future__ import annotations

import typing as t
from collections.abc import Callable, Sequence
from dataclasses import dataclass


def is_newer_or_same(incoming: str | None, stored: str | None) -> bool:
    """True when `incoming` may replace `stored` (equal versions: the later write wins)."""
    if incoming is None or stored is None:
        return True
    if incoming.isascii() and stored.isascii() and incoming.isdigit() and stored.isdigit():
        return int(incoming) >= int(stored)
    return incoming >= stored


@dataclass
class Deduplicated:
    """Which rows of a batch survive collapsing duplicate keys."""

    kept: list[int]  # positions, in arrival order
    superseded: int  # rows dropped because a newer (or later, same-version) row won


def deduplicate(
    rows: Sequence[tuple],
    key_of: Callable[[tuple], t.Hashable],
    version_index: int | None,
) -> Deduplicated:
    """Keep one row per key: the newest version, and the last one among equals.

    Survivors keep their arrival order, so the warehouse sees the tap's sequence.
    """
    keys = list(map(key_of, rows))
    if len(dict.fromkeys(keys)) == len(keys):  # the usual case, checked at C speed
        return Deduplicated(list(range(len(rows))), 0)
    winner: dict[t.Hashable, int] = {}
    for position, (key, row) in enumerate(zip(keys, rows, strict=True)):
        previous = winner.get(key)
        if (
            previous is None
            or version_index is None
            or is_newer_or_same(row[version_index], rows[previous][version_index])
        ):
            winner[key] = position
    if len(winner) == len(rows):
        return Deduplicated(list(range(len(rows))), 0)
    kept = sorted(winner.values())
    return Deduplicated(kept, len(rows) - len(kept))

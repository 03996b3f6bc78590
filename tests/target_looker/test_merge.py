"""The version guard's ordering and in-batch deduplication."""

from __future__ import annotations

from operator import itemgetter

import pytest

from target_looker.merge import deduplicate, is_newer_or_same


@pytest.mark.parametrize(
    ("incoming", "stored", "wins"),
    [
        ("20260102000000", "20260101235959", True),
        ("20260101000000", "20260102000000", False),
        ("20260101000000", "20260101000000", True),  # equal: the later write wins
        ("10", "9", True),  # counters compare as numbers, not text
        ("9", "10", False),
        ("010", "9", True),
        (None, "5", True),  # no version: no evidence, last write wins
        ("5", None, True),
        ("b", "a", True),  # non-digits compare as text
    ],
)
def test_is_newer_or_same(incoming: str | None, stored: str | None, wins: bool) -> None:
    assert is_newer_or_same(incoming, stored) is wins


def test_deduplicate_keeps_newest_then_last_in_arrival_order() -> None:
    rows = [("a", "2", 1), ("b", "1", 2), ("a", "1", 3), ("b", "1", 4), ("c", None, 5)]
    result = deduplicate(rows, itemgetter(0), 1)
    assert [rows[i][2] for i in result.kept] == [1, 4, 5]
    assert result.superseded == 2


def test_deduplicate_without_versions_keeps_the_last() -> None:
    rows = [("a", 1), ("a", 2)]
    assert deduplicate(rows, itemgetter(0), None).kept == [1]

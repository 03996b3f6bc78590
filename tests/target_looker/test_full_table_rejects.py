"""A key seen in a full-table sync is seen, even when its record was rejected (SPEC 5.2):
ACTIVATE_VERSION never deletes (nor soft-deletes) a row that IFS still has.

Every test runs once per warehouse (the `config` fixture).
"""

from __future__ import annotations

import decimal

import pytest

from .singer_io import lines, query, record, run, schema

D = decimal.Decimal
PROPS = {
    "Account": {"type": "string"},
    "Amount": {"type": ["number", "null"]},
    "Name": {"type": ["string", "null"], "maxLength": 5},
}


def full_sync(version: int, *records: dict | str) -> str:
    """A full-table sync as the SDK sends it: ACTIVATE_VERSION before and after."""
    activate = {"type": "ACTIVATE_VERSION", "stream": "accounts", "version": version}
    return lines(schema("accounts", PROPS, ["Account"]), activate, *records, activate)


def account(number: str, version: int, **values: object) -> dict:
    return record("accounts", {"Account": number, **values}, version=version)


def accounts(config: dict) -> list[tuple]:
    return query(
        config,
        "SELECT account, amount, name, _sdc_table_version, _sdc_deleted_at IS NOT NULL "
        "FROM {s}.accounts ORDER BY account",
    )


@pytest.mark.parametrize("hard_delete", [False, True], ids=["soft", "hard"])
def test_a_rejected_record_keeps_its_row(config: dict, hard_delete: bool) -> None:
    config = {**config, "hard_delete": hard_delete, "batch_size_rows": 2}
    run(config, full_sync(1, *(account(n, 1, Amount=1, Name="v1") for n in "1235")))
    surrogate = (
        '{"type": "RECORD", "stream": "accounts", "version": 2, '
        '"record": {"Account": "3", "Name": "\\ud800"}}'
    )
    run(
        config,
        full_sync(
            2,
            account("1", 2, Amount=2, Name="v2"),
            account("2", 2, Amount="not a number"),  # rejected while decoding
            surrogate,  # rejected by the reader: the key is found all the same
            # 5 is no longer in IFS
        ),
    )
    kept = [("1", D(2), "v2", 2, False), ("2", D(1), "v1", 2, False), ("3", D(1), "v1", 2, False)]
    gone = [] if hard_delete else [("5", D(1), "v1", 1, True)]
    assert accounts(config) == kept + gone
    reasons = query(config, "SELECT reason FROM {s}._load_rejects ORDER BY input_line")
    assert len(reasons) == 2


def test_a_row_rejected_after_decoding_keeps_its_row(config: dict) -> None:
    """Rejected by a check on the decoded row (maxLength): the key comes from the row."""
    run(config, full_sync(1, account("1", 1, Name="v1"), account("2", 1, Name="v1")))
    run(config, full_sync(2, account("1", 2, Name="far too long")))
    assert [(a, tv, deleted) for a, _, _, tv, deleted in accounts(config)] == [
        ("1", 2, False),
        ("2", 1, True),
    ]
    [(line, reason)] = query(config, "SELECT input_line, reason FROM {s}._load_rejects")
    assert line == 3 and "maxLength 5" in reason


def test_a_row_soft_deleted_earlier_is_live_again_when_seen(config: dict) -> None:
    run(config, full_sync(1, account("1", 1), account("2", 1)))
    run(config, full_sync(2, account("1", 2)))  # 2 is gone...
    run(config, full_sync(3, account("1", 3), account("2", 3, Amount="x")))  # ...and back
    assert [(a, tv, deleted) for a, _, _, tv, deleted in accounts(config)] == [
        ("1", 3, False),
        ("2", 3, False),
    ]


def test_a_record_without_a_key_protects_nothing(config: dict) -> None:
    run(config, full_sync(1, account("1", 1), account("2", 1)))
    run(config, full_sync(2, account("1", 2), record("accounts", {"Amount": 3}, version=2)))
    assert [(a, deleted) for a, _, _, _, deleted in accounts(config)] == [
        ("1", False),
        ("2", True),
    ]

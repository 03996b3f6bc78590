"""Rows without their bookmark field: emitted, counted once, never a crash or a lost row."""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime
from decimal import Decimal
from urllib.parse import unquote

from tap_ifscloud import odata
from tap_ifscloud.paging import KeysetReader

from .conftest import by_key, expected_records, relay, run_tap, running_sandbox, tap_config

VOUCHER_KEYS = ["Company", "VoucherType", "AccountingYear", "VoucherNo", "RowNo"]


def clear_entry_date(sandbox, company: str, count: int) -> list[tuple]:
    """Set EntryDate to null on `count` voucher rows of `company`; their keys."""
    table = sandbox.store.table("VoucherRowsAnalysis", "VoucherRowSet")
    with sandbox.store.lock:
        rows = [table.as_dict(r) for k, r in sorted(table.rows.items()) if k[0] == company]
        chosen = rows[:: max(1, len(rows) // count)][:count]
        for row in chosen:
            table.put({**row, "EntryDate": None}, datetime(2026, 6, 1, tzinfo=UTC))
    return [tuple(row[k] for k in VOUCHER_KEYS) for row in chosen]


def omit_nulls(path: str, rows: list[dict]) -> list[dict]:
    """What some OData servers do: leave null properties out of the JSON."""
    return [{k: v for k, v in row.items() if v is not None} for row in rows]


def test_rows_without_the_replication_key_are_emitted_counted_once_and_skip_the_bookmark(
    caplog,
):
    with running_sandbox(companies=("US01", "DE01"), voucher_rows_per_company=80) as sandbox:
        cleared = clear_entry_date(sandbox, "US01", 7) + clear_entry_date(sandbox, "DE01", 4)
        caplog.set_level(logging.INFO, logger="tap-ifscloud")
        with relay(sandbox, omit_nulls) as url:
            run = run_tap(
                tap_config(sandbox, base_url=url, page_size=5)
            )  # no start_date: the first run reads every row
        expected = expected_records(sandbox, "voucher_rows", ("US01", "DE01"))

    records = run.records("voucher_rows")
    got = by_key(records, VOUCHER_KEYS)
    assert len(got) == len(records), "a row was emitted twice"
    assert set(got) == set(expected)
    for key in cleared:
        assert "EntryDate" not in got[key] or got[key]["EntryDate"] is None
        assert got[key]["Amount"] == expected[key]["Amount"]

    warnings = [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and "no value for the replication key" in r.getMessage()
    ]
    assert warnings == [
        "Stream 'voucher_rows': 11 row(s) had no value for the replication key 'EntryDate'; "
        "they were emitted, and the bookmark ignores them (an incremental run with a bookmark "
        "does not see them again: if their changes matter, use another replication_key or "
        "replication_mode full_table)"
    ]
    partitions = run.final_state["bookmarks"]["voucher_rows"]["partitions"]
    for partition in partitions:
        company = partition["context"]["Company"]
        dated = [
            row["EntryDate"]
            for row in expected.values()
            if row["Company"] == company and row["EntryDate"] is not None
        ]
        assert partition["replication_key_value"] == max(dated)


def test_a_bounded_run_reads_only_dated_rows_and_no_null_pass():
    with running_sandbox(companies=("US01",), voucher_rows_per_company=40) as sandbox:
        clear_entry_date(sandbox, "US01", 3)
        logged = len(sandbox.request_log)
        run = run_tap(tap_config(sandbox, start_date="2020-01-01"))
        paths = [unquote(p) for _, p, _ in sandbox.request_log[logged:] if "VoucherRowSet" in p]
    assert not [p for p in paths if "EntryDate eq null" in p]
    assert all(r.get("EntryDate") for r in run.records("voucher_rows"))


class PagedStub:
    """An OData server in a list: rows ordered by (EntryDate, Id), nulls first, some rows
    served without EntryDate although it sorts them by it (as a server omitting a field
    might); understands the key-set filter the reader writes, `$skip` and `$top`."""

    def __init__(self, rows: list[dict], hidden: set[int]) -> None:
        self.rows = sorted(
            rows, key=lambda r: (r["EntryDate"] is not None, r["EntryDate"], r["Id"])
        )
        self.hidden = hidden
        self.queries: list[dict] = []

    def get_json(self, url: str, params: dict | None = None) -> dict:
        params = dict(params or {})
        self.queries.append(params)
        assert len(self.queries) < 100, "paging does not make progress"
        rows = self.rows
        match = re.search(
            r"\(EntryDate gt (\S+)\) or \(EntryDate eq \S+ and \(Id gt (\d+)\)\)",
            params.get("$filter", ""),
        )
        if match:
            after = (match.group(1), int(match.group(2)))
            rows = [r for r in rows if r["EntryDate"] and (r["EntryDate"], r["Id"]) > after]
        skip, top = int(params.get("$skip", 0)), int(params["$top"])
        page = rows[skip : skip + top]
        served = [
            {k: v for k, v in r.items() if not (k == "EntryDate" and r["Id"] in self.hidden)}
            for r in page
        ]
        return {"value": served}


def test_key_set_paging_falls_back_to_skip_after_a_row_without_its_ordering_value():
    rows = [
        {"Id": i, "EntryDate": f"2026-01-{1 + i // 3:02d}", "Amount": Decimal(i)} for i in range(30)
    ]
    hidden = {4, 5, 6, 7, 8, 9, 10, 11, 17}  # pages of 4 ending in rows without EntryDate
    stub = PagedStub(rows, hidden)
    reader = KeysetReader(
        stub.get_json,
        "https://ifs.example/main/ifsapplications/projection/v1/X.svc/Rows",
        base_filter="Company eq 'US01'",
        order_fields=(("EntryDate", odata.DATE), ("Id", odata.NUMBER)),
        select=["Id", "EntryDate", "Amount"],
        page_size=4,
    )
    pages = list(reader.pages())
    ids = [row["Id"] for page in pages for row in page]
    assert ids == sorted(r["Id"] for r in rows)  # each row once, in order, none lost
    skips = [q.get("$skip") for q in stub.queries]
    assert "4" in skips and "8" in skips  # a page ending without EntryDate: $skip, not a guess
    assert skips[-1] is None  # back to pure key-set once a page ends with a complete row

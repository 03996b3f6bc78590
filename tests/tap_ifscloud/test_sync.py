"""End-to-end syncs against the IFS Cloud sandbox over real HTTP."""

from __future__ import annotations

import copy
import logging
import re
import time
from datetime import date, timedelta
from decimal import Decimal
from urllib.parse import unquote

import pytest

from tap_ifscloud.etag import decode_objversion
from tap_ifscloud.streams import BUILTIN_STREAMS, INCREMENTAL

from .conftest import (
    COMPANIES,
    by_key,
    expected_records,
    run_tap,
    running_sandbox,
    sandbox_rows,
    tap_config,
)

STREAM_NAMES = [d.name for d in BUILTIN_STREAMS]
KEYS = {d.name: list(d.key_properties) for d in BUILTIN_STREAMS}
DEFINITIONS = {d.name: d for d in BUILTIN_STREAMS}
CHANGE_DATE_STREAMS = [d.name for d in BUILTIN_STREAMS if d.replication_mode == INCREMENTAL]


def assert_same_rows(run_records: list[dict], expected: dict[tuple, dict], keys: list[str]) -> None:
    got = by_key(run_records, keys)
    assert len(got) == len(run_records), "a row was emitted twice"
    missing, extra = set(expected) - set(got), set(got) - set(expected)
    assert not missing, f"missing {sorted(missing)[:5]}"
    assert not extra, f"extra {sorted(extra)[:5]}"
    for key, row in expected.items():
        record = dict(got[key])
        assert record.pop("_ifs_objversion") == decode_objversion(row["_ifs_etag"])
        assert record == row, key


def test_full_sync_returns_exactly_the_sandbox_rows(shared_sandbox):
    run = run_tap(tap_config(shared_sandbox, page_size=37))
    for name in STREAM_NAMES:
        expected = expected_records(shared_sandbox, name, COMPANIES)
        assert expected, f"sandbox has no rows for {name}"
        assert_same_rows(run.records(name), expected, KEYS[name])


def test_amounts_are_exact_decimals_to_the_last_digit(shared_sandbox):
    run = run_tap(tap_config(shared_sandbox, companies=["US01"]), catalog=None)
    amounts = [r["Amount"] for r in run.records("voucher_rows")]
    assert all(isinstance(a, Decimal) for a in amounts)
    # values with more significant digits than a float carries survive unchanged
    long_ones = [a for a in amounts if len(a.as_tuple().digits) > 15]
    expected = {
        (r["Company"], r["VoucherType"], r["AccountingYear"], r["VoucherNo"], r["RowNo"]): r[
            "Amount"
        ]
        for r in sandbox_rows(shared_sandbox, "VoucherRowsAnalysis", "VoucherRowSet")
        if r["Company"] == "US01"
    }
    assert long_ones, "the sandbox should serve amounts beyond float precision"
    got = {
        (r["Company"], r["VoucherType"], r["AccountingYear"], r["VoucherNo"], r["RowNo"]): r[
            "Amount"
        ]
        for r in run.records("voucher_rows")
    }
    assert got == expected
    # and vouchers balance exactly, as they do in IFS
    assert sum(r["DebetAmount"] or 0 for r in run.records("voucher_rows")) == sum(
        r["CreditAmount"] or 0 for r in run.records("voucher_rows")
    )


def test_state_is_partitioned_by_company_and_full_table_streams_activate_versions(shared_sandbox):
    run = run_tap(tap_config(shared_sandbox))
    bookmarks = run.final_state["bookmarks"]
    partitions = bookmarks["supplier_invoices"]["partitions"]
    assert [p["context"] for p in partitions] == [{"Company": c} for c in COMPANIES]
    for partition in partitions:
        company = partition["context"]["Company"]
        newest = max(
            r["LastModified"]
            for r in sandbox_rows(
                shared_sandbox, "ManualSupplierInvoiceHandling", "ManSuppInvoiceSet"
            )
            if r["Company"] == company
        )
        assert partition["replication_key_value"] == newest
    types = run.types("gl_accounts")
    assert types[1] == "ACTIVATE_VERSION"
    assert types[-1] == "ACTIVATE_VERSION"
    versions = {
        r["version"]
        for r in run.messages
        if r.get("stream") == "gl_accounts" and r["type"] == "RECORD"
    }
    assert len(versions) == 1


def tick_until_invoices_change(sandbox, companies: tuple[str, ...]) -> None:
    """Drive the mutation clock (deterministic for the sandbox's seed) one change at a
    time until supplier invoices of every company were both inserted and updated."""
    for _ in range(1000):
        invoices = [(a, k) for a, e, k in sandbox.clock.log if e == "ManSuppInvoiceSet"]
        if {k[0] for _, k in invoices} >= set(companies) and {a for a, _ in invoices} >= {
            "insert",
            "update",
        }:
            return
        sandbox.clock.tick(1)
    raise AssertionError("1000 changes and still no invoice inserts and updates in every company")


def changed_keys(sandbox, stream: str, companies: tuple[str, ...]) -> set[tuple]:
    """Stream keys of the rows the mutation clock inserted or updated (all still present)."""
    definition = DEFINITIONS[stream]
    touched = {(e, k) for action, e, k in sandbox.clock.log if action != "delete"}
    table = sandbox.store.table(definition.projection, definition.entity_set)
    return {
        tuple(row[k] for k in definition.key_properties)
        for row in sandbox_rows(sandbox, definition.projection, definition.entity_set)
        if row["Company"] in companies
        and (definition.entity_set, tuple(row[k] for k in table.entity.keys)) in touched
    }


def test_second_run_with_state_returns_only_changed_rows_plus_lookback():
    with running_sandbox(companies=("US01", "DE01")) as sandbox:
        config = tap_config(sandbox, lookback_minutes=0)
        first = run_tap(config)
        state = first.final_state  # every later run starts from a copy: a run updates its state
        marks = {
            name: {
                p["context"]["Company"]: p["replication_key_value"]
                for p in state["bookmarks"][name]["partitions"]
            }
            for name in CHANGE_DATE_STREAMS
        }

        # nothing changed: incremental streams re-read only rows at the bookmark instant,
        # the window stream only the bookmark day
        quiet = run_tap(config, state=copy.deepcopy(state))
        for name in CHANGE_DATE_STREAMS:
            records = quiet.records(name)
            assert all(r["LastModified"] == marks[name][r["Company"]] for r in records), name
            assert len(records) < len(first.records(name)) / 5
        days = {
            p["context"]["Company"]: p["replication_key_value"]
            for p in state["bookmarks"]["voucher_rows"]["partitions"]
        }
        assert {(r["Company"], r["EntryDate"]) for r in quiet.records("voucher_rows")} <= set(
            days.items()
        )

        # a few changes: exactly those rows (plus the unchanged bookmark-instant rows) come back
        tick_until_invoices_change(sandbox, ("US01", "DE01"))
        second = run_tap(config, state=copy.deepcopy(state))
        for name in CHANGE_DATE_STREAMS:
            current = expected_records(sandbox, name, ("US01", "DE01"))
            changed = changed_keys(sandbox, name, ("US01", "DE01"))
            at_bookmark = {
                key
                for key, row in current.items()
                if key not in changed and row["LastModified"] == marks[name][row["Company"]]
            }
            got = by_key(second.records(name), KEYS[name])
            assert len(got) == len(second.records(name)), f"{name}: a row was emitted twice"
            assert set(got) == changed | at_bookmark, name
            for key, record in got.items():
                assert record["_ifs_etag"] == current[key]["_ifs_etag"], (name, key)
            if name == "supplier_invoices":
                assert {key[0] for key in changed} == {"US01", "DE01"}, "no invoice changed"

        # a 30-day lookback on the window stream re-reads exactly the 30 days before the bookmark
        wider = run_tap(tap_config(sandbox, lookback_days=30), state=copy.deepcopy(state))
        since = {c: date.fromisoformat(d) - timedelta(days=30) for c, d in days.items()}
        expected = {
            key
            for key, row in expected_records(sandbox, "voucher_rows", ("US01", "DE01")).items()
            if date.fromisoformat(row["EntryDate"]) >= since[row["Company"]]
        }
        got = set(by_key(wider.records("voucher_rows"), KEYS["voucher_rows"]))
        assert got == expected
        assert len(got) > len(quiet.records("voucher_rows"))


def test_mutations_between_pages_leave_nothing_missing_or_stale():
    """Inserts, updates and deletes land between the tap's pages; after a follow-up
    incremental run the merged result equals the sandbox's final data."""
    companies = ("US01", "DE01")
    # a little latency makes the run outlast its start second, so rows change after its bound
    # (the final comparison shows the next run picks them up)
    with running_sandbox(
        companies=companies, voucher_rows_per_company=150, latency_ms=8
    ) as sandbox:
        config = tap_config(sandbox, page_size=10)
        sandbox.update_config(mutations_per_request=3)
        first = run_tap(config)
        sandbox.update_config(mutations_per_request=0)
        # a run reads changes up to its start; later ones are the next run's
        bounds = {
            match
            for _, path, _ in sandbox.request_log
            for match in re.findall(r"LastModified le ([0-9T:Z-]+)", unquote(path))
        }
        assert len(bounds) == 1
        bound = next(iter(bounds))
        for name in ("supplier_invoices", "purchase_orders", "customer_orders"):
            assert max(r["LastModified"] for r in first.records(name)) <= bound
        assert any(a == "delete" for a, _, _ in sandbox.clock.log)
        assert any(a == "update" for a, _, _ in sandbox.clock.log)
        second = run_tap(config, state=first.final_state)

        for name in STREAM_NAMES:
            keys = KEYS[name]
            definition = next(d for d in BUILTIN_STREAMS if d.name == name)
            if definition.is_incremental:
                merged = by_key(first.records(name), keys)
                merged.update(by_key(second.records(name), keys))  # later versions win
            else:
                merged = by_key(second.records(name), keys)  # ACTIVATE_VERSION: last full read
            expected = expected_records(sandbox, name, companies)
            assert set(merged) == set(expected), name
            stale = [k for k, row in expected.items() if merged[k]["_ifs_etag"] != row["_ifs_etag"]]
            assert not stale, f"{name}: stale rows {stale[:5]}"


def unchanged_keys(sandbox, stream: str, companies: tuple[str, ...]) -> set[tuple]:
    """Keys of rows the mutation clock never touched: every run must return them."""
    definition = next(d for d in BUILTIN_STREAMS if d.name == stream)
    touched = {(entity_set, key) for _, entity_set, key in sandbox.clock.log}
    result = set()
    for code_part, entity_set in definition.entity_sets():
        projection_keys = sandbox.store.table(definition.projection, entity_set).entity.keys
        for row in sandbox_rows(sandbox, definition.projection, entity_set):
            if row.get("Company") not in companies:
                continue
            if (entity_set, tuple(row[k] for k in projection_keys)) in touched:
                continue
            if code_part is not None:
                row = {**row, "code": row[f"Code{code_part}"], "code_part": code_part}
            result.add(tuple(row[k] for k in definition.key_properties))
    return result


@pytest.mark.parametrize("server_page_size", [None, 3])
def test_a_run_during_changes_misses_no_row_that_existed_throughout(server_page_size):
    """Rows nobody touched must all arrive, even while other rows are inserted, moved
    past the read position by updates, or deleted between pages, and even when the
    server pages by itself with `$skip`-based nextLinks (which lose rows on their own)."""
    companies = ("US01",)
    with running_sandbox(
        companies=companies, voucher_rows_per_company=150, server_page_size=server_page_size
    ) as sandbox:
        sandbox.update_config(mutations_per_request=6)
        run = run_tap(tap_config(sandbox, page_size=60))
        sandbox.update_config(mutations_per_request=0)
        assert len(sandbox.clock.log) > 100
        for name in STREAM_NAMES:
            got = set(by_key(run.records(name), KEYS[name]))
            missing = unchanged_keys(sandbox, name, companies) - got
            assert not missing, f"{name}: {sorted(missing)[:5]}"


def test_server_driven_paging_is_followed_to_the_end():
    with running_sandbox(companies=("US01",), server_page_size=7) as sandbox:
        run = run_tap(tap_config(sandbox, page_size=25))
        expected = expected_records(sandbox, "voucher_rows", ("US01",))
        assert_same_rows(run.records("voucher_rows"), expected, KEYS["voucher_rows"])
        assert any("$skip=" in unquote(path) for _, path, _ in sandbox.request_log)


def test_sync_survives_short_tokens_throttling_and_server_errors(caplog):
    with running_sandbox(
        companies=("US01", "DE01"),
        voucher_rows_per_company=60,
        token_lifetime=3.0,
        rate_429=0.2,
        rate_5xx=0.05,
        drop_rate=0.02,
        retry_after="mixed",
        retry_after_seconds=0,
        latency_ms=25,  # so the run outlives its 3-second tokens
    ) as sandbox:
        config = tap_config(sandbox, page_size=15, max_backoff_seconds=0.05, max_retries=12)
        caplog.set_level(logging.INFO)
        started = time.monotonic()
        run = run_tap(config)
        assert time.monotonic() - started > 3.5
        sandbox.update_config(rate_429=0.0, rate_5xx=0.0)
        for name in STREAM_NAMES:
            expected = expected_records(sandbox, name, ("US01", "DE01"))
            assert_same_rows(run.records(name), expected, KEYS[name])
        statuses = [status for _, _, status in sandbox.request_log]
        assert statuses.count(429) > 5
        assert any(s in (502, 503, 504) for s in statuses)
        log = caplog.text
        assert "backing off" in log
        assert log.count("Obtained IFS access token") >= 2
        assert sandbox.config.client_secret not in log
        issued = list(sandbox.tokens._tokens)  # the sandbox's record of the tokens it issued
        assert len(issued) >= 2
        assert not [t for t in issued if t in log]
        assert "Bearer " not in log


@pytest.mark.parametrize("mode", ["full_table", "incremental"])
def test_overrides_change_mode_and_filter(shared_sandbox, mode):
    config = tap_config(
        shared_sandbox,
        companies=["US01"],
        stream_overrides={
            "customer_orders": {"replication_mode": mode, "filter": "Objstate eq 'Released'"},
        },
    )
    run = run_tap(config)
    records = run.records("customer_orders")
    expected = [
        r
        for r in sandbox_rows(shared_sandbox, "CustomerOrderHandling", "CustomerOrderSet")
        if r["Company"] == "US01" and r["Objstate"] == "Released"
    ]
    assert records
    assert {r["OrderNo"] for r in records} == {r["OrderNo"] for r in expected}
    assert ("ACTIVATE_VERSION" in run.types("customer_orders")) == (mode == "full_table")


def test_a_token_rejected_with_401_is_replaced_and_the_request_retried(shared_sandbox, caplog):
    from tap_ifscloud.tap import TapIFSCloud

    tap = TapIFSCloud(config=tap_config(shared_sandbox, companies=["US01"]))
    stream = tap.streams["gl_accounts"]
    first_token = tap.api.tokens.token()
    shared_sandbox.tokens._tokens.pop(first_token)  # IFS IAM revokes it: the next call gets 401
    caplog.set_level(logging.INFO)
    rows = list(stream.get_records({"Company": "US01"}))
    assert rows
    assert tap.api.tokens.token() != first_token
    assert "401 Unauthorized, refreshed credentials" in caplog.text
    assert first_token not in caplog.text


def test_start_date_bounds_incremental_and_window_streams(shared_sandbox):
    run = run_tap(tap_config(shared_sandbox, companies=["DE01"], start_date="2026-03-01T00:00:00Z"))
    invoices = run.records("supplier_invoices")
    expected = [
        r
        for r in sandbox_rows(shared_sandbox, "ManualSupplierInvoiceHandling", "ManSuppInvoiceSet")
        if r["Company"] == "DE01" and r["LastModified"] >= "2026-03-01T00:00:00Z"
    ]
    assert invoices
    assert {r["InvoiceId"] for r in invoices} == {r["InvoiceId"] for r in expected}
    vouchers = run.records("voucher_rows")
    expected_vouchers = [
        r
        for r in sandbox_rows(shared_sandbox, "VoucherRowsAnalysis", "VoucherRowSet")
        if r["Company"] == "DE01" and r["EntryDate"] >= "2026-03-01"
    ]
    assert vouchers
    assert len(vouchers) == len(expected_vouchers)
    assert len(run.records("gl_accounts")) == len(
        expected_records(shared_sandbox, "gl_accounts", ("DE01",))
    )


def test_state_follows_every_page_and_covers_exactly_the_rows_before_it(shared_sandbox):
    """A target that commits per batch can resume a killed run from the last page."""
    run = run_tap(tap_config(shared_sandbox, companies=["US01"], page_size=40))
    emitted: list[dict] = []
    checked = 0
    for message in run.messages:
        if message["type"] == "RECORD" and message["stream"] == "voucher_rows":
            emitted.append(message["record"])
        elif message["type"] == "STATE" and emitted:
            partitions = message["value"]["bookmarks"]["voucher_rows"]["partitions"]
            bookmark = partitions[0]["replication_key_value"]
            assert bookmark == emitted[-1]["EntryDate"]
            assert bookmark == max(r["EntryDate"] for r in emitted)
            checked += 1
    assert checked >= len(emitted) // 40


def test_path_prefix_can_be_set_per_stream(shared_sandbox):
    """IFS serves some projections under /int/...: a stream's own path_prefix reaches them,
    here with the system's path_prefix pointing somewhere that serves nothing."""
    int_prefix = "/int/ifsapplications/projection/v1"
    logged = len(shared_sandbox.request_log)
    config = tap_config(
        shared_sandbox,
        companies=["US01"],
        path_prefix="/nowhere/v1",
        stream_overrides={
            name: {"path_prefix": int_prefix} for name in STREAM_NAMES if name != "voucher_rows"
        },
        custom_streams=[
            {
                "name": "po_lines_int",
                "projection": "PurchaseOrderHandling",
                "entity_set": "PurchaseOrderLineSet",
                "path_prefix": int_prefix + "/",
            }
        ],
    )
    config["stream_overrides"]["voucher_rows"] = {
        "path_prefix": "main/ifsapplications/projection/v1"
    }
    run = run_tap(config)
    for name in STREAM_NAMES:
        expected = expected_records(shared_sandbox, name, ("US01",))
        assert_same_rows(run.records(name), expected, KEYS[name])
    assert len(run.records("po_lines_int")) == len(run.records("purchase_order_lines"))
    paths = [unquote(p) for _, p, _ in shared_sandbox.request_log[logged:]]
    assert not [p for p in paths if p.startswith("/nowhere")]
    assert any(
        p.startswith(f"{int_prefix}/PurchaseOrderHandling.svc/PurchaseOrderLineSet?") for p in paths
    )
    assert any(
        p.startswith("/main/ifsapplications/projection/v1/VoucherRowsAnalysis.svc/VoucherRowSet?")
        for p in paths
    )
    assert f"{int_prefix}/VoucherRowsAnalysis.svc/$metadata" in paths  # gl_accounts' own

"""Built-in streams as data; overrides and custom streams reshape them, or fail clearly."""

from __future__ import annotations

from urllib.parse import unquote

import pytest

from tap_ifscloud.errors import ConfigurationError
from tap_ifscloud.streams import (
    BUILTIN_STREAMS,
    FULL_TABLE,
    INCREMENTAL,
    stream_definitions,
)

from .conftest import run_tap, sandbox_rows, tap_config


def definitions(**config):
    return {d.name: d for d in stream_definitions(config)}


def test_builtin_streams():
    names = [d.name for d in BUILTIN_STREAMS]
    assert names == [
        "supplier_invoices",
        "purchase_orders",
        "purchase_order_lines",
        "customer_orders",
        "voucher_rows",
        "gl_accounts",
        "cost_dimensions",
        "account_hierarchy",
    ]
    costs = definitions()["cost_dimensions"]
    assert [s for _, s in costs.entity_sets()] == [f"Reference_Code{c}" for c in "BCDEFGHIJ"]


def test_every_field_of_a_builtin_stream_can_be_overridden():
    override = {
        "projection": "AcmeInvoiceHandling",
        "entity_set": "InvoiceSet",
        "key_properties": ["Company", "InvoiceNo"],
        "replication_key": "Changed",
        "replication_mode": "window",
        "filter": "Objstate eq 'Posted'",
        "select": ["Company", "InvoiceNo", "Amount"],
    }
    d = definitions(stream_overrides={"supplier_invoices": override})["supplier_invoices"]
    assert (d.projection, d.entity_set, d.key_properties) == (
        "AcmeInvoiceHandling",
        "InvoiceSet",
        ("Company", "InvoiceNo"),
    )
    assert (d.replication_key, d.replication_mode, d.filter) == (
        "Changed",
        "window",
        override["filter"],
    )
    assert d.select == ("Company", "InvoiceNo", "Amount")


def test_full_table_override_drops_the_replication_key():
    d = definitions(stream_overrides={"customer_orders": {"replication_mode": "full_table"}})
    assert d["customer_orders"].replication_mode == FULL_TABLE
    assert d["customer_orders"].replication_key is None
    d = definitions(stream_overrides={"gl_accounts": {"replication_key": "ValidFrom"}})
    assert d["gl_accounts"].replication_mode == INCREMENTAL


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"stream_overrides": {"vouchers": {}}}, "unknown stream(s) vouchers"),
        ({"stream_overrides": {"voucher_rows": {"mode": "window"}}}, "unknown setting(s) mode"),
        (
            {"stream_overrides": {"voucher_rows": {"replication_mode": "cdc"}}},
            "replication_mode must be",
        ),
        (
            {"stream_overrides": {"gl_accounts": {"replication_mode": "incremental"}}},
            "needs a replication_key",
        ),
        ({"stream_overrides": {"gl_accounts": {"select": "Account"}}}, "must be a list"),
        ({"custom_streams": [{"projection": "P", "entity_set": "S"}]}, "needs a non-empty 'name'"),
        ({"custom_streams": [{"name": "x", "projection": "P"}]}, "missing entity_set"),
        (
            {"custom_streams": [{"name": "gl_accounts", "projection": "P", "entity_set": "S"}]},
            "is taken",
        ),
        (
            {"stream_overrides": {"voucher_rows": {"filter": "Company eq 'US01') or (1 eq 1"}}},
            "stream 'voucher_rows': filter \"Company eq 'US01') or (1 eq 1\" has a ')' "
            "without its '('",
        ),
        (
            {
                "custom_streams": [
                    {"name": "x", "projection": "P", "entity_set": "S", "filter": "A eq 'b"}
                ]
            },
            "stream 'x': filter \"A eq 'b\" has a string literal opened at character 6",
        ),
        (
            {"stream_overrides": {"voucher_rows": {"path_prefix": "/int/../admin"}}},
            "stream 'voucher_rows': path_prefix '/int/../admin' is not a plain URL path",
        ),
        (
            {"stream_overrides": {"voucher_rows": {"path_prefix": "https://elsewhere/v1"}}},
            "is not a plain URL path",
        ),
    ],
)
def test_bad_stream_configuration_is_a_clear_error(config, message):
    with pytest.raises(ConfigurationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        stream_definitions(config)


def test_path_prefix_is_per_stream_and_normalised():
    d = definitions(
        stream_overrides={
            "purchase_order_lines": {"path_prefix": "int/ifsapplications/projection/v1/"}
        },
        custom_streams=[
            {
                "name": "po_lines",
                "projection": "PurchaseOrderLineEntity",
                "entity_set": "PurchaseOrderLineSet",
                "path_prefix": "/int/ifsapplications/projection/v1",
            }
        ],
    )
    assert d["purchase_order_lines"].path_prefix == "/int/ifsapplications/projection/v1"
    assert d["po_lines"].path_prefix == "/int/ifsapplications/projection/v1"
    assert d["voucher_rows"].path_prefix is None  # the system's path_prefix


def test_a_breaking_out_filter_is_never_sent(shared_sandbox):
    """`Company eq 'US01') or (Company ne 'US01'` would read every company, unbounded."""
    from tap_ifscloud.tap import TapIFSCloud

    logged = len(shared_sandbox.request_log)
    config = tap_config(
        shared_sandbox,
        companies=["US01"],
        stream_overrides={"voucher_rows": {"filter": "Company eq 'US01') or (Company ne 'US01'"}},
    )
    with pytest.raises(ConfigurationError, match="stream 'voucher_rows': filter"):
        TapIFSCloud(config=config).streams  # noqa: B018
    assert not [p for _, p, _ in shared_sandbox.request_log[logged:] if "VoucherRowSet" in p]


def test_a_filter_is_combined_in_its_own_parentheses(shared_sandbox):
    config = tap_config(
        shared_sandbox,
        companies=["US01"],
        start_date="2026-03-01",
        stream_overrides={"voucher_rows": {"filter": "VoucherType eq 'AP' or VoucherType eq 'AR'"}},
    )
    logged = len(shared_sandbox.request_log)
    run = run_tap(config)
    filters = [
        unquote(p).split("$filter=")[1].split("&")[0]
        for _, p, _ in shared_sandbox.request_log[logged:]
        if "VoucherRowSet?" in p
    ]
    assert filters[0] == (
        "(Company eq 'US01') and (VoucherType eq 'AP' or VoucherType eq 'AR') "
        "and (EntryDate ge 2026-03-01)"
    )
    records = run.records("voucher_rows")
    assert records
    assert {r["VoucherType"] for r in records} <= {"AP", "AR"}
    assert all(r["Company"] == "US01" and r["EntryDate"] >= "2026-03-01" for r in records)


def test_custom_stream_takes_keys_from_metadata_and_select_narrows_the_schema(shared_sandbox):
    config = tap_config(
        shared_sandbox,
        companies=["US01"],
        custom_streams=[
            {
                "name": "po_lines_light",
                "projection": "PurchaseOrderHandling",
                "entity_set": "PurchaseOrderLineSet",
                "replication_key": "LastModified",
                "select": ["LineAmount"],
            }
        ],
        stream_overrides={"voucher_rows": {"select": ["Account", "Amount"]}},
    )
    run = run_tap(config)
    schema = next(
        m for m in run.messages if m["type"] == "SCHEMA" and m["stream"] == "po_lines_light"
    )
    assert schema["key_properties"] == ["OrderNo", "LineNo", "ReleaseNo"]
    lines = run.records("po_lines_light")
    expected = [
        r
        for r in sandbox_rows(shared_sandbox, "PurchaseOrderHandling", "PurchaseOrderLineSet")
        if r["Company"] == "US01"
    ]
    assert len(lines) == len(expected)
    assert set(lines[0]) == {
        "OrderNo",
        "LineNo",
        "ReleaseNo",
        "Company",
        "LastModified",
        "LineAmount",
        "_ifs_etag",
        "_ifs_objversion",
    }
    vouchers = run.records("voucher_rows")
    assert set(vouchers[0]) == {
        "Company",
        "VoucherType",
        "AccountingYear",
        "VoucherNo",
        "RowNo",
        "EntryDate",
        "Account",
        "Amount",
        "_ifs_etag",
        "_ifs_objversion",
    }


def test_enabled_false_leaves_a_stream_out():
    d = definitions(
        stream_overrides={"account_hierarchy": {"enabled": False}},
        custom_streams=[{"name": "x", "projection": "P", "entity_set": "S", "enabled": False}],
    )
    assert "account_hierarchy" not in d and "x" not in d
    assert "voucher_rows" in d
    with pytest.raises(ConfigurationError, match="enabled must be true or false"):
        definitions(stream_overrides={"account_hierarchy": {"enabled": "no"}})

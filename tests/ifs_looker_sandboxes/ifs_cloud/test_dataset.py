"""The generated data: deterministic, several companies, balanced vouchers, exact amounts."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

from ifs_looker_sandboxes.ifs_cloud import IfsCloudSandbox
from tests.sandboxes import ifs_cloud_sandbox

VOUCHERS = ("VoucherRowsAnalysis", "VoucherRowSet")


def test_same_seed_same_rows_other_seed_other_rows() -> None:
    small = {"voucher_rows_per_company": 50, "orders_per_company": 5, "invoices_per_company": 5}
    first = ifs_cloud_sandbox(seed=1, **small).rows(*VOUCHERS)
    again = ifs_cloud_sandbox(seed=1, **small).rows(*VOUCHERS)
    other = ifs_cloud_sandbox(seed=2, **small).rows(*VOUCHERS)
    assert first == again
    assert first != other


def test_every_voucher_balances_in_accounting_currency(ifs_sandbox: IfsCloudSandbox) -> None:
    totals: dict[tuple, Decimal] = defaultdict(Decimal)
    for row in ifs_sandbox.rows(*VOUCHERS):
        key = (row["Company"], row["VoucherType"], row["AccountingYear"], row["VoucherNo"])
        assert row["Amount"] == row["DebetAmount"] - row["CreditAmount"]
        totals[key] += Decimal(row["DebetAmount"]) - Decimal(row["CreditAmount"])
    assert len(totals) > 100
    assert set(totals.values()) == {Decimal(0)}


def test_three_companies_with_every_entity(ifs_sandbox: IfsCloudSandbox) -> None:
    for projection, entity_set in ifs_sandbox.store.tables:
        companies = {row["Company"] for row in ifs_sandbox.rows(projection, entity_set)}
        assert companies == {"US01", "DE01", "SE01"}, entity_set


def test_amounts_have_at_most_six_decimals_and_some_exceed_float(
    ifs_sandbox: IfsCloudSandbox,
) -> None:
    amounts = [Decimal(r["Amount"]) for r in ifs_sandbox.rows(*VOUCHERS)]
    assert all(-a.as_tuple().exponent <= 6 for a in amounts)
    assert any(Decimal(float(a)) != a and len(a.as_tuple().digits) > 17 for a in amounts)


def test_documents_move_through_states(ifs_sandbox: IfsCloudSandbox) -> None:
    invoices = {
        r["Objstate"]
        for r in ifs_sandbox.rows("ManualSupplierInvoiceHandling", "ManSuppInvoiceSet")
    }
    orders = {r["Objstate"] for r in ifs_sandbox.rows("PurchaseOrderHandling", "PurchaseOrderSet")}
    assert len(invoices) >= 3 and len(orders) >= 3


def test_hierarchy_leaves_are_the_accounts(ifs_sandbox: IfsCloudSandbox) -> None:
    nodes = ifs_sandbox.rows("AccountingStructureHandling", "AccountingStructureItemSet")
    accounts = ifs_sandbox.rows("VoucherRowsAnalysis", "Reference_Account")
    for company in ("US01", "DE01", "SE01"):
        mine = {n["NodeId"]: n for n in nodes if n["Company"] == company}
        leaves = {k for k, n in mine.items() if n["NodeType"] == "Account"}
        assert leaves == {a["Account"] for a in accounts if a["Company"] == company}
        for node in mine.values():
            parent = node["ParentNodeId"]
            assert parent is None or mine[parent]["LevelNo"] == node["LevelNo"] - 1

"""The mutation clock changes data between requests the way a live IFS system does."""

from __future__ import annotations

from collections import Counter

from ifs_looker_sandboxes.clock import ManualClock
from tests.sandboxes import ifs_cloud_sandbox

from .conftest import ODataClient

ORDERS = ("CustomerOrderHandling", "CustomerOrderSet")


def test_mutations_insert_update_and_delete_between_requests(sandbox_factory) -> None:
    sandbox = sandbox_factory(voucher_rows_per_company=60, mutations_per_request=25)
    client = ODataClient(sandbox)
    before = {r["OrderNo"]: r for r in sandbox.rows(*ORDERS)}
    for _ in range(8):
        client.rows(*ORDERS, **{"$top": "1"})
    actions = Counter(
        (action, behaviour_of(sandbox, entity_set)) for action, entity_set, _ in sandbox.clock.log
    )
    assert actions[("insert", "changing")] and actions[("update", "changing")]
    assert actions[("insert", "ledger")]
    assert actions[("delete", "reference")]
    assert not actions[("delete", "changing")] and not actions[("update", "ledger")]

    after = {r["OrderNo"]: r for r in sandbox.rows(*ORDERS)}
    updated = [k for k in before if before[k]["@odata.etag"] != after[k]["@odata.etag"]]
    for key in updated:
        assert after[key]["LastModified"] > before[key]["LastModified"]


def behaviour_of(sandbox, entity_set: str) -> str:
    return sandbox.store.table_for_set(entity_set).entity.behaviour


def test_new_vouchers_are_balanced_and_entered_today(sandbox_factory) -> None:
    sandbox = sandbox_factory(voucher_rows_per_company=30)
    table = sandbox.store.table("VoucherRowsAnalysis", "VoucherRowSet")
    before = set(table.rows)
    sandbox.clock._ledger(table)
    new = [table.as_dict(table.rows[k]) for k in set(table.rows) - before]
    assert len(new) >= 2
    assert sum(r["DebetAmount"] for r in new) == sum(r["CreditAmount"] for r in new)
    assert len({r["EntryDate"] for r in new}) == 1


def test_mutated_rows_are_served_with_their_new_etag(sandbox_factory) -> None:
    sandbox = sandbox_factory(voucher_rows_per_company=30)
    client = ODataClient(sandbox)
    table = sandbox.store.table(*ORDERS)
    while not any(a == "update" for a, s, _ in sandbox.clock.log if s == "CustomerOrderSet"):
        sandbox.clock._changing(table)
    key = next(k for a, s, k in sandbox.clock.log if a == "update" and s == "CustomerOrderSet")
    served = client.rows(*ORDERS, **{"$filter": f"OrderNo eq '{key[0]}'"})
    assert served == [r for r in sandbox.rows(*ORDERS) if r["OrderNo"] == key[0]]


def test_mutated_rows_stay_valid_against_their_metadata(sandbox_factory) -> None:
    sandbox = sandbox_factory(voucher_rows_per_company=30)
    sandbox.clock.tick(400)
    for (projection, entity_set), table in sandbox.store.tables.items():
        enums = table.projection_enums
        for row in sandbox.rows(projection, entity_set):
            for prop in table.entity.props:
                if prop.is_enum and row[prop.name] is not None:
                    assert row[prop.name] in enums[prop.type].members, (entity_set, prop.name)
                if prop.max_length and row[prop.name] is not None:
                    assert len(row[prop.name]) <= prop.max_length, (entity_set, prop.name)


def test_on_a_manual_clock_mutations_are_reproducible_and_dated_by_it() -> None:
    runs = []
    for _ in range(2):
        clock = ManualClock()
        sandbox = ifs_cloud_sandbox(time_source=clock, voucher_rows_per_company=30)
        clock.advance(3600)
        sandbox.clock.tick(60)
        runs.append({(p, s): sandbox.rows(p, s) for p, s in sandbox.store.tables})
    assert runs[0] == runs[1]
    stamp = clock.now().strftime("%Y-%m-%dT%H:%M:%SZ")
    changed = [
        key
        for action, entity_set, key in sandbox.clock.log
        if entity_set == "CustomerOrderSet" and action in ("insert", "update")
    ]
    assert changed
    orders = {r["OrderNo"]: r for r in sandbox.rows(*ORDERS)}
    assert {orders[key[0]]["LastModified"] for key in changed} == {stamp}

"""Generated voucher rows kept compactly serve exactly the rows an eager store holds.

The sandbox keeps GL voucher rows as a `VoucherPlan` (a few bytes a row) and makes rows
while it answers. The reference here is the eager construction: a Store into which every
row of `dataset.generate(config)` is put, as the sandbox did before. Both must hold the
same rows (values, etags, order) and answer every scan the same, before and after changes.
"""

from __future__ import annotations

import hashlib
from datetime import date
from decimal import Decimal

import msgspec
import pytest

from ifs_looker_sandboxes.clock import ManualClock
from ifs_looker_sandboxes.ifs_cloud import IfsCloudSandbox, SandboxConfig
from ifs_looker_sandboxes.ifs_cloud.dataset import (
    VOUCHER_COLUMNS,
    VoucherPlan,
    generate,
    voucher_rows,
)
from ifs_looker_sandboxes.ifs_cloud.mutation import MutationClock
from ifs_looker_sandboxes.ifs_cloud.query import (
    QueryError,
    parse_filter,
    parse_orderby,
    parse_select,
)
from ifs_looker_sandboxes.ifs_cloud.server import collect
from ifs_looker_sandboxes.ifs_cloud.store import ENCODER, EntityTable, Store, keyset_bound
from tests.sandboxes import ifs_cloud_sandbox

from .conftest import ODataClient

VOUCHERS = ("VoucherRowsAnalysis", "VoucherRowSet")
KEYS = ("Company", "VoucherType", "AccountingYear", "VoucherNo", "RowNo")
SMALL = {"voucher_rows_per_company": 400, "orders_per_company": 6, "invoices_per_company": 6}


def eager_store(sandbox: IfsCloudSandbox) -> Store:
    """The sandbox's data put row by row into a Store, as the sandbox used to load it."""
    store = Store(sandbox.projections, sandbox._shapers())
    tables = {s: t for (_, s), t in store.tables.items()}
    for entity_set, row, changed_at in generate(sandbox.config):
        tables[entity_set].put(row, changed_at)
    return store


def digest(table: EntityTable) -> str:
    """Every row's key and JSON, in the table's (dict) order."""
    h = hashlib.sha256()
    for key, row in table.rows.items():
        h.update(repr(key).encode())
        h.update(ENCODER.encode(row))
    return h.hexdigest()


def answer(table: EntityTable, params: dict[str, str]) -> tuple[bytes, bool, int | None] | str:
    """What the sandbox's collection GET computes for these query options (page JSON etc.),
    or its refusal."""
    entity, namespace, enums = table.entity, table.namespace, table.projection_enums
    try:
        flt = (
            parse_filter(params["$filter"], entity, namespace, enums)
            if "$filter" in params
            else None
        )
        order = parse_orderby(params["$orderby"], entity, namespace) if "$orderby" in params else ()
        select = parse_select(params["$select"], entity, namespace) if "$select" in params else ()
    except QueryError as exc:
        return str(exc)
    rows, start = table.scan(flt, table.total_order(order))
    page, more, total = collect(
        rows,
        start,
        flt.predicate if flt else None,
        int(params.get("$skip", "0")),
        int(params["$top"]) if "$top" in params else None,
        params.get("$count") == "true",
    )
    return table.to_json(page, select), more, total


def keyset(last: dict[str, object], names: tuple[str, ...]) -> str:
    """`(A gt a) or (A eq a and (...))` after `last`, as key-set paging sends it."""

    def literal(value: object) -> str:
        if isinstance(value, str):
            return "'" + value.replace("'", "''") + "'"
        return value.isoformat() if isinstance(value, date) else str(value)

    clause = ""
    for name in reversed(names):
        value = last[name]
        greater = f"{name} ne null" if value is None else f"{name} gt {literal(value)}"
        if not clause:
            clause = greater
            continue
        equal = f"{name} eq null" if value is None else f"{name} eq {literal(value)}"
        clause = f"({greater}) or ({equal} and ({clause}))"
    return clause


def pages(table: EntityTable, base: str | None, names: tuple[str, ...], size: int) -> list:
    """Every page of a key-set read in (names) order: JSON of each page."""
    out, last = [], None
    while True:
        clauses = [c for c in (base, keyset(last, names) if last else None) if c]
        params = {"$orderby": ",".join(names), "$top": str(size)}
        if clauses:
            params["$filter"] = " and ".join(f"({c})" for c in clauses)
        answered = answer(table, params)
        assert not isinstance(answered, str), answered
        body = answered[0]
        out.append(body)
        rows = decode_rows(body)
        if len(rows) < size:
            return out
        last = {n: rows[-1][n] for n in names}
        if any(v is None for v in last.values()):  # no key to continue after: stop here
            return out


def decode_rows(body: bytes) -> list[dict]:
    rows = msgspec.json.decode(b"[" + body + b"]")
    for row in rows:  # dates back to dates, for the next key-set literal
        for name in ("EntryDate", "VoucherDate"):
            if isinstance(row.get(name), str):
                row[name] = date.fromisoformat(row[name])
    return rows


QUERIES: tuple[dict[str, str], ...] = (
    {},
    {"$top": "9", "$skip": "40"},
    {"$count": "true", "$top": "3"},
    {"$filter": "Company eq 'DE01'", "$top": "25"},
    {"$filter": "Company eq 'DE01' and EntryDate ge 2026-01-01", "$orderby": "EntryDate"},
    {"$filter": "EntryDate eq null", "$orderby": ",".join(KEYS)},
    {"$filter": "Company eq 'US01' and EntryDate eq null", "$orderby": ",".join(KEYS)},
    {"$filter": "Company eq 'US01' and EntryDate ne null", "$count": "true", "$top": "4"},
    {"$filter": "EntryDate lt 2025-03-01", "$orderby": "EntryDate", "$count": "true"},
    {"$filter": "Account eq '1400' and Quantity gt 100", "$count": "true"},
    {"$filter": "VoucherType eq 'AP' and AccountingYear eq 2026", "$top": "30"},
    {"$filter": "not (Company eq 'US01')", "$orderby": "EntryDate,Company", "$top": "30"},
    {"$filter": "contains(Text,'ÅÄÖ') or Company eq 'AA00'", "$top": "10"},
    {"$orderby": "Amount desc", "$top": "15"},
    {"$orderby": "EntryDate desc", "$top": "15", "$skip": "3"},
    {"$orderby": "Account,EntryDate", "$top": "20", "$select": "Amount,Text"},
    {"$select": ",".join(VOUCHER_COLUMNS), "$top": "12"},
    {"$select": "EntryDate,Amount", "$filter": "Company eq 'SE01'", "$top": "12"},
)


def compare_everything(compact: EntityTable, eager: EntityTable) -> None:
    assert len(compact.rows) == len(eager.rows)
    assert list(compact.rows) == list(eager.rows)
    assert digest(compact) == digest(eager)
    for params in QUERIES:
        assert answer(compact, params) == answer(eager, params), params
    order = ("EntryDate", *KEYS)
    for base in ("Company eq 'US01'", None, "Company eq 'US01' and EntryDate ge 2025-06-01"):
        assert pages(compact, base, order, 37) == pages(eager, base, order, 37), base
    assert pages(compact, "Company eq 'SE01'", KEYS, 41) == pages(
        eager, "Company eq 'SE01'", KEYS, 41
    )


@pytest.mark.parametrize("tenant", ["default", "varied"])
@pytest.mark.parametrize("seed", [7, 11])
def test_compact_store_holds_the_eager_rows(seed: int, tenant: str) -> None:
    sandbox = ifs_cloud_sandbox(seed=seed, tenant=tenant, **SMALL)
    table = sandbox.store.table(*VOUCHERS)
    assert table.generated is not None, "voucher rows are planned, not put"
    eager = eager_store(sandbox)
    for key, compact_table in sandbox.store.tables.items():
        assert digest(compact_table) == digest(eager.tables[key]), key
    compare_everything(table, eager.table(*VOUCHERS))


@pytest.mark.parametrize("tenant", ["default", "varied"])
def test_scans_stay_the_same_after_changes(tenant: str) -> None:
    clock = ManualClock()
    sandbox = ifs_cloud_sandbox(seed=11, tenant=tenant, time_source=clock, **SMALL)
    eager = eager_store(sandbox)
    compact, reference = sandbox.store.table(*VOUCHERS), eager.table(*VOUCHERS)
    clock.advance(3600)
    sandbox.clock.tick(120)
    MutationClock(eager, 11, clock).tick(120)
    now = clock.now()
    for table in (compact, reference):
        keys = list(table.rows)
        put = table.put
        put(_row(table, keys[len(keys) // 2]) | {"EntryDate": None}, now)  # no entry date
        put(_row(table, keys[7]) | {"EntryDate": date(2019, 5, 1)}, now)  # before every day
        put(_row(table, keys[9]) | {"Text": "patched", "Amount": Decimal("5.5")}, now)
        table.delete(keys[0])
        again = _row(table, keys[11])
        table.delete(keys[11])
        put(again | {"Text": "back"}, now)  # a deleted row put again: at the end, as in a dict
        table.delete(keys[-40])
        put(_row(table, keys[20]) | {"Company": "AA00"}, now)  # before every company
        put(_row(table, keys[21]) | {"VoucherNo": 1, "EntryDate": date(2030, 1, 1)}, now)
    compare_everything(compact, reference)
    for position in (0, 1, len(compact.rows) // 3, len(compact.rows) - 1):
        assert compact.key_at(position) == list(reference.rows)[position]


def _row(table: EntityTable, key: tuple) -> dict[str, object]:
    return table.as_dict(table.rows[key])


def test_the_mutation_clock_picks_the_same_rows() -> None:
    runs = []
    for eager in (False, True):
        clock = ManualClock()
        sandbox = ifs_cloud_sandbox(seed=7, time_source=clock, **SMALL)
        store = eager_store(sandbox) if eager else sandbox.store
        mutations = MutationClock(store, 7, clock)
        clock.advance(60)
        mutations.tick(300)
        runs.append((mutations.log, {k: digest(t) for k, t in store.tables.items()}))
    assert runs[0] == runs[1]


@pytest.mark.parametrize(
    ("seed", "rows", "companies"),
    [
        (7, 600, ("US01", "DE01", "SE01")),
        (11, 37, ("US01", "XX02")),
        (3, 3000, ("SE01",)),
        (7, 1, ("US01",)),
        (7, 0, ("US01",)),
    ],
)
def test_a_voucher_plan_replays_voucher_rows(seed: int, rows: int, companies: tuple) -> None:
    config = SandboxConfig(seed=seed, companies=companies, voucher_rows_per_company=rows)
    expected = [row for _, row, _ in voucher_rows(config)]
    plan = VoucherPlan(config)
    assert plan.row_count == len(expected)
    for i, row in enumerate(expected):
        made = plan.row(i)
        assert made == row
        assert [str(made[c]) for c in VOUCHER_COLUMNS] == [str(row[c]) for c in VOUCHER_COLUMNS]
        key = tuple(row[k] for k in KEYS)
        assert plan.key(i) == key
        assert plan.find(key) == i
    assert plan.find(("US01", "GL", 2025, 1, 1)) is None
    assert plan.find(("US01", "XX", 2025, 202500001, 1)) is None


def test_every_generated_row_is_written_as_msgspec_writes_it() -> None:
    sandbox = ifs_cloud_sandbox(seed=5, voucher_rows_per_company=3000, companies=("US01", "SE01"))
    table = sandbox.store.table(*VOUCHERS)
    generated = table.generated
    assert generated is not None
    rows, _ = table.scan(None, table.total_order(()))
    refs = [rows[i] for i in range(len(rows))]
    written = table.to_json(refs).split(b',{"@odata.etag"')
    assert len(written) == generated.count
    for i, (ref, json) in enumerate(zip(refs, written, strict=True)):
        expected = ENCODER.encode(generated.row(ref.base_index))
        assert (json if i == 0 else b'{"@odata.etag"' + json) == expected


def test_generated_rows_take_a_few_bytes_each() -> None:
    plan = VoucherPlan(SandboxConfig(companies=("US01",), voucher_rows_per_company=100_000))
    arrays = (
        plan.voucher,
        plan.voucher_number,
        plan.voucher_first_row,
        plan.row_bits,
        plan.mantissa,
    )
    size = sum(a.itemsize * len(a) for a in arrays) + 100 * len(plan.big_mantissa)
    assert size / plan.row_count < 32


def test_keyset_filters_give_the_key_to_start_after() -> None:
    sandbox = ifs_cloud_sandbox(voucher_rows_per_company=30)
    table = sandbox.store.table(*VOUCHERS)
    names = ("EntryDate", *KEYS)
    last = {
        "EntryDate": date(2025, 3, 4),
        "Company": "US01",
        "VoucherType": "GL",
        "AccountingYear": 2025,
        "VoucherNo": 202500010,
        "RowNo": 2,
    }
    text = f"(Company eq 'US01') and ({keyset(last, names)})"
    flt = parse_filter(text, table.entity, table.namespace, table.projection_enums)
    assert keyset_bound(flt.ast, names) == tuple(last.values())
    assert keyset_bound(flt.ast, KEYS) is None
    other = parse_filter("EntryDate gt 2025-03-04", table.entity, table.namespace)
    assert keyset_bound(other.ast, names) is None


def test_a_sandbox_starts_with_planned_vouchers_and_serves_them_by_http() -> None:
    sandbox = ifs_cloud_sandbox(voucher_rows_per_company=50_000, companies=("US01",))
    table = sandbox.store.table(*VOUCHERS)
    assert table.generated is not None and len(table.rows) >= 50_000
    with sandbox:
        client = ODataClient(sandbox)
        rows = client.rows(*VOUCHERS, **{"$filter": "EntryDate ge 2026-06-30", "$top": "5"})
        assert rows and {r["EntryDate"] for r in rows} == {"2026-06-30"}
        key = "Company='US01',VoucherType='GL',AccountingYear=2026,VoucherNo=202600002,RowNo=1"
        response = client.get(*VOUCHERS[:1], f"VoucherRowSet({key})")
        assert response.status_code == 200
        etag = response.headers["ETag"]
        patched = client.session.patch(
            client.url(VOUCHERS[0], f"VoucherRowSet({key})"),
            json={"Text": "corrected"},
            headers={"If-Match": etag},
            timeout=10,
        )
        assert patched.status_code == 200 and patched.json()["Text"] == "corrected"
        assert patched.headers["ETag"] != etag
        assert table.rows[("US01", "GL", 2026, 202600002, 1)].Text == "corrected"  # type: ignore[attr-defined]

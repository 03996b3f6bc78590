"""Tenant variants: `varied` serves another tenant's shape; the default tenant the built-in one.

What a test elsewhere reads ("no column lost"): `tenant_variant("varied")` (or `sandbox.tenant`)
with `extra_properties[entity_set]`, `missing_properties[entity_set]`,
`stream_properties(entity_set)` and `row_properties(entity_set)`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from decimal import Decimal
from xml.etree import ElementTree as ET

import pytest

from ifs_looker_sandboxes.clock import ManualClock
from ifs_looker_sandboxes.ifs_cloud import IfsCloudSandbox, SandboxConfig, tenant_variant
from ifs_looker_sandboxes.ifs_cloud.entities import (
    BINARY,
    BOOLEAN,
    DATE,
    DECIMAL,
    PROJECTIONS,
    PROJECTIONS_BY_NAME,
    STREAM,
    STRING,
    TIME_OF_DAY,
    TIMESTAMP,
)
from ifs_looker_sandboxes.ifs_cloud.tenants import (
    AWKWARD_DECIMALS,
    EXTREME_DECIMALS,
    POSTING_SOURCE,
)
from tests.sandboxes import ifs_cloud_sandbox, running_ifs_cloud

from .conftest import ODataClient

VARIED = tenant_variant("varied")
NS = {"edm": "http://docs.oasis-open.org/odata/ns/edm"}
SMALL = {"voucher_rows_per_company": 200, "orders_per_company": 12, "invoices_per_company": 12}
DEFAULT_VOUCHER_ROW = PROJECTIONS_BY_NAME["VoucherRowsAnalysis"].entity_type("VoucherRow")
ENTITY_SETS = [(p.name, s.name) for p in PROJECTIONS for s in p.entity_sets]


@pytest.fixture(scope="module")
def varied_sandbox() -> Iterator[IfsCloudSandbox]:
    with running_ifs_cloud(tenant="varied", **SMALL) as sandbox:
        yield sandbox


@pytest.fixture
def varied(varied_sandbox: IfsCloudSandbox) -> ODataClient:
    return ODataClient(varied_sandbox)


def schema(client: ODataClient, projection: str) -> ET.Element:
    response = client.get(projection, "$metadata")
    assert response.status_code == 200
    return ET.fromstring(response.content).find("*/edm:Schema", NS)  # type: ignore[return-value]


def entity_type_element(root: ET.Element, projection: str, entity_set: str) -> ET.Element:
    namespace = root.get("Namespace")
    set_element = root.find(f"edm:EntityContainer/edm:EntitySet[@Name='{entity_set}']", NS)
    type_name = set_element.get("EntityType").removeprefix(f"{namespace}.")  # type: ignore[union-attr]
    return root.find(f"edm:EntityType[@Name='{type_name}']", NS)  # type: ignore[return-value]


def all_rows(client: ODataClient, projection: str, entity_set: str, **params: str) -> list[dict]:
    response = client.get(projection, entity_set, **params)
    assert response.status_code == 200, response.text
    return json.loads(response.content, parse_float=Decimal)["value"]


# the variant's shape, as data ---------------------------------------------------------------------


def test_every_built_in_entity_set_gets_extra_properties() -> None:
    assert {s for _, s in ENTITY_SETS} == set(VARIED.extra_properties)
    for _, entity_set in ENTITY_SETS:
        assert VARIED.extra_properties[entity_set], entity_set


def test_extras_cover_the_kinds_of_property_a_real_tenant_has() -> None:
    types = {p.type for props in VARIED.extra_properties.values() for p in props}
    assert {STRING, BOOLEAN, DECIMAL, DATE, TIMESTAMP, TIME_OF_DAY, BINARY, STREAM} <= types
    assert any(not t.startswith("Edm.") for t in types), "an enum-typed extra"
    voucher = {p.name: p.type for p in VARIED.extra_properties["VoucherRowSet"]}
    assert voucher["Cf_Party_Alias"] == STRING and voucher["Cf_Review_Required"] == BOOLEAN
    assert voucher["Cf_Settled_On"] == DATE and voucher["Cf_Allocation_Share"] == DECIMAL
    assert voucher["Cf_Posting_Source"] == "PostingSource"
    default_names = {p.name for p in DEFAULT_VOUCHER_ROW.props}
    assert not default_names & set(voucher), "extras are beyond the default (recorded) shape"
    assert VARIED.extra_navigations["VoucherRowSet"]
    assert VARIED.stream_properties("VoucherRowSet") == ("DocumentData",)


def test_missing_properties_are_neither_keys_nor_replication_fields() -> None:
    assert set(VARIED.missing_properties["VoucherRowSet"]) == {
        "ProjectActivityId",
        "PeriodAllocation",
        "TaxSeriesNo",
    }
    assert "SatLevel" in VARIED.missing_properties["Reference_Account"]
    for projection, entity_set in ENTITY_SETS:
        default = next(p for p in PROJECTIONS if p.name == projection)
        entity = default.entity_type(default.entity_set(entity_set).entity_type)  # type: ignore[union-attr]
        for name in VARIED.missing_properties.get(entity_set, ()):
            prop = entity.prop(name)
            assert prop is not None and name not in entity.keys
            assert prop.type not in (DATE, TIMESTAMP), f"{name} could be a replication field"
            assert name not in VARIED.row_properties(entity_set)


def test_row_properties_are_the_default_ones_minus_missing_plus_stored_extras() -> None:
    for projection, entity_set in ENTITY_SETS:
        default = next(p for p in PROJECTIONS if p.name == projection)
        entity = default.entity_type(default.entity_set(entity_set).entity_type)  # type: ignore[union-attr]
        expected = (
            set(entity.field_names) - set(VARIED.missing_properties.get(entity_set, ()))
        ) | {p.name for p in VARIED.extra_properties[entity_set] if p.type != STREAM}
        assert set(VARIED.row_properties(entity_set)) == expected


def test_an_unknown_tenant_is_refused_with_the_known_ones() -> None:
    with pytest.raises(ValueError, match="varied"):
        SandboxConfig(tenant="nosuchtenant")


# $metadata ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("projection", "entity_set"), ENTITY_SETS)
def test_metadata_lists_every_extra_with_its_type_and_lacks_the_missing(
    varied: ODataClient, projection: str, entity_set: str
) -> None:
    root = schema(varied, projection)
    namespace = root.get("Namespace")
    element = entity_type_element(root, projection, entity_set)
    props = {p.get("Name"): p for p in element.findall("edm:Property", NS)}
    enums = {
        e.get("Name"): [m.get("Name") for m in e.findall("edm:Member", NS)]
        for e in root.findall("edm:EnumType", NS)
    }
    for extra in VARIED.extra_properties[entity_set]:
        found = props[extra.name]
        if extra.is_enum:
            assert found.get("Type") == f"{namespace}.{extra.type}"
            assert enums[extra.type], f"enum {extra.type} is declared with members"
        else:
            assert found.get("Type") == extra.type
        if extra.max_length is not None:
            assert found.get("MaxLength") == str(extra.max_length)
        if extra.type == DECIMAL:
            assert (found.get("Precision"), found.get("Scale")) == ("130", "65")
    for name in VARIED.missing_properties.get(entity_set, ()):
        assert name not in props
    navigations = {n.get("Name") for n in element.findall("edm:NavigationProperty", NS)}
    assert {n.name for n in VARIED.extra_navigations.get(entity_set, ())} <= navigations


def test_recorded_enum_members_are_declared(varied: ODataClient) -> None:
    root = schema(varied, "VoucherRowsAnalysis")
    members = {
        e.get("Name"): [m.get("Name") for m in e.findall("edm:Member", NS)]
        for e in root.findall("edm:EnumType", NS)
    }
    assert members["AccountingLedgFlag"] == ["LedgerAccount", "NotLedgerAccount"]
    assert members["AccountRequest"] == ["Can", "Mandatory", "Blocked"]
    assert members["BudgetAccountFlag"] == ["BudgetAccount", "NotBudgetAccount"]


# rows --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("projection", "entity_set"), ENTITY_SETS)
def test_rows_carry_exactly_the_row_properties(
    varied: ODataClient, projection: str, entity_set: str
) -> None:
    rows = all_rows(varied, projection, entity_set, **{"$top": "20"})
    assert rows
    for row in rows:
        assert set(row) - {"@odata.etag"} == set(VARIED.row_properties(entity_set))


def test_voucher_rows_carry_exact_awkward_decimals(varied: ODataClient) -> None:
    response = varied.get("VoucherRowsAnalysis", "VoucherRowSet")
    rows = json.loads(response.content, parse_float=Decimal)["value"]
    table = varied.sandbox.store.table("VoucherRowsAnalysis", "VoucherRowSet")
    seen: dict[str, set[str]] = {"Cf_Allocation_Share": set(), "Cf_Precision_Probe": set()}
    for row in rows:
        stored = table.rows[table.key_of(row)]
        for name, values in seen.items():
            assert str(row[name]) == str(getattr(stored, name)), "the JSON number is exact"
            values.add(str(row[name]))
    assert seen["Cf_Allocation_Share"] == {str(d) for d in AWKWARD_DECIMALS}
    assert seen["Cf_Precision_Probe"] == {str(d) for d in EXTREME_DECIMALS}
    for text in ("12345678901234567890.123456789", "1.5E+3", "-0.00", "9" * 65 + "." + "9" * 65):
        assert text.encode() in response.content, f"{text} is sent as written"


def test_extra_values_are_typed_as_the_metadata_says(varied: ODataClient) -> None:
    row = next(
        r
        for r in all_rows(varied, "VoucherRowsAnalysis", "VoucherRowSet")
        if r["Cf_Approved_At"] and r["Cf_Settled_On"] and r["Cf_Signature"]
    )
    assert isinstance(row["Cf_Review_Required"], bool)
    assert len(row["Cf_Settled_On"]) == 10 and row["Cf_Settled_On"][4] == "-"
    assert row["Cf_Approved_At"].endswith("Z") and "T" in row["Cf_Approved_At"]
    assert len(row["Cf_Posting_Time"]) == 8 and row["Cf_Posting_Time"][2] == ":"
    assert set(row["Cf_Signature"]) <= set(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_="
    )
    assert row["YearPeriodKey"] == row["AccountingYear"] * 100 + row["AccountingPeriod"]
    account = all_rows(varied, "VoucherRowsAnalysis", "Reference_Account")
    assert {(a["LogicalAccountType"] == "Statistics", a["LedgFlag"]) for a in account} == {
        (False, "LedgerAccount"),
        (True, "NotLedgerAccount"),
    }


def test_rows_are_deterministic_per_seed() -> None:
    def extras(sandbox: IfsCloudSandbox) -> list[tuple]:
        names = VARIED.extra_property_names("VoucherRowSet")
        return [
            tuple(row.get(n) for n in names)
            for row in sandbox.rows("VoucherRowsAnalysis", "VoucherRowSet")
        ]

    small = {**SMALL, "voucher_rows_per_company": 40}
    first = ifs_cloud_sandbox(tenant="varied", **small)
    again = ifs_cloud_sandbox(tenant="varied", **small)
    other = ifs_cloud_sandbox(tenant="varied", seed=8, **small)
    assert first.rows("VoucherRowsAnalysis", "VoucherRowSet") == again.rows(
        "VoucherRowsAnalysis", "VoucherRowSet"
    )
    assert extras(first) != extras(other)


def test_the_mutation_clock_keeps_the_tenant_shape() -> None:
    sandbox = ifs_cloud_sandbox(
        tenant="varied", time_source=ManualClock(), **{**SMALL, "voucher_rows_per_company": 40}
    )
    sandbox.clock.tick(300)
    inserted = [key for action, s, key in sandbox.clock.log if action == "insert"]
    assert inserted
    for projection, entity_set in ENTITY_SETS:
        for row in sandbox.rows(projection, entity_set):
            assert set(row) - {"@odata.etag"} == set(VARIED.row_properties(entity_set))
    vouchers = [
        r for r in sandbox.rows("VoucherRowsAnalysis", "VoucherRowSet") if r["VoucherNo"] >= 8e8
    ]
    assert vouchers and all(r["Cf_Posting_Source"] in POSTING_SOURCE.members for r in vouchers)


# query options on extras --------------------------------------------------------------------------


def test_select_extras(varied: ODataClient) -> None:
    chosen = "ProjectId,Cf_Review_Required,Cf_Allocation_Share,Cf_Posting_Time,Cf_Signature"
    rows = all_rows(
        varied, "VoucherRowsAnalysis", "VoucherRowSet", **{"$select": chosen, "$top": "5"}
    )
    keys = {"Company", "VoucherType", "AccountingYear", "VoucherNo", "RowNo"}
    assert [set(r) for r in rows] == [{"@odata.etag", *keys, *chosen.split(",")}] * 5


FILTERS: list[tuple[str, str, str, Callable[[dict], bool]]] = [
    (
        "VoucherRowsAnalysis",
        "VoucherRowSet",
        "Cf_Review_Required eq true",
        lambda r: r["Cf_Review_Required"],
    ),
    (
        "VoucherRowsAnalysis",
        "VoucherRowSet",
        "Cf_Review_Required",
        lambda r: r["Cf_Review_Required"],
    ),
    (
        "VoucherRowsAnalysis",
        "VoucherRowSet",
        "Cf_Posting_Source eq 'Allocation'",
        lambda r: r["Cf_Posting_Source"] == "Allocation",
    ),
    (
        "VoucherRowsAnalysis",
        "VoucherRowSet",
        "Cf_Party_Alias eq null",
        lambda r: r["Cf_Party_Alias"] is None,
    ),
    (
        "VoucherRowsAnalysis",
        "VoucherRowSet",
        "Cf_Party_Alias eq 'O''Hara & Sons'",
        lambda r: r["Cf_Party_Alias"] == "O'Hara & Sons",
    ),
    (
        "VoucherRowsAnalysis",
        "VoucherRowSet",
        "Cf_Settled_On ge 2025-06-01",
        lambda r: r["Cf_Settled_On"] is not None and r["Cf_Settled_On"] >= "2025-06-01",
    ),
    (
        "VoucherRowsAnalysis",
        "VoucherRowSet",
        "Cf_Approved_At lt 2025-03-01T00:00:00Z",
        lambda r: r["Cf_Approved_At"] is not None and r["Cf_Approved_At"] < "2025-03-01T00:00:00Z",
    ),
    (
        "VoucherRowsAnalysis",
        "VoucherRowSet",
        "Cf_Posting_Time ge 12:00:00",
        lambda r: r["Cf_Posting_Time"] >= "12:00:00",
    ),
    (
        "VoucherRowsAnalysis",
        "VoucherRowSet",
        "Cf_Allocation_Share eq 0.1",
        lambda r: r["Cf_Allocation_Share"] == Decimal("0.1"),
    ),
    (
        "VoucherRowsAnalysis",
        "VoucherRowSet",
        "Cf_Allocation_Share gt 1E+3",
        lambda r: r["Cf_Allocation_Share"] > 1000,
    ),
    (
        "VoucherRowsAnalysis",
        "VoucherRowSet",
        "Cf_Precision_Probe lt 0",
        lambda r: r["Cf_Precision_Probe"] < 0,
    ),
    (
        "VoucherRowsAnalysis",
        "VoucherRowSet",
        "Cf_Signature eq null",
        lambda r: r["Cf_Signature"] is None,
    ),
    (
        "VoucherRowsAnalysis",
        "VoucherRowSet",
        "startswith(Cf_Cost_Driver, 'Floor')",
        lambda r: (r["Cf_Cost_Driver"] or "").startswith("Floor"),
    ),
    (
        "VoucherRowsAnalysis",
        "Reference_Account",
        "LedgFlag eq 'NotLedgerAccount'",
        lambda r: r["LedgFlag"] == "NotLedgerAccount",
    ),
    (
        "VoucherRowsAnalysis",
        "Reference_Account",
        "ReqCodeB eq IfsApp.VoucherRowsAnalysis.AccountRequest'Mandatory'",
        lambda r: r["ReqCodeB"] == "Mandatory",
    ),
    (
        "VoucherRowsAnalysis",
        "Reference_CodeB",
        "Cf_Cost_Centre_Owner ne null",
        lambda r: r["Cf_Cost_Centre_Owner"] is not None,
    ),
    (
        "CustomerOrderHandling",
        "CustomerOrderSet",
        "Priority eq 'Urgent' and Cf_Promised_At ge 2025-06-01",
        lambda r: (
            r["Priority"] == "Urgent"
            and r["Cf_Promised_At"] is not None
            and r["Cf_Promised_At"] >= "2025-06-01T00:00:00Z"
        ),
    ),
    (
        "PurchaseOrderHandling",
        "PurchaseOrderSet",
        "Cf_Delivery_Window_Start lt 09:30",
        lambda r: r["Cf_Delivery_Window_Start"] < "09:30:00",
    ),
]


@pytest.mark.parametrize(("projection", "entity_set", "text", "expected"), FILTERS)
def test_filter_on_extras_selects_exactly_the_matching_rows(
    varied: ODataClient,
    projection: str,
    entity_set: str,
    text: str,
    expected: Callable[[dict], bool],
) -> None:
    table = varied.sandbox.store.table(projection, entity_set)
    everything = varied.sandbox.rows(projection, entity_set)
    wanted = {table.key_of(r) for r in everything if expected(r)}
    assert wanted, f"the data set has rows for {text!r}"
    assert len(wanted) < len(everything), f"{text!r} leaves rows out"
    found = {table.key_of(r) for r in all_rows(varied, projection, entity_set, **{"$filter": text})}
    assert found == wanted


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"$filter": "TaxSeriesNo eq 1"}, "is not defined in type"),
        ({"$select": "PeriodAllocation"}, "Could not find a property named 'PeriodAllocation'"),
        ({"$select": "DocumentData"}, "stream property"),
        ({"$filter": "DocumentData eq null"}, "stream property"),
        ({"$orderby": "DocumentData"}, "stream property"),
        ({"$select": "EnteredByUserGroupRef"}, "named 'EnteredByUserGroupRef'"),
        ({"$filter": "Cf_Signature eq 'abc'"}, "incompatible types"),
        ({"$filter": "Cf_Posting_Time ge 25:00:00"}, "Invalid TimeOfDay literal"),
    ],
)
def test_missing_stream_and_navigation_properties_are_refused(
    varied: ODataClient, params: dict[str, str], words: str
) -> None:
    response = varied.get("VoucherRowsAnalysis", "VoucherRowSet", **params)
    assert response.status_code == 400
    assert words in response.json()["error"]["message"]


def test_patch_extras_are_validated_and_kept(sandbox_factory) -> None:
    sandbox = sandbox_factory(tenant="varied", **{**SMALL, "voucher_rows_per_company": 20})
    client = ODataClient(sandbox)
    url = client.url("CustomerOrderHandling", "CustomerOrderSet('C1000001')")
    good = {"Priority": "High", "Cf_Promised_At": "2026-01-02T03:04:05Z", "CustomerPoNo": "PO-1"}
    response = client.session.patch(url, json=good, timeout=10)
    assert response.status_code == 200, response.text
    assert {k: response.json()[k] for k in good} == good
    bogus = client.session.patch(url, json={"Priority": "Whenever"}, timeout=10)
    assert bogus.status_code == 400
    assert "not a valid value of enumeration 'OrderPriority'" in bogus.json()["error"]["message"]
    url = client.url("VoucherRowsAnalysis", "Reference_CodeB(Company='US01',CodeB='100')")
    response = client.session.patch(url, json={"Cf_Cost_Centre_Owner": "CHEN"}, timeout=10)
    assert response.status_code == 200 and response.json()["Cf_Cost_Centre_Owner"] == "CHEN"
    stream = client.session.patch(
        client.url(
            "VoucherRowsAnalysis",
            "VoucherRowSet(Company='US01',VoucherType='GL',AccountingYear=2025,"
            "VoucherNo=202500001,RowNo=1)",
        ),
        json={"DocumentData": "AAAA"},
        timeout=10,
    )
    assert stream.status_code == 400


# the default tenant -------------------------------------------------------------------------------


def test_default_tenant_is_the_built_in_shape(ifs_sandbox: IfsCloudSandbox) -> None:
    default = tenant_variant("default")
    assert ifs_sandbox.tenant is default and ifs_sandbox.config.tenant == "default"
    assert default.extra_properties == {} and default.missing_properties == {}
    assert ifs_sandbox.projections is PROJECTIONS
    client = ODataClient(ifs_sandbox)
    element = entity_type_element(
        schema(client, "VoucherRowsAnalysis"), "VoucherRowsAnalysis", "VoucherRowSet"
    )
    names = {p.get("Name") for p in element.findall("edm:Property", NS)}
    assert not names & {p.name for p in VARIED.extra_properties["VoucherRowSet"]}
    row = client.rows("VoucherRowsAnalysis", "VoucherRowSet", **{"$top": "1"})[0]
    assert set(row) - {"@odata.etag"} == names
    assert "Cf_Posting_Source" not in row and "ProjectId" in row

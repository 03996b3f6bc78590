"""`$metadata` parses with a standard XML parser and describes exactly what the rows contain."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from xml.etree import ElementTree as ET

import pytest

from ifs_looker_sandboxes.ifs_cloud.entities import PROJECTIONS

from .conftest import ODataClient

NS = {
    "edmx": "http://docs.oasis-open.org/odata/ns/edmx",
    "edm": "http://docs.oasis-open.org/odata/ns/edm",
}


def parse_metadata(client: ODataClient, projection: str) -> ET.Element:
    response = client.get(projection, "$metadata")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/xml"
    root = ET.fromstring(response.content)
    assert root.tag == f"{{{NS['edmx']}}}Edmx" and root.get("Version") == "4.0"
    return root.find("edmx:DataServices/edm:Schema", NS)


def check_value(value: object, prop: ET.Element, enums: dict[str, set[str]]) -> None:
    kind = prop.get("Type")
    if value is None:
        assert prop.get("Nullable") != "false", f"{prop.get('Name')} is not nullable"
        return
    if kind == "Edm.String":
        assert isinstance(value, str) and len(value) <= int(prop.get("MaxLength"))
    elif kind == "Edm.Decimal":
        assert isinstance(value, (int, Decimal)) and not isinstance(value, bool)
        assert (prop.get("Precision"), prop.get("Scale")) == ("130", "65")
    elif kind == "Edm.Int32":
        assert isinstance(value, int)
    elif kind == "Edm.Date":
        date.fromisoformat(value)
    elif kind == "Edm.DateTimeOffset":
        assert value.endswith("Z")
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    elif kind == "Edm.Boolean":
        assert isinstance(value, bool)
    else:
        assert value in enums[kind], f"{value!r} is not a member of {kind}"


@pytest.mark.parametrize("projection", [p.name for p in PROJECTIONS])
def test_metadata_matches_served_rows(client: ODataClient, projection: str) -> None:
    schema = parse_metadata(client, projection)
    namespace = schema.get("Namespace")
    assert namespace == f"IfsApp.{projection}"
    enums = {
        f"{namespace}.{e.get('Name')}": {m.get("Name") for m in e.findall("edm:Member", NS)}
        for e in schema.findall("edm:EnumType", NS)
    }
    types = {t.get("Name"): t for t in schema.findall("edm:EntityType", NS)}
    entity_sets = schema.findall("edm:EntityContainer/edm:EntitySet", NS)
    assert entity_sets
    for entity_set in entity_sets:
        entity_type = types[entity_set.get("EntityType").rsplit(".", 1)[1]]
        props = {p.get("Name"): p for p in entity_type.findall("edm:Property", NS)}
        keys = [k.get("Name") for k in entity_type.findall("edm:Key/edm:PropertyRef", NS)]
        assert keys and set(keys) <= set(props)
        rows = client.rows(projection, entity_set.get("Name"))
        assert rows, f"{entity_set.get('Name')} serves no rows"
        for row in rows:
            assert set(row) == set(props) | {"@odata.etag"}
            for name, value in row.items():
                if name != "@odata.etag":
                    check_value(value, props[name], enums)


def test_navigation_properties_and_enums_are_declared(client: ODataClient) -> None:
    schema = parse_metadata(client, "PurchaseOrderHandling")
    order = next(
        t for t in schema.findall("edm:EntityType", NS) if t.get("Name") == "PurchaseOrder"
    )
    nav = order.find("edm:NavigationProperty", NS)
    assert nav.get("Type") == "Collection(IfsApp.PurchaseOrderHandling.PurchaseOrderLine)"
    assert nav.find("edm:ReferentialConstraint", NS).get("Property") == "OrderNo"
    binding = schema.find("edm:EntityContainer/edm:EntitySet/edm:NavigationPropertyBinding", NS)
    assert binding.get("Target") == "PurchaseOrderLineSet"
    vouchers = parse_metadata(client, "VoucherRowsAnalysis")
    logical = next(
        e for e in vouchers.findall("edm:EnumType", NS) if e.get("Name") == "AccountTypeValue"
    )
    assert (logical.get("IsFlags"), logical.get("UnderlyingType")) == ("false", "Edm.Int32")
    assert [m.get("Name") for m in logical] == [
        "Assets",
        "Liabilities",
        "Revenues",
        "Cost",
        "Statistics",
        "StatisticsOpeningBalance",
    ]

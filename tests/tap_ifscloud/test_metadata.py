"""EDMX `$metadata` to JSON Schema, and the bundled schemas staying in step with it."""

from __future__ import annotations

import json

import pytest
import requests

from tap_ifscloud.metadata import MetadataError, parse_edmx, property_schema
from tap_ifscloud.tap import bundled_metadata


def fetch_metadata(sandbox, projection: str) -> bytes:
    token = requests.post(
        sandbox.token_url,
        data={
            "grant_type": "client_credentials",
            "client_id": sandbox.config.client_id,
            "client_secret": sandbox.config.client_secret,
        },
        timeout=10,
    ).json()["access_token"]
    response = requests.get(
        f"{sandbox.service_url(projection)}/$metadata",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    response.raise_for_status()
    return response.content


def test_edm_types_map_to_json_schema(shared_sandbox):
    metadata = parse_edmx(
        fetch_metadata(shared_sandbox, "VoucherRowsAnalysis"), "VoucherRowsAnalysis"
    )
    rows = metadata.entity_sets["VoucherRowSet"]
    assert rows.keys == ("Company", "VoucherType", "AccountingYear", "VoucherNo", "RowNo")
    props = rows.properties
    assert props["Company"] == {"type": "string", "maxLength": 20}  # a key: never null
    assert props["Amount"] == {"type": ["number", "null"]}
    assert props["EntryDate"] == {"type": ["string", "null"], "format": "date"}
    assert props["AccountingYear"] == {"type": "number"}  # Edm.Decimal, as real IFS types it
    assert props["Correction"] == {"type": ["boolean", "null"]}
    accounts = metadata.entity_sets["Reference_Account"].properties
    assert accounts["LedgFlag"] == {
        "type": ["string", "null"],
        "enum": ["LedgerAccount", "NotLedgerAccount", None],
    }
    assert rows.date_fields == ["VoucherDate", "EntryDate", "SecondApprovedByDate"]
    assert set(metadata.entity_sets) >= {"Reference_Account", "Reference_CodeB", "Reference_CodeJ"}

    invoices = parse_edmx(
        fetch_metadata(shared_sandbox, "ManualSupplierInvoiceHandling"),
        "ManualSupplierInvoiceHandling",
    ).entity_sets["ManSuppInvoiceSet"]
    assert invoices.properties["LastModified"]["format"] == "date-time"


def test_other_edm_types():
    assert property_schema("Edm.Boolean") == {"type": ["boolean", "null"]}
    assert property_schema("Edm.Int64", nullable=False) == {"type": "integer"}
    assert property_schema("Edm.Double") == {"type": ["number", "null"]}
    assert property_schema("Collection(Edm.String)") is None


def test_documents_with_a_dtd_or_broken_xml_are_refused():
    bomb = '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;</x>'
    with pytest.raises(MetadataError, match="DTD"):
        parse_edmx(bomb, "P")
    with pytest.raises(MetadataError, match="not valid XML"):
        parse_edmx("<edmx:Edmx", "P")


@pytest.mark.parametrize(
    "projection",
    [
        "VoucherRowsAnalysis",
        "ManualSupplierInvoiceHandling",
        "PurchaseOrderHandling",
        "CustomerOrderHandling",
        "AccountingStructureHandling",
    ],
)
def test_bundled_schemas_match_the_sandbox_metadata(shared_sandbox, projection):
    """If this fails, regenerate them: python -m tap_ifscloud.bundle"""
    live = parse_edmx(fetch_metadata(shared_sandbox, projection), projection)
    bundled = bundled_metadata(projection)
    assert bundled is not None
    assert json.loads(bundled.dumps()) == json.loads(live.dumps())


EDMX = """<?xml version="1.0" encoding="UTF-8"?>
<edmx:Edmx Version="4.0" xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx">
<edmx:DataServices><Schema xmlns="http://docs.oasis-open.org/odata/ns/edm"
  Namespace="IfsApp.AcmeHandling" Alias="Acme">
<EnumType Name="FndBoolean" IsFlags="false" UnderlyingType="Edm.Int32">
  <Member Name="False" Value="0"/><Member Name="True" Value="1"/></EnumType>
<EntityType Name="Thing"><Key><PropertyRef Name="Company"/><PropertyRef Name="ThingNo"/></Key>
  <Property Name="Company" Type="Edm.String" MaxLength="20"/>
  <Property Name="ThingNo" Type="Edm.Decimal" Precision="130" Scale="65"/>
  <Property Name="Amount" Type="Edm.Decimal" Precision="130" Scale="65"/>
  <Property Name="Counter" Type="Edm.Int64" Nullable="false"/>
  <Property Name="Ratio" Type="Edm.Double"/>
  <Property Name="Posted" Type="Edm.Boolean"/>
  <Property Name="Active" Type="IfsApp.AcmeHandling.FndBoolean"/>
  <Property Name="Archived" Type="Acme.FndBoolean"/>
  <Property Name="DueDate" Type="Edm.Date"/>
  <Property Name="Changed" Type="Edm.DateTimeOffset"/>
  <Property Name="StartsAt" Type="Edm.TimeOfDay"/>
  <Property Name="Lasts" Type="Edm.Duration"/>
  <Property Name="Cf_Note" Type="Edm.String" MaxLength="4000"/>
  <Property Name="Cf_Photo" Type="Edm.Binary"/>
  <Property Name="Document" Type="Edm.Stream"/>
  <Property Name="Address" Type="IfsApp.AcmeHandling.AddressStructure"/>
  <NavigationProperty Name="CompanyRef" Type="IfsApp.AcmeHandling.Company">
    <ReferentialConstraint Property="Company" ReferencedProperty="Company"/>
  </NavigationProperty>
</EntityType>
<EntityContainer Name="Main"><EntitySet Name="ThingSet" EntityType="Acme.Thing"/></EntityContainer>
</Schema></edmx:DataServices></edmx:Edmx>"""


def test_every_structural_property_maps_and_the_rest_is_named():
    things = parse_edmx(EDMX, "AcmeHandling").entity_sets["ThingSet"]
    props = things.properties
    assert things.keys == ("Company", "ThingNo")
    assert props["ThingNo"] == {"type": "number"}  # a key, Edm.Decimal: exact, never null
    assert props["Amount"] == {"type": ["number", "null"]}
    assert props["Counter"] == {"type": "integer"}
    assert props["Ratio"] == {"type": ["number", "null"]}
    assert props["Posted"] == {"type": ["boolean", "null"]}
    assert props["Active"] == {"type": ["string", "null"], "enum": ["False", "True", None]}
    assert props["Archived"] == props["Active"]  # named through the schema's alias
    assert props["DueDate"] == {"type": ["string", "null"], "format": "date"}
    assert props["Changed"] == {"type": ["string", "null"], "format": "date-time"}
    assert props["StartsAt"] == {"type": ["string", "null"], "format": "time"}
    assert props["Lasts"] == {"type": ["string", "null"]}
    assert props["Cf_Note"] == {"type": ["string", "null"], "maxLength": 4000}
    assert things.edm_types["Active"] == "IfsApp.AcmeHandling.FndBoolean"
    assert things.left_out == {
        "Cf_Photo": "Edm.Binary",
        "Document": "Edm.Stream",
        "Address": "IfsApp.AcmeHandling.AddressStructure",
        "CompanyRef": "navigation property",
    }
    assert not set(things.left_out) & set(props)
    # the bundled form leaves out what is left out
    assert "left_out" not in things.to_json()

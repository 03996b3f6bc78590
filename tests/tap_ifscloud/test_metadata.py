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
    assert props["AccountingYear"] == {"type": "integer"}
    assert props["CorrectionRow"] == {"type": ["string", "null"], "enum": ["True", "False", None]}
    assert rows.date_fields == ["VoucherDate", "EntryDate"]
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

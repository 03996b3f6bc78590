"""Stream layouts from `$metadata`: schema, keys, ordering and what a bad name does."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tap_ifscloud.errors import ConfigurationError
from tap_ifscloud.layout import build_layout
from tap_ifscloud.streams import BUILTIN_STREAMS, apply_override
from tap_ifscloud.tap import bundled_metadata

BUILTIN = {d.name: d for d in BUILTIN_STREAMS}


def layout_of(definition):
    return build_layout(definition, bundled_metadata(definition.projection).entity_sets)


def test_cost_dimensions_fold_nine_code_parts_into_one_stream():
    layout = layout_of(BUILTIN["cost_dimensions"])
    assert layout.key_properties == ["Company", "code_part", "code"]
    props = layout.schema["properties"]
    assert list(props)[:3] == ["code_part", "Company", "code"]
    assert "CodeB" not in props and "CodeJ" not in props
    assert props["code"]["maxLength"] == 20
    assert [r.entity_set for r in layout.reads] == [f"Reference_Code{c}" for c in "BCDEFGHIJ"]
    read_j = layout.reads[-1]
    # IFS's own CodePart property ("J") is the same fact as the stream's code_part column
    assert read_j.rename == {"CodeJ": "code", "CodePart": "code_part"}
    assert [f for f, _ in read_j.order_fields] == ["Company", "CodeJ"]


def test_incremental_streams_order_by_replication_field_then_keys():
    layout = layout_of(BUILTIN["voucher_rows"])
    assert layout.replication_key == "EntryDate"
    assert layout.reads[0].order_fields == (
        ("EntryDate", "date"),
        ("Company", "string"),
        ("VoucherType", "string"),
        ("AccountingYear", "number"),
        ("VoucherNo", "number"),
        ("RowNo", "number"),
    )
    assert layout_of(BUILTIN["gl_accounts"]).replication_key is None


def test_every_stream_carries_the_etag_columns():
    for definition in BUILTIN_STREAMS:
        props = layout_of(definition).schema["properties"]
        assert "_ifs_etag" in props
        assert "_ifs_objversion" in props


def test_account_hierarchy_has_node_parent_and_level():
    props = layout_of(BUILTIN["account_hierarchy"]).schema["properties"]
    assert {"NodeId", "ParentNodeId", "LevelNo"} <= set(props)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"select": ["Amount", "Amuont"]}, "select field 'Amuont' is not a property"),
        ({"key_properties": ["Company", "VoucherId"]}, "key property 'VoucherId'"),
        ({"replication_key": "Posted"}, "date/timestamp fields are: VoucherDate, EntryDate"),
        ({"entity_set": "VoucherRows"}, "unknown entity set 'VoucherRows'"),
    ],
)
def test_names_the_entity_lacks_are_configuration_errors(override, message):
    with pytest.raises(ConfigurationError, match=message):
        layout_of(apply_override(BUILTIN["voucher_rows"], override))


def test_an_entity_without_the_company_field_cannot_be_partitioned():
    definition = replace(BUILTIN["gl_accounts"], partition_field="Site")
    with pytest.raises(ConfigurationError, match="company field 'Site'"):
        layout_of(definition)

"""JSON Schema properties -> warehouse column types and decode types."""

from __future__ import annotations

import decimal

import msgspec
import pytest

from target_looker.columns import SqlType, length_checked, property_type, record_struct


@pytest.mark.parametrize(
    ("schema", "kind"),
    [
        ({"type": ["number", "null"]}, "numeric"),
        ({"type": "integer"}, "bigint"),
        ({"type": ["integer", "number"]}, "numeric"),
        ({"type": "string", "format": "date"}, "date"),
        ({"type": ["string", "null"], "format": "date-time"}, "timestamptz"),
        ({"type": "boolean"}, "boolean"),
        ({"type": "string"}, "text"),
        ({"type": "object"}, "json"),
        ({"type": "array", "items": {"type": "string"}}, "json"),
        ({}, "json"),
        ({"anyOf": [{"type": "string", "format": "date-time"}, {"type": "null"}]}, "timestamptz"),
    ],
)
def test_types(schema: dict, kind: str) -> None:
    assert property_type(schema)[0].kind == kind


def test_varchar_length_and_numeric_scale() -> None:
    assert property_type({"type": "string", "maxLength": 20})[0] == SqlType("varchar", length=20)
    assert property_type({"type": "number", "multipleOf": 0.000001})[0].scale == 6


def test_length_checked_counts_characters_like_len() -> None:
    """The decode-time length check agrees with the sink's `len` check it stands in for."""
    sql_type, decode = property_type({"type": "string", "maxLength": 3})
    struct = record_struct("s", [("Code", length_checked(sql_type, decode) | None, False)])
    decoder = msgspec.json.Decoder(struct)
    assert decoder.decode('{"Code": "\U0001f600\u00e9x"}'.encode()).f0 == "\U0001f600\u00e9x"
    assert decoder.decode(b'{"Code": "\\ud83d\\ude00ab"}').f0 == "\U0001f600ab"  # a pair
    assert decoder.decode(b'{"Code": null}').f0 is None
    with pytest.raises(msgspec.ValidationError, match="length <= 3"):
        decoder.decode(b'{"Code": "abcd"}')


def test_length_checked_leaves_other_types_alone() -> None:
    for schema in ({"type": "string"}, {"type": "integer"}, {"type": "string", "format": "date"}):
        sql_type, decode = property_type(schema)
        assert length_checked(sql_type, decode) is decode


def test_ifs_enums_validate_their_members_and_allow_null() -> None:
    sql_type, decode = property_type(
        {"type": ["string", "null"], "enum": ["Assets", "Liabilities", None]}
    )
    struct = record_struct("accounts", [("Type", decode | None, False)])
    decoder = msgspec.json.Decoder(struct)
    assert decoder.decode(b'{"Type": "Assets"}').f0 == "Assets"
    assert decoder.decode(b'{"Type": null}').f0 is None
    with pytest.raises(msgspec.ValidationError, match="Invalid enum value 'Equity'"):
        decoder.decode(b'{"Type": "Equity"}')
    assert sql_type.kind == "text"


def test_numbers_decode_exactly() -> None:
    _, decode = property_type({"type": "number"})
    struct = record_struct("s", [("Amount", decode, True)])
    value = msgspec.json.Decoder(struct).decode(b'{"Amount": 12345678901234567890.123456789}').f0
    assert value == decimal.Decimal("12345678901234567890.123456789")

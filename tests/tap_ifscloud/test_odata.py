"""OData query text: literals cannot break out of their quotes, key-set paging filters."""

from __future__ import annotations

from datetime import date, datetime, timezone
from decimal import Decimal

import pytest

from tap_ifscloud import odata


def test_string_literals_double_single_quotes():
    assert odata.literal("O'Brien", odata.STRING) == "'O''Brien'"
    assert odata.eq("Company", "X' or 1 eq 1 or 'a", odata.STRING) == (
        "Company eq 'X'' or 1 eq 1 or ''a'"
    )


def test_dates_timestamps_numbers_and_booleans():
    assert odata.literal("2026-01-31", odata.DATE) == "2026-01-31"
    assert odata.literal(date(2026, 1, 31), odata.DATE) == "2026-01-31"
    assert odata.literal("2026-01-01T01:02:03+01:00", odata.TIMESTAMP) == "2026-01-01T00:02:03Z"
    assert odata.literal("2026-01-01T00:00:00.250Z", odata.TIMESTAMP) == "2026-01-01T00:00:00.25Z"
    assert (
        odata.literal(datetime(2026, 1, 1, tzinfo=timezone.utc), odata.TIMESTAMP)
        == "2026-01-01T00:00:00Z"
    )
    assert odata.literal(Decimal("1E+3"), odata.NUMBER) == "1000"
    assert odata.literal(42, odata.NUMBER) == "42"
    assert odata.literal(True, odata.BOOLEAN) == "true"
    assert odata.literal(None, odata.STRING) == "null"


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("2026-13-01", odata.DATE),
        ("yesterday", odata.TIMESTAMP),
        ("1; drop", odata.NUMBER),
        (float("nan"), odata.NUMBER),
        ("maybe", odata.BOOLEAN),
    ],
)
def test_values_that_are_not_what_they_claim_are_refused(value, kind):
    with pytest.raises(odata.ODataValueError):
        odata.literal(value, kind)


def test_property_names_must_be_identifiers():
    assert odata.identifier("CodeB") == "CodeB"
    for bad in ("Company eq 'x' or Company", "A-B", "", "1A"):
        with pytest.raises(odata.ODataValueError):
            odata.identifier(bad)


def test_key_set_filter_selects_rows_strictly_after_the_position():
    fields = [
        ("LastModified", odata.TIMESTAMP),
        ("Company", odata.STRING),
        ("InvoiceId", odata.NUMBER),
    ]
    text = odata.after(fields, ("2026-01-01T00:00:00Z", "US01", 7))
    assert text == (
        "(LastModified gt 2026-01-01T00:00:00Z) or (LastModified eq 2026-01-01T00:00:00Z and "
        "((Company gt 'US01') or (Company eq 'US01' and (InvoiceId gt 7))))"
    )


def test_key_set_filter_handles_null_positions_as_sorting_first():
    text = odata.after([("EntryDate", odata.DATE), ("RowNo", odata.NUMBER)], (None, 3))
    assert text == "(EntryDate ne null) or (EntryDate eq null and (RowNo gt 3))"


def test_filters_are_combined_with_parentheses_and_empty_ones_dropped():
    assert odata.and_all(["A eq 1", None, "B eq 2 or C eq 3"]) == "(A eq 1) and (B eq 2 or C eq 3)"
    assert odata.and_all(["A eq 1", ""]) == "A eq 1"
    assert odata.and_all([]) == ""


def test_kind_of_reads_the_json_schema():
    assert odata.kind_of({"type": ["string", "null"], "format": "date"}) == odata.DATE
    assert odata.kind_of({"type": "string", "format": "date-time"}) == odata.TIMESTAMP
    assert odata.kind_of({"type": "integer"}) == odata.NUMBER
    assert odata.kind_of({"type": ["string", "null"], "enum": ["A", None]}) == odata.STRING


def test_query_strings_encode_spaces_as_percent_20():
    query = odata.encode_query({"$filter": "Company eq 'US 01'", "$top": "5", "$skip": None})
    assert query == "$filter=Company%20eq%20'US%2001'&$top=5"


@pytest.mark.parametrize(
    "text",
    [
        "Objstate eq 'Posted'",
        "(VoucherType eq 'A' or VoucherType eq 'B') and Amount gt 0",
        "Text eq 'O''Brien (retired)'",  # '' is a quote, parentheses inside a literal count not
        "contains(Text, ')') and Text ne ''''",
    ],
)
def test_filters_that_stay_within_their_parentheses_pass(text):
    odata.check_filter(text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Company eq 'US01') or (Company ne 'US01'", "')' without its '('"),
        ("Company eq 'US01')", "')' without its '('"),
        ("(Company eq 'US01'", "1 '(' without a matching ')'"),
        ("Text eq 'O'Brien'", "never closed"),
        ("Text eq 'open", "string literal opened at character 9"),
        ("   ", "non-empty"),
    ],
)
def test_filters_that_could_break_out_are_refused(text, message):
    with pytest.raises(
        odata.ODataValueError, match=message.replace("(", r"\(").replace(")", r"\)")
    ):
        odata.check_filter(text)

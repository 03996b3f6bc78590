"""`$filter`, `$orderby` and `$select` parsing: what IFS accepts, and its words when it refuses."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from types import SimpleNamespace

import pytest

from ifs_looker_sandboxes.ifs_cloud.entities import PROJECTIONS_BY_NAME
from ifs_looker_sandboxes.ifs_cloud.query import (
    QueryError,
    lower_bound,
    parse_filter,
    parse_orderby,
    parse_select,
    partition_value,
)

PROJECTION = PROJECTIONS_BY_NAME["VoucherRowsAnalysis"]
VOUCHER_ROW = PROJECTION.entity_type("VoucherRow")
NAMESPACE = "IfsApp.VoucherRowsAnalysis"


def row(**values: object) -> SimpleNamespace:
    base = dict.fromkeys(VOUCHER_ROW.field_names)
    base.update(
        Company="US01",
        VoucherType="GL",
        AccountingYear=2025,
        VoucherNo=202500001,
        RowNo=1,
        EntryDate=date(2025, 3, 1),
        Amount=Decimal("100.50"),
        Text="O'Brien",
        Correction=False,
    )
    base.update(values)
    return SimpleNamespace(**base)


def matches(text: str, candidate: SimpleNamespace) -> bool:
    return parse_filter(text, VOUCHER_ROW, NAMESPACE).predicate(candidate)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Company eq 'US01'", True),
        ("Company ne 'US01'", False),
        ("Amount gt 100.4", True),
        ("Amount ge 100.50", True),
        ("Amount lt 100.50", False),
        ("Amount le 100.5", True),
        ("AccountingYear eq 2025", True),
        ("EntryDate ge 2025-03-01", True),
        ("EntryDate gt 2025-03-01", False),
        ("Text eq 'O''Brien'", True),
        ("Company eq 'US01' and VoucherNo eq 202500002", False),
        ("Company eq 'XX' or VoucherNo eq 202500001", True),
        ("not (Company eq 'US01')", False),
        ("(Company eq 'US01' or Company eq 'DE01') and (RowNo ge 1 and RowNo le 1)", True),
        ("Correction eq false", True),
        ("Correction", False),
        ("not Correction", True),
        ("VoucherNo eq 202500001.0", True),
        ("contains(Text,'Bri')", True),
        ("startswith(Company,'DE')", False),
        ("tolower(Company) eq 'us01'", True),
        ("CodeB eq null", True),
        ("CodeB ne null", False),
        ("CodeB gt 'A'", False),
        ("'US01' eq Company", True),
        ("2025-04-01 gt EntryDate", True),
    ],
)
def test_filter_semantics(text: str, expected: bool) -> None:
    assert matches(text, row()) is expected


def test_decimal_comparison_is_exact_beyond_float_precision() -> None:
    big = row(Amount=Decimal("12345678901234.567891"))
    assert matches("Amount eq 12345678901234.567891", big)
    assert not matches("Amount eq 12345678901234.567890", big)


def test_timestamp_literals_compare_in_utc() -> None:
    entity = PROJECTIONS_BY_NAME["CustomerOrderHandling"].entity_type("CustomerOrder")
    flt = parse_filter(
        "LastModified ge 2026-01-01T10:00:00+01:00", entity, "IfsApp.CustomerOrderHandling"
    )
    at_nine_utc = SimpleNamespace(LastModified=datetime(2026, 1, 1, 9, 0, tzinfo=UTC))
    at_eight_utc = SimpleNamespace(LastModified=datetime(2026, 1, 1, 8, 59, 59, tzinfo=UTC))
    assert flt.predicate(at_nine_utc)
    assert not flt.predicate(at_eight_utc)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "Nonsense eq 1",
            "The property 'Nonsense', used in a query expression, is not defined in type "
            "'IfsApp.VoucherRowsAnalysis.VoucherRow'.",
        ),
        ("EntryDate eq 'yesterday'", "incompatible types"),
        ("Company eq 5", "incompatible types"),
        ("Company eq 'US01' and", "unexpected end"),
        ("(Company eq 'US01'", "')' expected"),
        ("Company eq 'unterminated", "Syntax error"),
        ("Company has 'x'", "'has' operator is not supported"),
        ("frobnicate(Company)", "unknown function"),
        ("", "must not be empty"),
    ],
)
def test_bad_filters_are_refused_with_a_message(text: str, message: str) -> None:
    with pytest.raises(QueryError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_filter(text, VOUCHER_ROW, NAMESPACE)


def test_keyset_filter_gives_scan_start_and_partition() -> None:
    flt = parse_filter(
        "Company eq 'US01' and EntryDate ge 2025-01-01 and "
        "(EntryDate gt 2025-05-01 or (EntryDate eq 2025-05-01 and VoucherNo gt 7))",
        VOUCHER_ROW,
        NAMESPACE,
    )
    assert lower_bound(flt.ast, "EntryDate") == date(2025, 5, 1)
    assert partition_value(flt.ast, "Company") == "US01"
    assert (
        lower_bound(
            parse_filter("not (EntryDate lt 2025-01-01)", VOUCHER_ROW, NAMESPACE).ast, "EntryDate"
        )
        is None
    )


def test_orderby_and_select() -> None:
    assert parse_orderby("EntryDate desc, VoucherNo", VOUCHER_ROW, NAMESPACE) == (
        ("EntryDate", True),
        ("VoucherNo", False),
    )
    assert parse_select("Company,Amount", VOUCHER_ROW, NAMESPACE) == ("Company", "Amount")
    with pytest.raises(QueryError, match="is not defined in type"):
        parse_orderby("Bogus asc", VOUCHER_ROW, NAMESPACE)
    with pytest.raises(QueryError, match="Could not find a property named 'Bogus'"):
        parse_select("Company,Bogus", VOUCHER_ROW, NAMESPACE)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("LogicalAccountType eq 'Cost'", True),
        ("LogicalAccountType eq IfsApp.VoucherRowsAnalysis.AccountTypeValue'Cost'", True),
        ("LogicalAccountType eq 'Assets'", False),
        ("LogicalAccountType eq 'Lost'", "'Lost' is not a valid value of enumeration"),
    ],
)
def test_enum_filters_know_their_members(text: str, expected: bool | str) -> None:
    account_type = PROJECTION.entity_type("Account")
    account = SimpleNamespace(
        **{**dict.fromkeys(account_type.field_names), "LogicalAccountType": "Cost"}
    )
    if isinstance(expected, str):
        with pytest.raises(QueryError, match=expected):
            parse_filter(text, account_type, NAMESPACE)
        return
    assert parse_filter(text, account_type, NAMESPACE).predicate(account) is expected

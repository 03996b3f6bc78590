"""Hostile input over real HTTP gets IFS's 4xx with its JSON error body: never a 500, never HTML.

Each case was found by a hostile probe; the requests that a well-behaved client library cannot
send (a broken Content-Length, a bare request line) go over a raw socket.
"""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Iterator

import pytest
import requests

from ifs_looker_sandboxes.ifs_cloud import IfsCloudSandbox
from ifs_looker_sandboxes.ifs_cloud.query import MAX_NESTING
from ifs_looker_sandboxes.ifs_cloud.server import MAX_BODY_BYTES
from tests.sandboxes import running_ifs_cloud

from .conftest import ODataClient

VOUCHERS = ("VoucherRowsAnalysis", "VoucherRowSet")
INVOICES = "ManualSupplierInvoiceHandling"


@pytest.fixture(scope="module")
def hostile_sandbox() -> Iterator[IfsCloudSandbox]:
    """A small sandbox of this module's own: after every test, it has never answered 5xx."""
    with running_ifs_cloud(
        voucher_rows_per_company=60, orders_per_company=5, invoices_per_company=5
    ) as sandbox:
        yield sandbox


@pytest.fixture
def hostile(hostile_sandbox: IfsCloudSandbox) -> Iterator[ODataClient]:
    client = ODataClient(hostile_sandbox)
    yield client
    statuses = [status for _, _, status in hostile_sandbox.request_log]
    assert not [s for s in statuses if s >= 500], "no hostile request may get a 5xx"
    healthy = client.get(*VOUCHERS, **{"$top": "1"})
    assert healthy.status_code == 200, "the sandbox keeps serving after hostile input"


def assert_ifs_error(status: int, content_type: str, body: bytes, expected: int) -> dict:
    """An IFS error: the status, JSON (not HTML) and `{"error": {code, message, details}}`."""
    assert status == expected, body[:300]
    assert content_type.startswith("application/json"), content_type
    error = json.loads(body)["error"]
    assert isinstance(error["code"], str) and error["code"]
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["details"], list)
    return error


def ifs_error(response: requests.Response, expected: int) -> dict:
    return assert_ifs_error(
        response.status_code, response.headers.get("Content-Type", ""), response.content, expected
    )


def raw_request(sandbox: IfsCloudSandbox, data: bytes, method: str = "GET") -> tuple:
    """Send bytes as they are; the answer as (status, headers, body)."""
    with socket.create_connection((sandbox.host, sandbox.port), timeout=10) as sock:
        sock.sendall(data)
        response = http.client.HTTPResponse(sock, method=method)
        response.begin()
        return response.status, response.headers, response.read()


def patch_head(sandbox: IfsCloudSandbox, token: str, *headers: str) -> bytes:
    path = (
        f"/main/ifsapplications/projection/v1/{INVOICES}.svc"
        "/ManSuppInvoiceSet(Company='US01',InvoiceId=1)"
    )
    lines = [
        f"PATCH {path} HTTP/1.1",
        f"Host: {sandbox.host}:{sandbox.port}",
        f"Authorization: {token}",
        "Content-Type: application/json",
        *headers,
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


# $filter ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "(" * 5000 + "Company eq 'US01'" + ")" * 5000,
        "not " * 2000 + "Company eq 'US01'",
        "tolower(" * 3000 + "Company" + ")" * 3000 + " eq 'us01'",
        "(" * (MAX_NESTING + 1) + "Company eq 'US01'" + ")" * (MAX_NESTING + 1),
    ],
    ids=["5000-parentheses", "2000-nots", "3000-calls", "one-level-too-deep"],
)
def test_deeply_nested_filters_get_400(hostile: ODataClient, text: str) -> None:
    error = ifs_error(hostile.get(*VOUCHERS, **{"$filter": text}), 400)
    assert "nested" in error["message"]


def test_nesting_up_to_the_limit_and_long_flat_chains_work(hostile: ODataClient) -> None:
    nested = "(" * MAX_NESTING + "Company eq 'US01'" + ")" * MAX_NESTING
    assert {r["Company"] for r in hostile.rows(*VOUCHERS, **{"$filter": nested})} == {"US01"}
    many_companies = (
        " or ".join(f"Company eq 'C{i}'" for i in range(1500)) + " or Company eq 'SE01'"
    )
    rows = hostile.rows(*VOUCHERS, **{"$filter": many_companies})
    assert rows and {r["Company"] for r in rows} == {"SE01"}
    long_and = " and ".join(["AccountingYear ge 2000"] * 1500)
    assert len(hostile.rows(*VOUCHERS, **{"$filter": long_and, "$top": "3"})) == 3


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("AccountingYear eq 1e999999999", None),  # a number too large for Int32: matches nothing
        ("AccountingYear eq " + "9" * 5000, None),
        ("EntryDate gt 9999-12-31T23:59:59-12:00", "Invalid DateTimeOffset literal"),
        ("Company eq 'US01", "Syntax error"),
        ("Company eq 'US01' and", "unexpected end"),
        ("Company eq 'US01' ) or (", "Syntax error"),
        ("contains(Company)", "takes 2 argument(s)"),
    ],
)
def test_odd_filter_literals_get_400_or_nothing(
    hostile: ODataClient, text: str, words: str | None
) -> None:
    response = hostile.get(*VOUCHERS, **{"$filter": text})
    if words is None:
        assert response.status_code == 200 and response.json()["value"] == []
    else:
        assert words in ifs_error(response, 400)["message"]


def test_timestamp_literal_beyond_the_calendar_gets_400(hostile: ODataClient) -> None:
    response = hostile.get(
        INVOICES, "ManSuppInvoiceSet", **{"$filter": "LastModified gt 9999-12-31T23:59:59-12:00"}
    )
    assert "Invalid DateTimeOffset literal" in ifs_error(response, 400)["message"]


@pytest.mark.parametrize("value", ["²", "9" * 5000, "-1", "1.5", " 1"])
def test_top_and_skip_that_are_not_small_integers_get_400(hostile: ODataClient, value: str) -> None:
    for option in ("$top", "$skip"):
        error = ifs_error(hostile.get(*VOUCHERS, **{option: value}), 400)
        assert option in error["message"]


# entity keys --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "segment",
    [
        "ManSuppInvoiceSet(Company='US01',InvoiceId=abc)",
        "ManSuppInvoiceSet(Company='US01',InvoiceId==1e5)",
        "ManSuppInvoiceSet(=1e5)",
        "ManSuppInvoiceSet(Company='US01',InvoiceId=1e5)",
        "ManSuppInvoiceSet(Company='US01',InvoiceId=99999999999999999999)",
        "ManSuppInvoiceSet(Company='US01',InvoiceId=2147483648)",
        "ManSuppInvoiceSet(Company='US01',InvoiceId='7')",
        "ManSuppInvoiceSet(Company=US01,InvoiceId=1)",
        "ManSuppInvoiceSet(Company='US01,InvoiceId=1)",
        "ManSuppInvoiceSet(Company='US01',Company='US01',InvoiceId=1)",
        "ManSuppInvoiceSet(Company='US01',InvoiceId=1,Extra=2)",
        "ManSuppInvoiceSet(Company='" + "X" * 21 + "',InvoiceId=1)",
        "ManSuppInvoiceSet(,,,)",
    ],
)
def test_malformed_entity_keys_get_400(hostile: ODataClient, segment: str) -> None:
    error = ifs_error(hostile.get(INVOICES, segment), 400)
    assert error["details"] and error["details"][0]["message"]


def test_a_well_formed_key_of_a_missing_row_is_404(hostile: ODataClient) -> None:
    ifs_error(hostile.get(INVOICES, "ManSuppInvoiceSet(Company='US01',InvoiceId=2147483647)"), 404)


# request bodies -----------------------------------------------------------------------------------


def token(client: ODataClient) -> str:
    return client.session.headers["Authorization"]  # type: ignore[return-value]


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        (("Content-Length: abc",), 400),
        (("Content-Length: -5",), 400),
        (("Content-Length: 1e3",), 400),
        (("Content-Length: 5", "Content-Length: 6"), 400),
        (("Transfer-Encoding: chunked",), 411),
        ((f"Content-Length: {50 * 1024 * 1024}",), 413),
        ((f"Content-Length: {MAX_BODY_BYTES + 1}",), 413),
    ],
    ids=["abc", "negative", "exponent", "twice", "chunked", "50MB", "one-byte-over"],
)
def test_bad_or_too_large_bodies_are_refused_unread(
    hostile: ODataClient, headers: tuple[str, ...], status: int
) -> None:
    # only 2 KB of any announced body is sent: the answer must come without reading the rest
    data = (
        patch_head(hostile.sandbox, token(hostile), *headers)
        + b'{"SupplierName": "x"'
        + b" " * 2048
    )
    code, response_headers, body = raw_request(hostile.sandbox, data, "PATCH")
    assert_ifs_error(code, response_headers["Content-Type"], body, status)
    assert response_headers["Connection"] == "close"


def test_a_large_body_waiting_for_100_continue_is_refused_before_it_is_sent(
    hostile: ODataClient,
) -> None:
    data = patch_head(
        hostile.sandbox, token(hostile), "Content-Length: 52428800", "Expect: 100-continue"
    )
    code, headers, body = raw_request(hostile.sandbox, data, "PATCH")
    assert_ifs_error(code, headers["Content-Type"], body, 413)


def test_a_large_patch_sent_by_requests_gets_413(hostile: ODataClient) -> None:
    url = hostile.url(INVOICES, "ManSuppInvoiceSet(Company='US01',InvoiceId=1)")
    try:
        response = hostile.session.patch(url, data=b" " * (MAX_BODY_BYTES + 1), timeout=10)
    except requests.ConnectionError:
        # The client may still be sending when the server closes: then the server's
        # own log must show that it answered 413 (rather than reading the body).
        logged = hostile.sandbox.wait_for_request(lambda entry: entry[0] == "PATCH")
        assert logged is not None and logged[2] == 413
    else:
        ifs_error(response, 413)


def test_a_body_just_under_the_limit_is_read(hostile: ODataClient) -> None:
    url = hostile.url(INVOICES, "ManSuppInvoiceSet(Company='US01',InvoiceId=1)")
    body = b'{"PayTermId": "30"}'.ljust(MAX_BODY_BYTES, b" ")
    assert hostile.session.patch(url, data=body, timeout=10).status_code == 200


# http.server's own answers ------------------------------------------------------------------------


def test_a_too_long_request_line_gets_414_as_json(hostile: ODataClient) -> None:
    path = (
        "/main/ifsapplications/projection/v1/VoucherRowsAnalysis.svc/VoucherRowSet?x=" + "a" * 70000
    )
    code, headers, body = raw_request(hostile.sandbox, f"GET {path} HTTP/1.1\r\n\r\n".encode())
    assert_ifs_error(code, headers["Content-Type"], body, 414)


def test_a_broken_request_line_gets_400_as_json(hostile: ODataClient) -> None:
    code, headers, body = raw_request(hostile.sandbox, b"GARBAGE\r\n\r\n")
    assert_ifs_error(code, headers["Content-Type"], body, 400)


@pytest.mark.parametrize("method", ["OPTIONS", "TRACE"])
def test_options_and_trace_get_405_as_json(hostile: ODataClient, method: str) -> None:
    response = hostile.session.request(method, hostile.url(*VOUCHERS), timeout=10)
    ifs_error(response, 405)
    assert "GET" in response.headers["Allow"]


def test_an_unknown_method_gets_405_as_json(hostile: ODataClient) -> None:
    ifs_error(hostile.session.request("BREW", hostile.url(*VOUCHERS), timeout=10), 405)


def test_head_answers_like_get_without_a_body(hostile: ODataClient) -> None:
    params = {"$top": "3", "$filter": "Company eq 'US01'"}
    got = hostile.get(*VOUCHERS, **params)
    head = hostile.session.head(hostile.url(*VOUCHERS), params=params, timeout=10)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["Content-Type"] == got.headers["Content-Type"]
    assert head.headers["Content-Length"] == str(len(got.content))
    missing = hostile.session.head(hostile.url(INVOICES, "NoSuchSet"), timeout=10)
    assert missing.status_code == 404 and missing.headers["Content-Type"].startswith(
        "application/json"
    )


# PATCH values its own $metadata forbids -----------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b'{"Objstate": "TotallyBogusState"}', "not a valid value of enumeration"),
        (b'{"VatAmount": 1e400}', "Precision 130 and Scale 65"),
        (b'{"VatAmount": 0.' + b"0" * 65 + b"1}", "Precision 130 and Scale 65"),
        (b'{"VatAmount": ' + b"9" * 66 + b"}", "Precision 130 and Scale 65"),
        (b'{"SupplierName": "' + b"x" * 101 + b'"}', "longer than 100 characters"),
        (b'{"InvoiceDate": "2025-02-30"}', "Invalid value"),
        (b'{"LastModified": "2025-01-01T10:00:00"}', "time zone offset"),
        (b'{"CurrRate": "1.5"}', "Invalid value"),
        (b'{"CurrRate": true}', "Invalid value"),
        (b'{"SupplierName": ' + b"[" * 100000 + b"]" * 100000 + b"}", "nested too deeply"),
        (b'{"SupplierName": "x"', "not valid JSON"),
        (b"[1, 2]", "must be a JSON object"),
    ],
    ids=[
        "enum",
        "1e400",
        "scale-66",
        "66-integer-digits",
        "max-length",
        "date",
        "naive-timestamp",
        "decimal-as-string",
        "decimal-as-bool",
        "nested-json",
        "broken-json",
        "array",
    ],
)
def test_patch_values_the_metadata_forbids_get_400(
    hostile: ODataClient, body: bytes, words: str
) -> None:
    url = hostile.url(INVOICES, "ManSuppInvoiceSet(Company='US01',InvoiceId=2)")
    before = hostile.get(INVOICES, "ManSuppInvoiceSet(Company='US01',InvoiceId=2)").json()
    response = hostile.session.patch(
        url, data=body, headers={"Content-Type": "application/json"}, timeout=10
    )
    assert words in ifs_error(response, 400)["message"]
    after = hostile.get(INVOICES, "ManSuppInvoiceSet(Company='US01',InvoiceId=2)").json()
    assert after == before, "a refused PATCH changes nothing"


def test_patch_int32_beyond_its_range_gets_400(hostile: ODataClient) -> None:
    url = hostile.url(
        "AccountingStructureHandling",
        "AccountingStructureItemSet(Company='US01',StructureId='FINREP',NodeId='ALL')",
    )
    response = hostile.session.patch(url, json={"LevelNo": 2**31}, timeout=10)
    assert "Edm.Int32" in ifs_error(response, 400)["message"]
    assert hostile.session.patch(url, json={"LevelNo": 1}, timeout=10).status_code == 200


def test_patch_values_within_the_limits_are_kept_exactly(hostile: ODataClient) -> None:
    url = hostile.url(INVOICES, "ManSuppInvoiceSet(Company='US01',InvoiceId=3)")
    smallest = "0." + "0" * 64 + "1"
    body = (
        '{"VatAmount": ' + smallest + ', "Objstate": "Paid", "SupplierName": "' + "ü" * 100 + '"}'
    )
    response = hostile.session.patch(
        url, data=body.encode(), headers={"Content-Type": "application/json"}, timeout=10
    )
    assert response.status_code == 200, response.text
    row = hostile.sandbox.store.table(INVOICES, "ManSuppInvoiceSet").rows[("US01", 3)]
    assert str(row.VatAmount) == "1E-65" and row.Objstate == "Paid"  # type: ignore[attr-defined]

"""The record fast path: whole pages decoded into typed rows and written in one piece.

Records must come out as the SDK's per-record path writes them: the bulk writer against
`write_message` per record, typed rows against the dict path for awkward values, and a
whole sync with the fast path against one through the SDK's per-record path.
"""

from __future__ import annotations

import contextlib
import io
import re
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import msgspec
import pytest
import requests
from singer_sdk.singerlib import RecordMessage

from tap_ifscloud.api import Connection, IFSApi, retry_policy
from tap_ifscloud.client import _plan
from tap_ifscloud.etag import ETAG_ANNOTATION
from tap_ifscloud.output import FastSingerWriter
from tap_ifscloud.sdk_adapter import PagedStream
from tap_ifscloud.streams import BUILTIN_STREAMS
from tap_ifscloud.tap import TapIFSCloud
from tap_ifscloud.typed_rows import RowDecoder, TypedRow, as_records

from .conftest import relay, tap_config

DECIMALS = msgspec.json.Decoder(float_hook=Decimal)
# what differs between two runs: extraction times, the version and the signpost (both
# the run's start)
RUN_BOUND = re.compile(
    rb',"time_extracted":"[^"]*"|,?"version":\d+|"replication_key_signpost":"[^"]*",?'
)
CANONICAL = msgspec.json.Encoder(decimal_format="number", order="sorted")


def same_message(line: bytes) -> bytes:
    """A message with its run-bound parts cut and its keys sorted, numbers exactly as written.

    Which order a record's properties come in follows the page (IFS writes its own order, the
    fast path keeps it) or the schema (the SDK's path): the same record either way.
    """
    return CANONICAL.encode(DECIMALS.decode(RUN_BOUND.sub(b"", line)))


OFFLINE_CONFIG = {
    "base_url": "https://ifs.invalid",
    "realm": "r",
    "client_id": "c",
    "client_secret": "s",
    "companies": ["US01"],
    "offline_discovery": True,
}
ETAG = 'W/"Vy8iQUFBZkVlQUFGMDAwMDAwMDVBOjIwMjUwMTAxMTgwMDAwIg=="'  # objversion 20250101180000

# Numbers as IFS may write them: exponents, trailing zeros, beyond float precision.
AWKWARD_NUMBERS = [
    "1.10",
    "1E+3",
    "1e3",
    "-1.5e-7",
    "0.0000001",
    "-0.0",
    "12345678901234567890.123456789012345678",
    "6.558907",
    "0",
    "-42",
    "1E400",
]
AWKWARD_TEXT = [
    "plain",
    "ünïcødé ✓ 😀",
    "\\u00e9 escaped, \\ud83d\\ude00 a surrogate pair",
    'quote \\" backslash \\\\ slash \\/ newline \\n tab \\t',
    "\\u2028 line separator",
    "",
]
AWKWARD = [(n, AWKWARD_TEXT[i % len(AWKWARD_TEXT)]) for i, n in enumerate(AWKWARD_NUMBERS)]


def records_exact(line: bytes) -> dict:
    """A RECORD line's record, decimals as (sign, digits, exponent): equal exactly."""
    record = DECIMALS.decode(line)["record"]
    return {k: v.as_tuple() if isinstance(v, Decimal) else v for k, v in record.items()}


class Captured:
    value = b""


@contextlib.contextmanager
def captured_stdout() -> Iterator[Captured]:
    """What is written to stdout (text or bytes) in the block, as bytes: `.value`."""
    raw = io.BytesIO()
    stdout = io.TextIOWrapper(raw, encoding="utf-8")
    captured = Captured()
    with contextlib.redirect_stdout(stdout):
        yield captured
    stdout.flush()
    captured.value = raw.getvalue()


# -- the bulk writer -------------------------------------------------------------------


@pytest.mark.parametrize("version", [None, 1767225600])
@pytest.mark.parametrize(
    "time_extracted",
    [
        None,
        datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=timezone.utc),
        datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=2))),
    ],
)
def test_write_records_writes_the_bytes_of_one_record_message_each(version, time_extracted):
    records = [
        {
            "Amount": Decimal(number),
            "Text": DECIMALS.decode(f'"{text}"'.encode()),
            "Nothing": None,
            "Flag": index % 2 == 0,
            "Big": 2**70,
            "Nested": {"a": [1, Decimal("2.50"), {"b": None}], "c": "✓"},
        }
        for index, (number, text) in enumerate(AWKWARD)
    ]
    writer = FastSingerWriter()
    with captured_stdout() as one_by_one:
        for record in records:
            message = RecordMessage(
                stream="voucher_rows", record=record, version=version, time_extracted=time_extracted
            )
            writer.write_message(message)
    with captured_stdout() as bulk:
        writer.write_records(
            "voucher_rows", records, version=version, time_extracted=time_extracted
        )
    assert bulk.value == one_by_one.value
    assert bulk.value.count(b"\n") == len(records)


def test_write_records_takes_one_write_and_no_flush():
    class Counting(io.BytesIO):
        writes = flushes = 0

        def write(self, data: Any) -> int:
            self.writes += 1
            return super().write(data)

        def flush(self) -> None:
            self.flushes += 1

    class Stdout:
        buffer = Counting()

    writer = FastSingerWriter()
    with contextlib.redirect_stdout(Stdout()):  # type: ignore[type-var]
        writer.write_records("s", [{"a": 1}] * 5000, time_extracted=datetime.now(timezone.utc))
    assert (Stdout.buffer.writes, Stdout.buffer.flushes) == (1, 0)


# -- typed rows against the dict path ---------------------------------------------------


@pytest.fixture(scope="module")
def voucher_stream():
    tap = TapIFSCloud(config=OFFLINE_CONFIG, validate_config=False)
    return tap.streams["voucher_rows"]


def awkward_page(select: list[str], edm_types: dict[str, str]) -> bytes:
    """An OData page of rows for `select` with awkward values: one number form per row in
    every decimal property (`Quantity` always null), every kind of text in the string
    properties (null in the last row), and a row lacking properties (a server leaving
    out nulls)."""
    etag = ETAG.replace('"', '\\"')
    rows = []
    for index, (number, text) in enumerate(AWKWARD):
        members = [f'"{ETAG_ANNOTATION}":"{etag}"']
        for name in select:
            edm = edm_types[name]
            if name == "Company":
                value = '"US01"'
            elif edm == "Edm.Decimal":
                value = "null" if name == "Quantity" else number
            elif edm.startswith("Edm.Int"):
                value = str(2025 + index)
            elif edm == "Edm.Date":
                value = f'"2025-01-{index + 1:02d}"'
            else:
                value = "null" if index == len(AWKWARD_NUMBERS) - 1 else f'"{text}"'
            if index == 4 and name in ("Text", "CurrencyRate"):
                continue
            members.append(f'"{name}":{value}')
        rows.append("{" + ",".join(members) + "}")
    return ('{"@odata.context":"x","value":[' + ",".join(rows) + "]}").encode()


def write(records: list[Any]) -> bytes:
    with captured_stdout() as out:
        FastSingerWriter().write_records("voucher_rows", records)
    return out.value


def test_typed_rows_give_the_records_of_the_dict_path(voucher_stream):
    read = voucher_stream.layout.reads[0]
    plan = _plan(read, voucher_stream.selected_columns())
    decoder = voucher_stream._row_decoder(plan)
    assert decoder is not None
    page = awkward_page(list(plan.select), read.entity.edm_types)

    dict_rows = DECIMALS.decode(page)["value"]
    typed_rows = decoder.decode(page)["value"]
    assert all(isinstance(row, TypedRow) for row in typed_rows)
    dict_lines = write(voucher_stream._records(dict_rows, plan, plan.drop)).splitlines()
    typed_lines = write(voucher_stream._records(typed_rows, plan, plan.drop)).splitlines()

    assert len(typed_lines) == len(dict_lines) == len(AWKWARD_NUMBERS)
    for typed, dicts in zip(typed_lines, dict_lines, strict=True):
        assert records_exact(typed) == records_exact(dicts)  # every decimal to the last digit
    # numbers in the form Decimal writes them, and all text, come out byte for byte
    canonical = {"1.10", "1E+3", "-0.0", "6.558907", "0", "-42", AWKWARD_NUMBERS[6]}
    for number, typed, dicts in zip(AWKWARD_NUMBERS, typed_lines, dict_lines, strict=True):
        if number in canonical:
            assert typed == dicts
    record = DECIMALS.decode(typed_lines[0])["record"]
    assert record["_ifs_etag"] == ETAG
    assert record["_ifs_objversion"] == "20250101180000"
    assert "Text" not in DECIMALS.decode(typed_lines[4])["record"]  # absent stays absent
    assert DECIMALS.decode(typed_lines[0])["record"]["Quantity"] is None


def test_typed_rows_keep_decimals_as_written_and_ordering_values_exact(voucher_stream):
    read = voucher_stream.layout.reads[0]
    plan = _plan(read, voucher_stream.selected_columns())
    decoder = RowDecoder.for_select(plan.select, read.entity.edm_types, ["Company", "Amount"])
    assert decoder is not None
    body = decoder.decode(
        b'{"value":[{"Company":"US01","Amount":0.0000001,"DebetAmount":0.0000001,'
        b'"@odata.etag":null}],"@odata.nextLink":"next"}'
    )
    [row] = body["value"]
    assert body["@odata.nextLink"] == "next"
    # an ordering value is a value (paging and the bookmark read it); others stay text
    assert row.get("Amount") == Decimal("1E-7") and isinstance(row.get("Amount"), Decimal)
    assert isinstance(row.get("DebetAmount"), msgspec.Raw)
    assert bytes(row.get("DebetAmount")) == b"0.0000001"
    assert row.get("CreditAmount") is None and "CreditAmount" not in row
    assert "Company" in row and row.get("NoSuchProperty", "x") == "x"
    row["CreditAmount"] = "set"
    assert row.get("CreditAmount") == "set"


@pytest.mark.parametrize(
    ("page", "why"),
    [
        (b'{"value":[{"Company":"US01","@odata.id":"x"}]}', "another annotation"),
        (b'{"value":[{"Company":"US01","Zz_Unannounced":1}]}', "a property not asked for"),
        (b'{"value":[1]}', "a row that is not an object"),
        (b'{"value":null}', "no value list"),
    ],
)
def test_a_page_typed_rows_cannot_take_exactly_is_read_as_dicts_from_then_on(
    voucher_stream, page, why
):
    read = voucher_stream.layout.reads[0]
    plan = _plan(read, voucher_stream.selected_columns())
    decoder = voucher_stream._row_decoder(plan)
    assert decoder.decode(page) == DECIMALS.decode(page), why
    assert not decoder.typed, why
    good = b'{"value":[{"Company":"US01"}]}'
    assert decoder.decode(good) == {"value": [{"Company": "US01"}]}  # dicts for the rest


@pytest.mark.parametrize(
    "etag_member",
    [
        b'"@odata.etag":"W/\\"x\\""',
        b'"@odata.etag" : "W/\\"x\\""',
        b'"\\u0040odata.etag":"W/\\"x\\""',
    ],
)
def test_the_etag_is_read_however_it_is_written(voucher_stream, etag_member):
    read = voucher_stream.layout.reads[0]
    decoder = voucher_stream._row_decoder(_plan(read, voucher_stream.selected_columns()))
    [row] = as_records(
        decoder.decode(b'{"value":[{"Company":"US01",' + etag_member + b"}]}")["value"]
    )
    assert decoder.typed
    assert msgspec.json.decode(msgspec.json.encode(row)) == {
        "Company": "US01",
        "_ifs_etag": 'W/"x"',
        "_ifs_objversion": None,
    }


def test_malformed_json_fails_as_it_does_for_dicts(voucher_stream):
    read = voucher_stream.layout.reads[0]
    decoder = voucher_stream._row_decoder(_plan(read, voucher_stream.selected_columns()))
    page = b'{"value":[{"Company":"US01","@odata.etag":"x"},'
    with pytest.raises(msgspec.DecodeError) as typed_error:
        decoder.decode(page)
    with pytest.raises(msgspec.DecodeError) as dict_error:
        DECIMALS.decode(page)
    assert str(typed_error.value) == str(dict_error.value)


# -- a whole sync, fast path against the SDK's per-record path ---------------------------


def raw_sync(config: dict, catalog: dict | None = None) -> list[bytes]:
    tap = TapIFSCloud(config=config, catalog=catalog)
    with captured_stdout() as out:
        tap.sync_all()
    return out.value.splitlines()


def test_the_fast_path_writes_what_the_sdk_record_path_writes(shared_sandbox, monkeypatch):
    config = tap_config(shared_sandbox, page_size=37)
    typed_pages: list[bool] = []
    decode = RowDecoder.decode

    def spy(self: RowDecoder, content: bytes) -> dict:
        body = decode(self, content)
        typed_pages.append(self.typed)
        return body

    monkeypatch.setattr(RowDecoder, "decode", spy)
    fast = raw_sync(config)
    assert len(typed_pages) > 50 and all(typed_pages)  # the sandbox's pages are all typed
    monkeypatch.setattr(PagedStream, "page_writer", lambda self: None)
    per_record = raw_sync(config)

    assert len(fast) == len(per_record)
    for fast_line, sdk_line in zip(fast, per_record, strict=True):
        assert same_message(fast_line) == same_message(sdk_line)
    messages = [DECIMALS.decode(line) for line in fast]
    for definition in BUILTIN_STREAMS:
        types = [m["type"] for m in messages if m.get("stream") == definition.name]
        assert types.count("RECORD") > 37, definition.name  # several pages of every stream
    # STATE after every page: never more than a page of records between two STATEs
    since_state = 0
    for message in messages:
        if message["type"] == "RECORD":
            since_state += 1
            assert since_state <= 37
        elif message["type"] == "STATE":
            since_state = 0


def test_extra_annotations_on_rows_still_give_the_same_records(shared_sandbox):
    def annotate(path: str, rows: list[dict]) -> list[dict]:
        for row in rows:
            row["@odata.id"] = "VoucherRowSet(x)"
        return rows

    config = tap_config(shared_sandbox, companies=["US01"], page_size=40)
    plain = raw_sync(config)
    with relay(shared_sandbox, annotate) as url:
        annotated = raw_sync({**config, "base_url": url})
    assert [same_message(line) for line in annotated] == [same_message(line) for line in plain]


# -- the page body is read in one piece, and a body cut short is read again -------------


@contextlib.contextmanager
def cutting_relay(sandbox, cuts: int) -> Iterator[tuple[str, list[str]]]:
    """In front of `sandbox`: the first `cuts` entity-set answers promise their whole
    body and close the connection halfway through it."""
    served: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            response = requests.post(
                sandbox.base_url + self.path,
                data=self.rfile.read(length),
                headers={"Content-Type": self.headers["Content-Type"]},
                timeout=30,
            )
            self.send_response(response.status_code)
            self.send_header("Content-Type", response.headers["Content-Type"])
            self.send_header("Content-Length", str(len(response.content)))
            self.end_headers()
            self.wfile.write(response.content)

        def do_GET(self) -> None:
            headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
            response = requests.get(sandbox.base_url + self.path, headers=headers, timeout=30)
            body = response.content
            cut = "$metadata" not in self.path and len(served) < cuts
            served.append("cut" if cut else "whole")
            self.send_response(response.status_code)
            self.send_header("Content-Type", response.headers["Content-Type"])
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2] if cut else body)
            if cut:
                self.close_connection = True

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", served
    finally:
        server.shutdown()
        server.server_close()


def test_a_body_cut_short_is_read_again(shared_sandbox):
    url = f"{shared_sandbox.service_url('VoucherRowsAnalysis')}/VoucherRowSet"
    params = {"$filter": "Company eq 'US01'", "$top": "30", "$orderby": "RowNo"}
    config = tap_config(shared_sandbox)
    expected = IFSApi(Connection.from_config(config), retry_policy(config)).get_json(url, params)
    with cutting_relay(shared_sandbox, cuts=2) as (relay_url, served):
        config = tap_config(shared_sandbox, base_url=relay_url)
        api = IFSApi(Connection.from_config(config), retry_policy(config))
        body = api.get_json(url.replace(shared_sandbox.base_url, relay_url), params)
    assert served == ["cut", "cut", "whole"]
    assert body == expected and len(body["value"]) == 30

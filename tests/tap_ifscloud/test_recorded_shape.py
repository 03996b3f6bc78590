"""The sandbox's default tenant has the shape of a live IFS Cloud, and the tap reads traffic in
the form a live IFS Cloud sends it.

Facts from a public recording of live IFS Cloud traffic (test cassettes of the GitHub repository
keboola/component-ex-ifs, `VoucherRowsAnalysis.svc/$metadata` and data pages): property names,
Edm types and lengths, keys typed `Edm.Decimal`, tokens of 180 s, pages with `@odata.context`
and `Content-Type: application/json;odata.metadata=minimal`. Nothing of the recording is kept
here: `tests/fixtures/recorded_shape/voucher_rows_page.json` is a page written in that form with
invented values (regenerate it from the sandbox's VoucherRow if the entity type changes).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

from ifs_looker_sandboxes.ifs_cloud.edmx import render_metadata
from ifs_looker_sandboxes.ifs_cloud.entities import PROJECTIONS_BY_NAME
from tap_ifscloud.tap import TapIFSCloud

from .conftest import run_tap, tap_config

PAGE = Path(__file__).parent.parent / "fixtures" / "recorded_shape" / "voucher_rows_page.json"
TOKEN_SECONDS = 180  # what the recorded IFS IAM grants

# The VoucherRow properties of the recorded tenant that our first bundled schema lacked.
RECORDED_BEYOND_OUR_FIRST_SCHEMA = [
    "ProjectId",
    "ObjectId",
    "Correction",
    "ProcessCode",
    "OptionalCode",
    "ProjectActivityId",
    "PartyTypeId",
    "ReferenceSerie",
    "ReferenceNumber",
    "UpdateError",
    "TransferId",
    "Corrected",
    "PeriodAllocation",
    "ThirdCurrencyDebitAmount",
    "ThirdCurrencyCreditAmount",
    "ThirdCurrencyAmount",
    "MultiCompanyId",
    "ConversionFactor",
    "AutoTaxVouEntry",
    "ReferenceRowNo",
    "FunctionGroup",
    "YearPeriodKey",
    "PostingCombinationId",
    "CurrBalance",
    "ReferenceVersion",
    "PartyType",
    "ParallelCurrencyRate",
    "ParallelConversionFactor",
    "ParallelCurrTaxAmount",
    "ParallelCurrGrossAmount",
    "ParallelCurrTaxBaseAmount",
    "ParallelCurrRateType",
    "DelivTypeId",
    "PartyName",
    "TaxBookId",
    "TaxSeriesId",
    "TaxSeriesNo",
    "EnteredByUserGroup",
    "Userid",
    "ApprovedByUserGroup",
    "ApprovedByUserid",
    "SecondApprovedByUserid",
    "SecondApprovedByDate",
    "SecondApprovedByUserGroup",
    "IsMultiCompanyRow",
    "VoucherTypeReference",
]


def catalog_properties(sandbox: Any) -> dict[str, dict]:
    catalog = TapIFSCloud(config=tap_config(sandbox)).catalog_dict
    return {s["tap_stream_id"]: s["schema"]["properties"] for s in catalog["streams"]}


def test_discovery_on_the_default_tenant_has_the_recorded_shape(shared_sandbox):
    found = catalog_properties(shared_sandbox)
    vouchers = found["voucher_rows"]
    assert len(RECORDED_BEYOND_OUR_FIRST_SCHEMA) == 46
    assert set(RECORDED_BEYOND_OUR_FIRST_SCHEMA) <= set(vouchers)
    assert not {"CorrectionRow", "VoucherStatus"} & set(vouchers)
    for key in ("AccountingYear", "VoucherNo", "RowNo"):
        assert vouchers[key] == {"type": "number"}, key  # Edm.Decimal keys, never null
    assert vouchers["AccountingPeriod"] == {"type": ["number", "null"]}
    assert vouchers["Correction"] == {"type": ["boolean", "null"]}
    assert vouchers["luname"] == {"type": ["string", "null"], "maxLength": 80}
    assert vouchers["VoucherTypeReference"]["maxLength"] == 4000
    accounts = found["gl_accounts"]
    assert len([n for n in accounts if not n.startswith("_")]) == 60
    assert accounts["LedgFlag"]["enum"] == ["LedgerAccount", "NotLedgerAccount", None]
    assert accounts["ReqCodeB"]["enum"] == ["Can", "Mandatory", "Blocked", None]
    assert accounts["LogicalAccountType"]["enum"][:2] == ["Assets", "Liabilities"]
    codes = found["cost_dimensions"]
    assert codes["BudgetValue"]["enum"] == ["BudgetAccount", "NotBudgetAccount", None]
    assert codes["Cf_Customer_Project_Id"] == {"type": ["string", "null"], "maxLength": 4000}


class _RecordedIfs(BaseHTTPRequestHandler):
    """Answers as the recorded IFS Cloud does: a token of 180 s, the projection's `$metadata`,
    and the fixture page for the first page of VoucherRowSet (an empty page after it)."""

    page: bytes = b""
    metadata: bytes = b""
    requests: list[str]

    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        token = {
            "access_token": "recorded-shape-token",
            "expires_in": TOKEN_SECONDS,
            "refresh_expires_in": 1800,
            "token_type": "Bearer",
            "not-before-policy": 0,
            "scope": "openid audience microprofile-jwt profile email",
        }
        self._send(200, "application/json", json.dumps(token).encode())

    def do_GET(self) -> None:
        path = unquote(self.path)
        self.requests.append(path)
        if path.endswith("/$metadata"):
            self._send(200, "application/xml", self.metadata)
        elif "/VoucherRowSet?" in path:
            first = " gt " not in path.split("$filter=", 1)[-1]  # keyset pages go past a key
            body = self.page if first else b'{"value": []}'
            self._send(200, "application/json;odata.metadata=minimal", body)
        else:
            self._send(404, "application/json", b'{"error": {"code": "NOT_FOUND"}}')


@contextmanager
def recorded_ifs() -> Iterator[tuple[str, list[str]]]:
    handler = type(
        "Handler",
        (_RecordedIfs,),
        {
            "page": PAGE.read_bytes(),
            "metadata": render_metadata(PROJECTIONS_BY_NAME["VoucherRowsAnalysis"]),
            "requests": [],
        },
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", handler.requests
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def page_rows() -> list[dict]:
    return json.loads(PAGE.read_text(), parse_float=Decimal)["value"]


def test_a_recorded_style_page_is_synced_exactly(shared_sandbox, page_rows):
    others = ("supplier_invoices", "purchase_orders", "purchase_order_lines", "customer_orders")
    others += ("gl_accounts", "cost_dimensions", "account_hierarchy")
    with recorded_ifs() as (url, requests):
        config = tap_config(
            shared_sandbox,
            base_url=url,
            companies=["100"],
            start_date="2020-01-01",
            stream_overrides={name: {"enabled": False} for name in others},
        )
        run = run_tap(config)
    records = run.records("voucher_rows")
    assert [r["RowNo"] for r in records] == [1, 2, 3]
    for record, row in zip(records, page_rows, strict=True):
        for name, value in row.items():
            if name == "@odata.etag":
                assert record["_ifs_etag"] == value
            else:
                assert record[name] == value, name
                assert type(record[name]) is type(value), name  # 2020 stays a whole number
    assert records[2]["Amount"] == Decimal("0.10000000000000000001")  # beyond float
    assert [r["Correction"] for r in records] == [False, True, False]
    assert records[2]["Text"] == "Avräkning ÅÄÖ"
    assert any("/VoucherRowsAnalysis.svc/VoucherRowSet?" in p for p in requests)
    state = [m for m in run.messages if m["type"] == "STATE"][-1]["value"]
    assert "2020-01-02" in json.dumps(state)  # the bookmark is the page's entry date

"""The `tap-ifscloud` command: clear errors with a non-zero exit, `--test`, offline discovery."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from .conftest import run_cli, running_sandbox, tap_config

SANDBOX_SECRET = "sandbox-secret"


def assert_fails_clearly(result, *fragments: str, secret: str = SANDBOX_SECRET) -> None:
    assert result.returncode != 0, result.stderr[-2000:]
    for fragment in fragments:
        assert fragment in result.stderr, (fragment, result.stderr[-3000:])
    assert secret not in result.stderr
    assert secret not in result.stdout
    assert "Traceback" not in result.stderr


def test_wrong_secret(shared_sandbox, tmp_path):
    config = tap_config(shared_sandbox, client_secret="not-the-secret")
    result = run_cli([], config, tmp_path)
    assert_fails_clearly(
        result,
        "refused client 'ifs-looker-sandbox' (HTTP 401): unauthorized_client",
        secret="not-the-secret",
    )


def test_unknown_projection(shared_sandbox, tmp_path):
    config = tap_config(
        shared_sandbox, stream_overrides={"gl_accounts": {"projection": "NoSuchHandling"}}
    )
    result = run_cli([], config, tmp_path)
    assert_fails_clearly(result, "unknown projection 'NoSuchHandling'", "Metadata not found.")


def test_unknown_entity_set(shared_sandbox, tmp_path):
    config = tap_config(shared_sandbox, stream_overrides={"gl_accounts": {"entity_set": "NoSet"}})
    result = run_cli([], config, tmp_path)
    assert_fails_clearly(
        result, "unknown entity set 'NoSet' in projection VoucherRowsAnalysis", "VoucherRowSet"
    )


def test_filter_on_a_field_that_does_not_exist(shared_sandbox, tmp_path):
    config = tap_config(
        shared_sandbox, stream_overrides={"account_hierarchy": {"filter": "Bogus eq 'x'"}}
    )
    result = run_cli([], config, tmp_path)
    assert_fails_clearly(result, "HTTP 400", "Bogus")


def test_replication_key_missing_from_metadata(shared_sandbox, tmp_path):
    config = tap_config(
        shared_sandbox, stream_overrides={"supplier_invoices": {"replication_key": "ChangedAt"}}
    )
    result = run_cli([], config, tmp_path)
    assert_fails_clearly(
        result,
        "replication_key 'ChangedAt' is not a property of entity ManSuppInvoice",
        "date/timestamp fields are: InvoiceDate, DueDate, LastModified",
    )


def test_gives_up_after_max_retries_naming_the_url_and_last_status(tmp_path):
    with running_sandbox(companies=("US01",), rate_5xx=1.0) as sandbox:
        config = tap_config(sandbox, max_retries=2, max_backoff_seconds=0.01)
        result = run_cli([], config, tmp_path)
    assert_fails_clearly(
        result,
        "Gave up on GET http://127.0.0.1:",
        "/ManualSupplierInvoiceHandling.svc/$metadata after 3 attempts; last status: 50",
    )


def test_start_date_that_is_not_a_date(shared_sandbox, tmp_path):
    result = run_cli([], tap_config(shared_sandbox, start_date="last tuesday"), tmp_path)
    assert_fails_clearly(result, "start_date 'last tuesday' is not an ISO 8601 date or timestamp")


def test_empty_companies_list(shared_sandbox, tmp_path):
    result = run_cli([], tap_config(shared_sandbox, companies=[]), tmp_path)
    assert_fails_clearly(result, "companies")


SEEN_HEADERS: list[dict[str, str]] = []


@pytest.fixture
def broken_json_server(shared_sandbox) -> Iterator[str]:
    """IFS in front, broken behind: tokens and $metadata come from the sandbox,
    entity-set reads answer 200 with truncated JSON."""
    SEEN_HEADERS.clear()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _relay(self, response: requests.Response) -> None:
            self._send(response.status_code, response.content, response.headers["Content-Type"])

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            self._relay(
                requests.post(
                    shared_sandbox.base_url + self.path,
                    data=self.rfile.read(length),
                    headers={"Content-Type": self.headers["Content-Type"]},
                    timeout=10,
                )
            )

        def do_GET(self):
            SEEN_HEADERS.append(dict(self.headers))
            if "$metadata" in self.path:
                headers = {"Authorization": self.headers.get("Authorization", "")}
                self._relay(
                    requests.get(shared_sandbox.base_url + self.path, headers=headers, timeout=10)
                )
                return
            body = b'{"@odata.context": "x", "value": [{"Company": "US01", "NodeId": '
            self._send(200, body, "application/json;odata.metadata=minimal")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_malformed_json_in_a_response(shared_sandbox, broken_json_server, tmp_path):
    config = tap_config(shared_sandbox, base_url=broken_json_server)
    result = run_cli([], config, tmp_path)
    assert_fails_clearly(result, "malformed JSON", "AccountingStructureItemSet")
    # and every OData request carried IFS's time-zone header and a bearer token
    assert SEEN_HEADERS
    for headers in SEEN_HEADERS:
        assert headers["X-Ifs-Time-Zone-Aware-Request"] == "true"
        assert headers["Authorization"].startswith("Bearer ")
        assert headers["Authorization"] not in result.stderr


def test_connection_test_reports_each_stream(shared_sandbox, tmp_path):
    result = run_cli(["--test"], tap_config(shared_sandbox), tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "OK     authentication" in result.stderr
    for stream in ("voucher_rows", "cost_dimensions", "gl_accounts", "supplier_invoices"):
        assert f"OK     stream {stream}: $metadata of" in result.stderr
    assert "Connection test passed" in result.stderr


def test_connection_test_fails_for_a_broken_stream(shared_sandbox, tmp_path):
    config = tap_config(
        shared_sandbox, stream_overrides={"purchase_orders": {"filter": "Nope eq 1"}}
    )
    result = run_cli(["--test"], config, tmp_path)
    assert result.returncode == 1
    assert "FAILED stream purchase_orders" in result.stderr
    assert "OK     stream purchase_order_lines" in result.stderr
    assert "Connection test FAILED" in result.stderr


def test_offline_discovery_uses_the_bundled_schemas_and_says_so(tmp_path):
    config = {
        "base_url": "https://ifs.invalid",
        "companies": ["US01"],
        "client_id": "x",
        "offline_discovery": True,
    }
    result = run_cli(["--discover"], config, tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "offline_discovery is on: the stream schemas are the bundled ones" in result.stderr
    assert "may lack its properties, custom fields (Cf_*) included" in result.stderr
    catalog = json.loads(result.stdout)
    streams = {s["tap_stream_id"]: s for s in catalog["streams"]}
    assert set(streams) == {
        "supplier_invoices",
        "purchase_orders",
        "purchase_order_lines",
        "customer_orders",
        "voucher_rows",
        "gl_accounts",
        "cost_dimensions",
        "account_hierarchy",
    }
    voucher = streams["voucher_rows"]["schema"]["properties"]
    assert voucher["Amount"]["type"] == ["number", "null"]
    assert voucher["EntryDate"]["format"] == "date"
    assert voucher["Correction"]["type"] == ["boolean", "null"]
    assert voucher["luname"]["maxLength"] == 80
    assert voucher["Text"]["maxLength"] == 200
    assert "code_part" in streams["cost_dimensions"]["schema"]["properties"]

    # a projection nothing is bundled for cannot be discovered offline
    config["custom_streams"] = [{"name": "x", "projection": "Acme", "entity_set": "S"}]
    result = run_cli(["--discover"], config, tmp_path)
    assert_fails_clearly(result, "offline_discovery has no bundled $metadata for projection Acme")

    about = run_cli(["--about", "--format", "json"], None, tmp_path)
    assert about.returncode == 0
    settings = set(json.loads(about.stdout)["settings"]["properties"])
    assert {
        "base_url",
        "companies",
        "stream_overrides",
        "custom_streams",
        "lookback_days",
        "offline_discovery",
    } <= settings


def test_a_filter_that_breaks_out_is_a_clear_error(shared_sandbox, tmp_path):
    config = tap_config(
        shared_sandbox,
        stream_overrides={"voucher_rows": {"filter": "Company eq 'US01') or (Company ne 'US01'"}},
    )
    for args in ([], ["--discover"], ["--test"]):
        result = run_cli(args, config, tmp_path)
        assert_fails_clearly(
            result, "stream 'voucher_rows': filter \"Company eq 'US01') or (Company ne 'US01'\""
        )


def test_connection_test_names_the_url_tried_for_a_missing_projection_or_entity_set(
    shared_sandbox, tmp_path
):
    config = tap_config(
        shared_sandbox,
        stream_overrides={
            "gl_accounts": {"projection": "NoSuchHandling"},
            "purchase_orders": {"entity_set": "NoSuchSet"},
            "purchase_order_lines": {"path_prefix": "/int/ifsapplications/projection/v1"},
        },
    )
    result = run_cli(["--test"], config, tmp_path)
    assert result.returncode == 1
    base = f"{shared_sandbox.base_url}"
    lines = result.stderr.splitlines()
    [accounts] = [line for line in lines if "FAILED stream gl_accounts:" in line]
    assert "unknown projection 'NoSuchHandling'" in accounts
    assert f"{base}/main/ifsapplications/projection/v1/NoSuchHandling.svc/$metadata" in accounts
    [orders] = [line for line in lines if "FAILED stream purchase_orders:" in line]
    assert "unknown entity set 'NoSuchSet'" in orders
    assert (
        f"{base}/main/ifsapplications/projection/v1/PurchaseOrderHandling.svc/NoSuchSet" in orders
    )
    [order_lines] = [line for line in lines if "OK     stream purchase_order_lines:" in line]
    assert f"{base}/int/ifsapplications/projection/v1/PurchaseOrderHandling.svc/$metadata" in (
        order_lines
    )
    assert "OK     stream voucher_rows: $metadata of VoucherRowsAnalysis read" in result.stderr
    assert "Connection test FAILED" in result.stderr
    assert "Traceback" not in result.stderr

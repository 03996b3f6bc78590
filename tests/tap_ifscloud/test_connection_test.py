"""`--test` as structured results: one check per selected stream, nothing else touched."""

from __future__ import annotations

import contextlib
import io
import json
import logging

from tap_ifscloud.connection_test import log_result, run_connection_test
from tap_ifscloud.tap import TapIFSCloud

from .conftest import tap_config


def test_one_check_per_selected_stream_with_what_was_read(shared_sandbox):
    tap = TapIFSCloud(config=tap_config(shared_sandbox, companies=["DE01"]))
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        result = run_connection_test(tap)
    assert result.ok
    assert result.authentication.name == "authentication"
    assert result.authentication.url == shared_sandbox.base_url
    assert [c.name for c in result.streams] == [f"stream {name}" for name in tap.streams]
    vouchers = next(c for c in result.streams if c.name == "stream voucher_rows")
    assert vouchers.url.endswith("/VoucherRowsAnalysis.svc/VoucherRowSet")
    assert vouchers.detail.startswith(
        f"$metadata of VoucherRowsAnalysis read ({shared_sandbox.base_url}/main/ifsapplications/"
        "projection/v1/VoucherRowsAnalysis.svc/$metadata), entity set VoucherRowSet exists; "
        "first page for DE01: "
    )
    # reading a page for the check neither writes Singer messages nor moves a bookmark
    assert stdout.getvalue() == ""
    assert "replication_key_value" not in json.dumps(tap.state)


def test_a_failing_stream_is_reported_and_the_others_still_run(shared_sandbox, caplog):
    config = tap_config(
        shared_sandbox, stream_overrides={"purchase_orders": {"filter": "Nope eq 1"}}
    )
    result = run_connection_test(TapIFSCloud(config=config))
    assert not result.ok
    failed = [c for c in result.checks if not c.ok]
    assert [c.name for c in failed] == ["stream purchase_orders"]
    assert "HTTP 400" in failed[0].detail and "Nope" in failed[0].detail
    assert sum(c.ok for c in result.streams) == len(result.streams) - 1

    caplog.set_level(logging.INFO, logger="tap-ifscloud.test")
    log_result(result)
    lines = [r.getMessage() for r in caplog.records if r.name == "tap-ifscloud.test"]
    assert lines[0] == f"OK     authentication at {shared_sandbox.base_url}"
    assert any(line.startswith("FAILED stream purchase_orders: ") for line in lines)
    assert lines[-1] == "Connection test FAILED"


def test_refused_credentials_fail_authentication_and_skip_the_streams(shared_sandbox):
    config = tap_config(shared_sandbox, client_secret="not-the-secret")
    result = run_connection_test(TapIFSCloud(config=config))
    assert not result.ok
    assert result.streams == ()
    assert not result.authentication.ok
    assert "refused client 'ifs-looker-sandbox' (HTTP 401)" in result.authentication.detail
    assert "not-the-secret" not in result.authentication.detail

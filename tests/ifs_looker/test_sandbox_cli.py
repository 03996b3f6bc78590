"""`ifs-looker sandbox` started by hand answers the README's curl commands."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import pytest


@pytest.fixture
def sandbox_process() -> Iterator[str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "ifs_looker.cli", "sandbox", "--port", "0", "--voucher-rows", "50"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        banner = process.stdout.readline()  # type: ignore[union-attr]
        assert "IFS Cloud sandbox on http://127.0.0.1:" in banner
        yield banner.split(" on ", 1)[1].split()[0]
    finally:
        process.terminate()
        process.wait(timeout=10)


def curl(*args: str) -> dict:
    result = subprocess.run(
        ["curl", "-s", "--fail-with-body", *args], capture_output=True, check=True
    )
    return json.loads(result.stdout)


def test_token_and_top_two_with_curl(sandbox_process: str) -> None:
    token = curl(
        "-d",
        "grant_type=client_credentials",
        "-d",
        "client_id=ifs-looker-sandbox",
        "-d",
        "client_secret=sandbox-secret",
        f"{sandbox_process}/auth/realms/ifsdemo/protocol/openid-connect/token",
    )["access_token"]
    body = curl(
        "-H",
        f"Authorization: Bearer {token}",
        "-G",
        "--data-urlencode",
        "$top=2",
        f"{sandbox_process}/main/ifsapplications/projection/v1/VoucherRowsAnalysis.svc/VoucherRowSet",
    )
    assert len(body["value"]) == 2
    assert {row["Company"] for row in body["value"]} <= {"US01", "DE01", "SE01"}


def test_help_documents_every_knob() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ifs_looker.cli", "sandbox", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    for flag in (
        "--port",
        "--voucher-rows",
        "--seed",
        "--token-lifetime",
        "--rate-429",
        "--retry-after",
        "--rate-5xx",
        "--drop-rate",
        "--latency-ms",
        "--server-page-size",
        "--mutations-per-request",
    ):
        assert flag in result.stdout

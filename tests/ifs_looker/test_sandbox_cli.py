"""`ifs-looker sandbox` started by hand answers the README's curl commands."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import Iterator

import pytest


@contextlib.contextmanager
def started(*flags: str) -> Iterator[tuple[str, str]]:
    """`ifs-looker sandbox` on a free port: (its base URL, its banner line)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "ifs_looker.cli", "sandbox", "--port", "0", *flags],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        banner = process.stdout.readline()  # type: ignore[union-attr]
        assert "IFS Cloud sandbox on http://127.0.0.1:" in banner
        yield banner.split(" on ", 1)[1].split()[0], banner
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def sandbox_process() -> Iterator[str]:
    with started("--voucher-rows", "50") as (url, _):
        yield url


def curl(*args: str) -> dict:
    result = subprocess.run(
        ["curl", "-s", "--fail-with-body", *args], capture_output=True, check=True
    )
    return json.loads(result.stdout)


def token_of(base_url: str) -> str:
    return curl(
        "-d",
        "grant_type=client_credentials",
        "-d",
        "client_id=ifs-looker-sandbox",
        "-d",
        "client_secret=sandbox-secret",
        f"{base_url}/auth/realms/ifsdemo/protocol/openid-connect/token",
    )["access_token"]


def test_token_and_top_two_with_curl(sandbox_process: str) -> None:
    token = token_of(sandbox_process)
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
        "--tenant",
    ):
        assert flag in result.stdout
    assert "{default,varied}" in result.stdout


def test_tenant_varied_serves_a_real_tenants_custom_fields() -> None:
    with started("--voucher-rows", "30", "--no-looker", "--tenant", "varied") as (url, banner):
        assert "tenant=varied" in banner
        body = curl(
            "-H",
            f"Authorization: Bearer {token_of(url)}",
            "-G",
            "--data-urlencode",
            "$select=Cf_Customer_Project_Id",
            "--data-urlencode",
            "$top=1",
            f"{url}/main/ifsapplications/projection/v1/VoucherRowsAnalysis.svc/Reference_CodeF",
        )
        assert "Cf_Customer_Project_Id" in body["value"][0]


def test_an_unknown_tenant_is_a_usage_error() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ifs_looker.cli", "sandbox", "--tenant", "nosuch"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2 and "invalid choice: 'nosuch'" in result.stderr

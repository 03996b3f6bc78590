"""`ifs-looker sandbox` starts the Looker sandbox beside the IFS one (or not, with --no-looker)."""

from __future__ import annotations

import subprocess
import sys

import requests

COMMAND = [sys.executable, "-m", "ifs_looker.cli", "sandbox", "--port", "0", "--voucher-rows", "20"]


def test_both_sandboxes_start_and_the_looker_one_answers_logins(tmp_path) -> None:
    warehouse = f"duckdb:///{tmp_path / 'w.duckdb'}"
    process = subprocess.Popen(
        [
            *COMMAND,
            "--looker-port",
            "0",
            "--looker-warehouse-url",
            warehouse,
            "--looker-datagroups",
            "finance::nightly",
            "--looker-token-lifetime",
            "120",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert "IFS Cloud sandbox on" in process.stdout.readline()  # type: ignore[union-attr]
        banner = process.stdout.readline()  # type: ignore[union-attr]
        assert "Looker sandbox on http://127.0.0.1:" in banner
        assert f"connection=ifs_warehouse -> {warehouse}" in banner
        base = banner.split(" on ", 1)[1].split()[0]
        login = requests.post(
            f"{base}/api/4.0/login",
            data={"client_id": "looker-sandbox", "client_secret": "looker-sandbox-secret"},
            timeout=10,
        ).json()
        assert login["expires_in"] == 120
        groups = requests.get(
            f"{base}/api/4.0/datagroups",
            headers={"Authorization": f"token {login['access_token']}"},
            timeout=10,
        ).json()
        assert [(g["model_name"], g["name"]) for g in groups] == [("finance", "nightly")]
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_with_port_0_the_looker_sandbox_picks_a_free_port_too() -> None:
    process = subprocess.Popen(COMMAND, stdout=subprocess.PIPE, text=True)
    try:
        process.stdout.readline()  # type: ignore[union-attr]
        banner = process.stdout.readline()  # type: ignore[union-attr]
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert "Looker sandbox on http://127.0.0.1:" in banner
    assert ":8720 " not in banner


def test_no_looker_starts_only_the_ifs_sandbox() -> None:
    process = subprocess.Popen([*COMMAND, "--no-looker"], stdout=subprocess.PIPE, text=True)
    try:
        assert "IFS Cloud sandbox on" in process.stdout.readline()  # type: ignore[union-attr]
    finally:
        process.terminate()
        out, _ = process.communicate(timeout=10)
    assert "Looker" not in out


def test_help_documents_the_looker_knobs() -> None:
    result = subprocess.run([*COMMAND, "--help"], capture_output=True, text=True, check=True)
    for flag in (
        "--looker-port",
        "--no-looker",
        "--looker-warehouse-url",
        "--looker-rate-429",
        "--looker-token-lifetime",
        "--looker-lookml-dir",
    ):
        assert flag in result.stdout

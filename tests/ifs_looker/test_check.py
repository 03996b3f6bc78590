"""`ifs-looker check`: both systems pinged, one verdict per check, the failing side named.

Real HTTP against the IFS and Looker sandboxes, a real DuckDB file and PostgreSQL.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ifs_looker.cli import main
from ifs_looker_sandboxes.ifs_cloud import IfsCloudSandbox
from ifs_looker_sandboxes.looker import LookerConfig, LookerSandbox

LOOKER_SECRET = "looker-sandbox-secret"


@pytest.fixture
def looker(tmp_path: Path) -> Iterator[LookerSandbox]:
    config = LookerConfig(
        connections={
            "wh": f"duckdb:///{tmp_path / 'warehouse.duckdb'}",
            "broken": "postgresql://postgres@127.0.0.1:1/nowhere",
        }
    )
    with LookerSandbox(config) as sandbox:
        yield sandbox


def tap_config(ifs: IfsCloudSandbox, **changes: object) -> dict:
    return {
        "base_url": ifs.base_url,
        "realm": ifs.config.realm,
        "client_id": ifs.config.client_id,
        "client_secret": ifs.config.client_secret,
        "companies": ["US01"],
        **changes,
    }


def target_config(looker: LookerSandbox, tmp_path: Path, **changes: object) -> dict:
    return {
        "warehouse_url": f"duckdb:///{tmp_path / 'warehouse.duckdb'}",
        "default_target_schema": "ifs_cloud",
        "looker_base_url": looker.base_url,
        "looker_client_id": "looker-sandbox",
        "looker_client_secret": LOOKER_SECRET,
        "looker_connection_name": "wh",
        **changes,
    }


def run_check(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, tap: dict | None, target: dict | None
) -> tuple[int, list[str]]:
    """`ifs-looker check` in-process: exit code and printed lines."""
    args = ["check"]
    if tap is not None:
        (tmp_path / "tap.json").write_text(json.dumps(tap))
        args += ["--tap-config", str(tmp_path / "tap.json")]
    if target is not None:
        (tmp_path / "target.json").write_text(json.dumps(target))
        args += ["--target-config", str(tmp_path / "target.json")]
    code = main(args)
    return code, capsys.readouterr().out.splitlines()


def test_everything_passes_against_the_sandboxes(
    ifs_sandbox: IfsCloudSandbox, looker: LookerSandbox, tmp_path: Path
) -> None:
    """Through the installed console script, as an operator runs it."""
    (tmp_path / "tap.json").write_text(json.dumps(tap_config(ifs_sandbox)))
    (tmp_path / "target.json").write_text(json.dumps(target_config(looker, tmp_path)))
    result = subprocess.run(
        [
            Path(sys.executable).parent / "ifs-looker",
            "check",
            "--tap-config",
            tmp_path / "tap.json",
            "--target-config",
            tmp_path / "target.json",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    lines = result.stdout.splitlines()
    assert result.returncode == 0, result.stdout + result.stderr
    assert lines[-1].startswith("ifs-looker check: all ") and lines[-1].endswith("passed")
    assert any(line.startswith("PASS  ifs       authentication") for line in lines)
    assert any(line.startswith("PASS  ifs       stream voucher_rows") for line in lines)
    assert "PASS  looker    login: logged in at " + looker.base_url in lines
    assert "PASS  looker    connection test connect: Can connect" in lines
    assert any(line.startswith("PASS  warehouse probe table") for line in lines)
    assert any(line.startswith("PASS  warehouse bulk path") for line in lines)
    assert [r.path for r in looker.requests("DELETE")] == ["/api/4.0/logout"]


def test_a_wrong_ifs_secret_fails_the_ifs_side_only(
    ifs_sandbox: IfsCloudSandbox,
    looker: LookerSandbox,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    tap = tap_config(ifs_sandbox, client_secret="wrong-ifs-secret")
    code, lines = run_check(capsys, tmp_path, tap, target_config(looker, tmp_path))
    assert code == 1
    [failure] = [line for line in lines if line.startswith("FAIL")]
    assert failure.startswith("FAIL  ifs       authentication: ")
    assert "refused client 'ifs-looker-sandbox' (HTTP 401)" in failure
    assert lines[-1] == "ifs-looker check: 1 check(s) FAILED (ifs)"
    assert "wrong-ifs-secret" not in "\n".join(lines)


def test_a_wrong_looker_secret_fails_the_looker_side_only(
    ifs_sandbox: IfsCloudSandbox,
    looker: LookerSandbox,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    target = target_config(looker, tmp_path, looker_client_secret="wrong-looker-secret")
    code, lines = run_check(capsys, tmp_path, tap_config(ifs_sandbox), target)
    assert code == 1
    [failure] = [line for line in lines if line.startswith("FAIL")]
    assert failure.startswith("FAIL  looker    login: at http://127.0.0.1:")
    assert "HTTP 404" in failure
    assert "Looker refused the API client id/secret (client id 'looker-sandbox')" in failure
    assert lines[-1] == "ifs-looker check: 1 check(s) FAILED (looker)"
    assert "wrong-looker-secret" not in "\n".join(lines)


def test_a_looker_connection_whose_database_is_down_fails(
    looker: LookerSandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, lines = run_check(
        capsys, tmp_path, None, target_config(looker, tmp_path, looker_connection_name="broken")
    )
    assert code == 1
    assert any(
        line.startswith("FAIL  looker    connection test connect: Cannot connect") for line in lines
    )


def test_an_unreachable_warehouse_fails_the_warehouse_side_without_its_password(
    looker: LookerSandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = "postgresql://postgres:pw-s3cret@127.0.0.1:5432/no_such_database_for_check"
    code, lines = run_check(
        capsys, tmp_path, None, target_config(looker, tmp_path, warehouse_url=url)
    )
    assert code == 1
    [failure] = [line for line in lines if line.startswith("FAIL")]
    assert failure.startswith("FAIL  warehouse connect: ")
    assert "no_such_database_for_check" in failure
    assert "pw-s3cret" not in "\n".join(lines)


def test_the_sql_runner_write_path_probes_through_looker(
    looker: LookerSandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = target_config(looker, tmp_path, write_path="looker_sql_runner")
    del target["warehouse_url"]
    code, lines = run_check(capsys, tmp_path, None, target)
    assert code == 0, lines
    assert any("Looker SQL Runner, connection 'wh'" in line for line in lines)
    executed = [run.sql for run in looker.sql_log]
    assert any(
        'CREATE TABLE IF NOT EXISTS "ifs_cloud"."_ifs_looker_check_' in sql for sql in executed
    )
    assert any('DROP TABLE IF EXISTS "ifs_cloud"."_ifs_looker_check_' in sql for sql in executed)


def test_without_looker_settings_the_looker_checks_are_skipped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = {"warehouse_url": f"duckdb:///{tmp_path / 'w.duckdb'}"}
    code, lines = run_check(capsys, tmp_path, None, target)
    assert code == 0
    assert lines[0].startswith("SKIP  looker    settings: ")


def test_unreadable_config_files_are_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "bad.json").write_text("{not json")
    assert main(["check", "--tap-config", str(tmp_path / "bad.json")]) == 1
    out = capsys.readouterr().out
    assert "bad.json is not valid JSON" in out
    assert main(["check"]) == 2

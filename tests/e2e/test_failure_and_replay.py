"""Killed runs, faults and replays: the next run completes the data, no loss, no duplicates."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from datetime import date, timedelta
from pathlib import Path

from ifs_looker_sandboxes.ifs_cloud import IfsCloudSandbox

from .conftest import (
    PROJECT,
    MeltanoRunner,
    Warehouse,
    assert_warehouse_equals_sandbox,
    meltano_env,
)

STATE_ID = "dev:tap-ifscloud-to-target-looker"


def children_named(parent: int, name: str) -> list[int]:
    """Descendant processes of `parent` whose command line mentions `name`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == parent and name in cmdline:
            found.append(int(entry.name))
    return found


def test_sigkill_mid_run_then_rerun_equals_a_clean_run(
    meltano_bin: str, meltano: MeltanoRunner, sandbox_factory, tmp_path
) -> None:
    sandbox: IfsCloudSandbox = sandbox_factory(voucher_rows_per_company=4000)
    warehouse = Warehouse(f"duckdb:///{tmp_path / 'w.duckdb'}", "duckdb")
    env = meltano_env(tmp_path, sandbox, warehouse)
    env.update(TARGET_LOOKER_BATCH_SIZE_ROWS="500", TAP_IFSCLOUD_PAGE_SIZE="500")
    process = subprocess.Popen(
        [meltano_bin, "run", "tap-ifscloud", "target-looker"],
        cwd=PROJECT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    commits = 0
    killed = False
    for line in process.stdout:  # type: ignore[union-attr]
        if "Committed voucher_rows batch" in line:
            commits += 1
        if commits >= 3 and not killed:
            targets = children_named(process.pid, "target-looker")
            assert targets, "the target process was not found"
            for pid in targets:
                os.kill(pid, signal.SIGKILL)
            killed = True
    assert killed, "the run ended before the target could be killed"
    assert process.wait(timeout=120) != 0

    state = meltano(env, "state", "get", STATE_ID).stdout.strip().splitlines()
    assert state, "state of the committed batches must survive the kill"
    voucher_bookmarks = json.loads(state[-1])["singer_state"]["bookmarks"].get("voucher_rows")
    assert voucher_bookmarks, "the voucher rows committed before the kill have a bookmark"

    again = meltano(env, "run", "tap-ifscloud", "target-looker")
    assert again.returncode == 0, again.stderr[-3000:]
    assert_warehouse_equals_sandbox(warehouse, sandbox)
    runs = warehouse.rows("_load_runs")
    assert len({r["run_id"] for r in runs}) == 2
    assert sorted(r["status"] for r in runs)[-1] == "succeeded"


def test_faults_tokens_and_mutations_two_runs_converge(
    meltano: MeltanoRunner, sandbox_factory, tmp_path
) -> None:
    sandbox: IfsCloudSandbox = sandbox_factory(
        voucher_rows_per_company=300,
        token_lifetime=3,
        rate_429=0.2,
        retry_after="mixed",
        rate_5xx=0.05,
        mutations_per_request=2,
        latency_ms=20,
    )
    warehouse = Warehouse(f"duckdb:///{tmp_path / 'w.duckdb'}", "duckdb")
    env = meltano_env(tmp_path, sandbox, warehouse)
    env.update(TAP_IFSCLOUD_PAGE_SIZE="100", TAP_IFSCLOUD_MAX_RETRIES="12")
    started = time.monotonic()
    first = meltano(env, "run", "tap-ifscloud", "target-looker")
    assert first.returncode == 0, first.stderr[-3000:]
    assert time.monotonic() - started > 3, "the run must outlive at least one token"
    assert sandbox.tokens.issued_count >= 2
    assert sandbox.faults.counts["throttle"] and sandbox.faults.counts["error"]
    assert sandbox.clock.log, "the mutation clock changed data during the run"

    sandbox.update_config(mutations_per_request=0)  # the source settles; the next run catches up
    second = meltano(env, "run", "tap-ifscloud", "target-looker")
    assert second.returncode == 0, second.stderr[-3000:]
    assert_warehouse_equals_sandbox(warehouse, sandbox)


def bookmarks(meltano: MeltanoRunner, env: dict[str, str]) -> dict:
    lines = meltano(env, "state", "get", STATE_ID).stdout.strip().splitlines()
    return json.loads(lines[-1]).get("singer_state", {}).get("bookmarks", {}) if lines else {}


def test_a_failed_load_keeps_the_state_and_the_next_run_completes(
    meltano: MeltanoRunner, sandbox_factory, tmp_path
) -> None:
    sandbox: IfsCloudSandbox = sandbox_factory(voucher_rows_per_company=60)
    warehouse = Warehouse(f"duckdb:///{tmp_path / 'w.duckdb'}", "duckdb")
    env = meltano_env(tmp_path, sandbox, warehouse)
    assert meltano(env, "run", "tap-ifscloud", "target-looker").returncode == 0
    before = bookmarks(meltano, env)
    sandbox.clock.tick(30)  # changes the next run must bring

    down = {**env, "TARGET_LOOKER_WAREHOUSE_URL": "postgresql://postgres@127.0.0.1:1/nowhere"}
    failed = meltano(down, "run", "tap-ifscloud", "target-looker")
    assert failed.returncode != 0
    assert bookmarks(meltano, env) == before, "a failed load must not move the bookmarks"

    again = meltano(env, "run", "tap-ifscloud", "target-looker")
    assert again.returncode == 0, again.stderr[-3000:]
    assert_warehouse_equals_sandbox(warehouse, sandbox)


def voucher_key(row: dict) -> tuple:
    return tuple(
        row[k] for k in ("company", "voucher_type", "accounting_year", "voucher_no", "row_no")
    )


def test_rewinding_a_bookmark_reloads_the_period_without_duplicates(
    meltano: MeltanoRunner, sandbox_factory, tmp_path
) -> None:
    sandbox: IfsCloudSandbox = sandbox_factory(voucher_rows_per_company=300)
    warehouse = Warehouse(f"duckdb:///{tmp_path / 'w.duckdb'}", "duckdb")
    env = meltano_env(tmp_path, sandbox, warehouse)
    assert meltano(env, "run", "tap-ifscloud", "target-looker").returncode == 0
    loaded = {voucher_key(r): r for r in warehouse.rows("voucher_rows")}

    state = json.loads(meltano(env, "state", "get", STATE_ID).stdout.strip().splitlines()[-1])
    for partition in state["singer_state"]["bookmarks"]["voucher_rows"]["partitions"]:
        partition["replication_key_value"] = "2025-06-01"
    assert meltano(env, "state", "set", "--force", STATE_ID, json.dumps(state)).returncode == 0
    replay = meltano(env, "run", "tap-ifscloud", "target-looker")
    assert replay.returncode == 0, replay.stderr[-3000:]

    runs = sorted(warehouse.rows("_load_runs"), key=lambda r: r["started_at"])
    batches = [b for b in warehouse.rows("_load_batches") if b["run_id"] == runs[-1]["run_id"]]
    reread = sum(b["records_in"] for b in batches if b["stream"] == "voucher_rows")
    start = date(2025, 6, 1) - timedelta(days=3)  # the dev environment's lookback_days
    expected = sum(1 for r in loaded.values() if r["entry_date"] >= start)
    assert reread == expected  # the whole rewound period (with lookback), nothing before it
    after = {voucher_key(r): r for r in warehouse.rows("voucher_rows")}
    assert set(after) == set(loaded)
    assert all(after[k]["_ifs_objversion"] == loaded[k]["_ifs_objversion"] for k in loaded)
    assert_warehouse_equals_sandbox(warehouse, sandbox)

"""`meltano run tap-ifscloud target-looker`, for real: every stream lands, row for row."""

from __future__ import annotations

import json

from ifs_looker_sandboxes.ifs_cloud import IfsCloudSandbox
from tap_ifscloud.streams import BUILTIN_STREAMS

from .conftest import (
    MeltanoRunner,
    Warehouse,
    assert_warehouse_equals_sandbox,
    meltano_env,
)

STATE_ID = "dev:tap-ifscloud-to-target-looker"


def test_run_loads_every_stream_row_for_row_with_bookmarks(
    meltano: MeltanoRunner, ifs_sandbox: IfsCloudSandbox, warehouse: Warehouse, tmp_path
) -> None:
    env = meltano_env(tmp_path, ifs_sandbox, warehouse)
    result = meltano(env, "run", "tap-ifscloud", "target-looker")
    assert result.returncode == 0, result.stderr[-3000:]
    assert_warehouse_equals_sandbox(warehouse, ifs_sandbox)

    state = json.loads(meltano(env, "state", "get", STATE_ID).stdout.strip().splitlines()[-1])
    bookmarks = state["singer_state"]["bookmarks"]
    for stream in BUILTIN_STREAMS:
        partitions = bookmarks[stream.name]["partitions"]
        assert {p["context"]["Company"] for p in partitions} == set(ifs_sandbox.config.companies)
        if stream.is_incremental:
            assert all(p["replication_key_value"] for p in partitions), stream.name

    runs = warehouse.rows("_load_runs")
    assert [r["status"] for r in runs] == ["succeeded"]
    total = sum(
        len(ifs_sandbox.rows(s.projection, e)) for s in BUILTIN_STREAMS for _, e in s.entity_sets()
    )
    assert runs[0]["records_in"] == total


def test_second_run_is_incremental_and_changes_nothing(
    meltano: MeltanoRunner, ifs_sandbox: IfsCloudSandbox, tmp_path
) -> None:
    warehouse = Warehouse(f"duckdb:///{tmp_path / 'w.duckdb'}", "duckdb")
    env = meltano_env(tmp_path, ifs_sandbox, warehouse)
    assert meltano(env, "run", "tap-ifscloud", "target-looker").returncode == 0
    first = {s.name: warehouse.rows(s.name) for s in BUILTIN_STREAMS}
    second = meltano(env, "run", "tap-ifscloud", "target-looker")
    assert second.returncode == 0, second.stderr[-3000:]
    runs = sorted(warehouse.rows("_load_runs"), key=lambda r: r["started_at"])
    assert len(runs) == 2
    assert runs[1]["records_in"] < runs[0]["records_in"] / 2
    assert runs[1]["rows_inserted"] == 0
    for name, rows in first.items():
        again = warehouse.rows(name)
        assert len(again) == len(rows), name
    assert_warehouse_equals_sandbox(warehouse, ifs_sandbox)


def test_run_with_batch_files_loads_the_same_and_leaves_no_file_behind(
    meltano: MeltanoRunner, ifs_sandbox: IfsCloudSandbox, warehouse: Warehouse, tmp_path
) -> None:
    """With the tap's `batch_config`, Meltano relays one BATCH line per file; the target
    loads the files, then deletes them once their records are committed. With one file
    pending at most, the tap waits for each deletion: the pair must not deadlock."""
    batches = tmp_path / "batches"
    env = meltano_env(tmp_path, ifs_sandbox, warehouse)
    env["TAP_IFSCLOUD_BATCH_CONFIG"] = json.dumps(
        {"encoding": {"format": "jsonl"}, "storage": {"root": batches.as_uri()}, "batch_size": 50}
    )
    env["TAP_IFSCLOUD_MAX_PENDING_BATCH_FILES"] = "1"
    result = meltano(env, "run", "tap-ifscloud", "target-looker")
    assert result.returncode == 0, result.stderr[-3000:]
    assert_warehouse_equals_sandbox(warehouse, ifs_sandbox)
    assert batches.is_dir() and not list(batches.iterdir())
    [run] = warehouse.rows("_load_runs")
    assert run["status"] == "succeeded"
    batch_rows = warehouse.rows("_load_batches")
    assert sum(b["records_in"] for b in batch_rows) == run["records_in"] > 0

    # the next run, also from files, is incremental
    again = meltano(env, "run", "tap-ifscloud", "target-looker")
    assert again.returncode == 0, again.stderr[-3000:]
    runs = sorted(warehouse.rows("_load_runs"), key=lambda r: r["started_at"])
    assert runs[1]["records_in"] < runs[0]["records_in"] / 2
    assert_warehouse_equals_sandbox(warehouse, ifs_sandbox)
    assert not list(batches.iterdir())

"""Benchmark target-looker into BigQuery and Snowflake: EMULATOR FIGURES, not the services'.

Loads the voucher-row Singer file of bench_target.py (about 40 columns, fixed seed) with
target-looker into
  - bqemulator (BigQuery REST emulator) through the official google-cloud-bigquery client,
  - fakesnow's server (Snowflake emulator) through the official snowflake-connector-python,
  - DuckDB, embedded, the same file (for scale, in this same run),
and prints seconds, records/s and the target's peak RSS. The emulators run on this
machine (DuckDB inside each), so the figures say how much the target's own work costs
(Parquet staging, statements per batch, memory); the real services add network round
trips and their own job latency (BigQuery: seconds per job; use a large
`batch_size_rows` there), and scale differently.

    .venv/bin/python benchmarks/bench_cloud_targets.py --records 5000     # quick try
    .venv/bin/python benchmarks/bench_cloud_targets.py --records 50000

Needs the emulator environments of `make emulators` (part of `make test`).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench_target import CACHE, PROPERTIES, generate, measure  # noqa: E402

from target_looker.warehouse import open_warehouse  # noqa: E402
from target_looker.warehouse.base import TableRef  # noqa: E402
from tests import emulators  # noqa: E402


def run_target(singer: Path, url: str, work: Path, name: str, batch: int) -> tuple[float, float]:
    config = work / f"{name}.json"
    config.write_text(
        json.dumps(
            {"warehouse_url": url, "default_target_schema": "ifs_cloud", "batch_size_rows": batch}
        )
    )
    exe = Path(sys.executable).parent / "target-looker"
    return measure([str(exe), "--config", str(config)], singer, work / f"{name}.log")


def count_rows(url: str) -> int:
    warehouse = open_warehouse(url)
    warehouse.connect()
    try:
        table = warehouse.qualified(TableRef("ifs_cloud", "voucher_rows"))
        [(count,)] = warehouse.fetchall(f"SELECT count(*) FROM {table}")  # noqa: S608
        return int(count)
    finally:
        warehouse.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=5_000)
    parser.add_argument("--batch-size-rows", type=int, default=10_000)
    args = parser.parse_args()
    n, batch = args.records, args.batch_size_rows
    work = CACHE / "cloud-targets"
    work.mkdir(parents=True, exist_ok=True)
    (CACHE / ".gitignore").write_text("*\n")
    singer = work / f"voucher_rows_{n}.singer"
    generate(singer, work / f"voucher_rows_{n}.csv", n)
    print(
        f"input: {singer} ({singer.stat().st_size / 1e6:.1f} MB, {n} records, "
        f"{len(PROPERTIES)} properties), batch_size_rows {batch}",
        flush=True,
    )
    results: dict[str, tuple[float, float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-emulators-") as tmp:
        for kind, label in (
            ("bigquery", "target-looker -> BigQuery (bqemulator)"),
            ("snowflake", "target-looker -> Snowflake (fakesnow)"),
        ):
            with emulators.running(kind, Path(tmp) / kind) as emulator:
                url = emulators.warehouse_url(emulator, kind, "ifs_cloud")
                results[label] = run_target(singer, url, work, f"tl-{kind}", batch)
                loaded = count_rows(url)
                assert loaded == n, f"{label}: {loaded} rows of {n}"
            print(f"{label}: done", flush=True)
    duck = work / f"bench-{uuid.uuid4().hex[:6]}.duckdb"
    results["target-looker -> DuckDB (embedded, for scale)"] = run_target(
        singer, f"duckdb:///{duck}", work, "tl-duck", batch
    )
    duck.unlink(missing_ok=True)

    print("\nEMULATOR FIGURES: the emulators run locally; real BigQuery/Snowflake differ.")
    print(f"{'loader':<48} {'seconds':>8} {'records/s':>10} {'peak RSS MB':>12}")
    for name, (seconds, rss) in results.items():
        print(f"{name:<48} {seconds:>8.2f} {n / seconds:>10,.0f} {rss:>12.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

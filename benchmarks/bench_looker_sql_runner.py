"""Benchmark `write_path: looker_sql_runner` against the direct PostgreSQL path.

Loads the same Singer file of voucher rows (bench_target.py's generator) twice into
one PostgreSQL database: directly, and through the Looker sandbox's SQL Runner
(login, POST /sql_queries, POST /sql_queries/{slug}/run/json per batch transaction),
and prints records/s of each and the ratio, measured in this run. The sandbox runs
in this process; a real Looker instance adds its own latency and API quotas.

    .venv/bin/python benchmarks/bench_looker_sql_runner.py --records 20000
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_target import PG_ADMIN, generate

from ifs_looker_sandboxes.looker import LookerConfig, LookerSandbox
from target_looker.target import TargetLooker


def load(target_class: type[TargetLooker], config: dict, singer: Path) -> float:
    started = time.perf_counter()
    with singer.open() as lines, contextlib.redirect_stdout(io.StringIO()):
        target_class(config=config).listen(lines)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--batch-size", type=int, default=5_000)
    args = parser.parse_args()
    name = f"bench_sr_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = f"postgresql://postgres@127.0.0.1:5432/{name}"
    try:
        with tempfile.TemporaryDirectory() as tmp:
            singer = Path(tmp) / "records.singer"
            generate(singer, Path(tmp) / "records.csv", args.records)
            direct = load(
                TargetLooker,
                {
                    "warehouse_url": url,
                    "default_target_schema": "direct",
                    "batch_size_rows": args.batch_size,
                },
                singer,
            )
            with LookerSandbox(LookerConfig(connections={"warehouse": url})) as looker:
                runner = load(
                    TargetLooker,
                    {
                        "write_path": "looker_sql_runner",
                        "default_target_schema": "runner",
                        "batch_size_rows": args.batch_size,
                        "looker_base_url": looker.base_url,
                        "looker_client_id": looker.config.client_id,
                        "looker_client_secret": looker.config.client_secret,
                        "looker_connection_name": "warehouse",
                    },
                    singer,
                )
                calls = len(looker.request_log)
        with psycopg.connect(url) as conn:
            counts = [
                conn.execute(f"SELECT count(*) FROM {schema}.voucher_rows").fetchone()[0]  # noqa: S608
                for schema in ("direct", "runner")
            ]
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    print(f"records: {args.records}, batch size {args.batch_size}, rows loaded {counts}")
    rate = args.records / direct
    print(f"direct PostgreSQL (COPY + merge): {rate:10,.0f} records/s ({direct:.2f} s)")
    print(
        f"Looker SQL Runner (sandbox):      {args.records / runner:10,.0f} records/s "
        f"({runner:.2f} s, {calls} API requests)"
    )
    print(f"SQL Runner / direct: {direct / runner:.2f}x the direct rate")
    return 0 if counts[0] == counts[1] == args.records else 1


if __name__ == "__main__":
    sys.exit(main())

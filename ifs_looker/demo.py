"""The README's first command (`make demo`): sandbox + `meltano run` into DuckDB + a summary.

Starts the IFS Cloud sandbox on the dev environment's port, runs
`meltano run tap-ifscloud target-looker` (environment `dev`, warehouse
`output/warehouse.duckdb`), and prints what landed: tables and row counts, the
run id from the audit table, and the bookmark per stream and company.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb

from ifs_looker.sandbox.ifs_cloud import IfsCloudSandbox, SandboxConfig

STATE_ID = "dev:tap-ifscloud-to-target-looker"
WAREHOUSE = Path("output/warehouse.duckdb")
SCHEMA = "ifs_cloud"
IFS_PORT = 8710


def meltano(*args: str, log: Path | None = None) -> subprocess.CompletedProcess:
    """Run the Meltano CLI in the project; its output goes to `log` when given."""
    executable = shutil.which("meltano")
    if executable is None:
        raise SystemExit("meltano is not on PATH: run `make demo` (it installs Meltano)")
    env = {**os.environ, "MELTANO_ENVIRONMENT": "dev"}
    if log is None:
        return subprocess.run([executable, *args], capture_output=True, text=True, env=env)
    with log.open("a") as handle:
        return subprocess.run([executable, *args], stdout=handle, stderr=subprocess.STDOUT, env=env)


def bookmarks() -> list[tuple[str, str, str, str]]:
    """(stream, company, replication key, value) from Meltano's state for the dev job."""
    result = meltano("state", "get", STATE_ID)
    if result.returncode != 0 or not result.stdout.strip():
        return []
    state = json.loads(result.stdout.strip().splitlines()[-1])["singer_state"]
    out = []
    for stream, entry in sorted(state.get("bookmarks", {}).items()):
        for partition in entry.get("partitions", []):
            company = partition.get("context", {}).get("Company", "")
            key = partition.get("replication_key", "(full table)")
            out.append((stream, company, key, str(partition.get("replication_key_value", "-"))))
    return out


def summary() -> str:
    lines = []
    with duckdb.connect(str(WAREHOUSE), read_only=True) as con:
        run_id, status, records = con.execute(
            f'SELECT run_id, status, records_in FROM "{SCHEMA}"."_load_runs" '  # noqa: S608
            "ORDER BY started_at DESC LIMIT 1"
        ).fetchone()
        lines.append(f"Run {run_id}: {status}, {records} records in -> {WAREHOUSE} ({SCHEMA})")
        tables = [
            name
            for (name,) in con.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = ? "
                "AND table_name NOT LIKE '\\_%' ESCAPE '\\' ORDER BY 1",
                [SCHEMA],
            ).fetchall()
        ]
        lines.append(f"  {'table':<22}{'rows':>8}")
        for name in tables:
            (count,) = con.execute(f'SELECT count(*) FROM "{SCHEMA}"."{name}"').fetchone()  # noqa: S608
            lines.append(f"  {name:<22}{count:>8}")
    lines.append(f"Bookmarks (meltano state get {STATE_ID}):")
    for stream, company, key, value in bookmarks():
        lines.append(f"  {stream:<22}{company:<6}{key:<14}{value}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--voucher-rows", type=int, default=600, help="GL rows per company")
    parser.add_argument(
        "--summary", action="store_true", help="only print what the warehouse holds now"
    )
    args = parser.parse_args(argv)
    if args.summary:
        print(summary())
        return 0
    if not Path("meltano.yml").exists():
        raise SystemExit("run the demo from the project folder (where meltano.yml is)")
    WAREHOUSE.parent.mkdir(exist_ok=True)
    log = WAREHOUSE.parent / "demo-meltano.log"
    log.write_text("")
    config = SandboxConfig(voucher_rows_per_company=args.voucher_rows)
    try:
        sandbox = IfsCloudSandbox(config, port=IFS_PORT).start()
    except OSError as exc:
        raise SystemExit(
            f"cannot start the IFS sandbox on port {IFS_PORT}: {exc.strerror}"
        ) from None
    print(f"IFS Cloud sandbox: {sandbox.base_url} (companies {', '.join(config.companies)})")
    try:
        if not Path(".meltano/.installed").exists():
            print("meltano install ...", flush=True)
            if meltano("install", log=log).returncode != 0:
                print(f"meltano install failed; see {log}", file=sys.stderr)
                return 1
        if not WAREHOUSE.exists() and bookmarks():
            # A new warehouse with old bookmarks would get only the changes: start over.
            print(f"{WAREHOUSE} is new: clearing the bookmarks of {STATE_ID}", flush=True)
            meltano("state", "clear", "--force", STATE_ID, log=log)
        print("meltano run tap-ifscloud target-looker ...", flush=True)
        if meltano("run", "tap-ifscloud", "target-looker", log=log).returncode != 0:
            print(f"meltano run failed; see {log}", file=sys.stderr)
            return 1
    finally:
        sandbox.stop()
    print(summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())

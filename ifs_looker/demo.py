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

from ifs_looker_core.defaults import DEFAULT_TARGET_SCHEMA
from ifs_looker_sandboxes.ifs_cloud import IfsCloudSandbox, SandboxConfig
from ifs_looker_sandboxes.looker import (
    DEFAULT_CONNECTION,
    DEFAULT_MODEL,
    LookerConfig,
    LookerSandbox,
)

STATE_ID = "dev:tap-ifscloud-to-target-looker"
WAREHOUSE = Path("output/warehouse.duckdb")
SCHEMA = DEFAULT_TARGET_SCHEMA
IFS_PORT = 8710
LOOKER_PORT = 8720
LOOKML = WAREHOUSE.parent / "lookml"


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
    state = json.loads(result.stdout.strip().splitlines()[-1]).get("singer_state", {})
    out = []
    for stream, entry in sorted(state.get("bookmarks", {}).items()):
        for partition in entry.get("partitions", []):
            company = partition.get("context", {}).get("Company", "")
            key = partition.get("replication_key", "(full table)")
            out.append((stream, company, key, str(partition.get("replication_key_value", "-"))))
    return out


def looker_summary(actions: object) -> str:
    """One line on what the run told Looker (from `_load_runs.looker_actions`)."""
    if not actions:
        return "nothing recorded"
    detail = json.loads(actions) if isinstance(actions, str) else actions
    if detail.get("status") == "skipped":
        return f"skipped ({detail.get('reason')})"
    groups = ", ".join(f"{d['datagroup']} {d['status']}" for d in detail.get("datagroups", []))
    pdts = ", ".join(f"{p['pdt']} {p['status']}" for p in detail.get("pdts", []))
    files = len(detail.get("lookml", []))
    return (
        f"{detail.get('status')}; datagroups: {groups or '-'}; PDTs: {pdts or '-'}; "
        f"LookML files written: {files}"
    )


def summary() -> str:
    lines = []
    with duckdb.connect(str(WAREHOUSE), read_only=True) as con:
        run_id, status, records, actions = con.execute(
            "SELECT run_id, status, records_in, looker_actions FROM ifs_cloud._load_runs "
            "ORDER BY started_at DESC LIMIT 1"
        ).fetchone()
        lines.append(f"Run {run_id}: {status}, {records} records in -> {WAREHOUSE} ({SCHEMA})")
        lines.append(f"Looker: {looker_summary(actions)}")
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
    looker_config = LookerConfig(connections={DEFAULT_CONNECTION: f"duckdb:///{WAREHOUSE}"})
    try:
        sandbox = IfsCloudSandbox(config, port=IFS_PORT).start()
        looker = LookerSandbox(looker_config, port=LOOKER_PORT, lookml_dirs={DEFAULT_MODEL: LOOKML})
        looker.start()
    except OSError as exc:
        raise SystemExit(
            f"cannot start the sandboxes on ports {IFS_PORT}/{LOOKER_PORT}: {exc.strerror} "
            "(is `ifs-looker sandbox` running?)"
        ) from None
    print(f"IFS Cloud sandbox: {sandbox.base_url} (companies {', '.join(config.companies)})")
    print(f"Looker sandbox:    {looker.base_url} (connection {DEFAULT_CONNECTION})")
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
        looker.stop()
    print(summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())

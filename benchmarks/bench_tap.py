"""tap-ifscloud throughput and memory against a plain `requests` + JSON loop.

    python benchmarks/bench_tap.py                 # one million voucher rows, one company
    python benchmarks/bench_tap.py --rows 200000
    python benchmarks/bench_tap.py --rows 200000 --batch-files   # batch_config: jsonl files

Starts the IFS Cloud sandbox in this process, runs `tap-ifscloud` as a subprocess
(voucher_rows only, stdout to /dev/null) and then, also as a subprocess so both
compete equally with the sandbox, a plain loop that GETs the very pages the tap
requested and parses them with `response.json()`. Prints records/s of both, the
ratio (target: the tap reaches at least half of the loop), the CPU time each spends
per record (user + system, all threads; steadier than records/s on a busy machine)
and the tap's peak RSS (target: under 300 MB).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

PROJECTION, ENTITY_SET = "VoucherRowsAnalysis", "VoucherRowSet"


def reference_loop(urls_file: str) -> int:
    """The limit: fetch the same pages and parse them, nothing else."""
    spec = json.loads(Path(urls_file).read_text())
    session = requests.Session()
    token = session.post(
        spec["token_url"],
        data={
            "grant_type": "client_credentials",
            "client_id": spec["client_id"],
            "client_secret": spec["client_secret"],
        },
        timeout=60,
    ).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    rows = 0
    started = time.perf_counter()
    cpu_started = time.process_time()
    for url in spec["urls"]:
        response = session.get(url, headers=headers, timeout=300)
        response.raise_for_status()
        rows += len(response.json()["value"])
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    print(json.dumps({"rows": rows, "seconds": elapsed, "cpu_seconds": cpu}))
    return 0


def run_measured(argv: list[str], stdout, stderr) -> tuple[float, int, int, float]:
    """Wall seconds, exit code, peak RSS (MB) and CPU seconds (user + system) of one
    child process.

    The peak is the child's own VmHWM, sampled until it exits: `ru_maxrss` of a
    child also counts the parent's pages it shared between fork and exec, and
    this parent holds the whole sandbox.
    """
    started = time.perf_counter()
    process = subprocess.Popen(argv, stdout=stdout, stderr=stderr)
    peak_kb = 0
    status_file = Path(f"/proc/{process.pid}/status")
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            break
        try:
            for line in status_file.read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak_kb = max(peak_kb, int(line.split()[1]))
        except (FileNotFoundError, ProcessLookupError):
            pass
        time.sleep(0.02)
    elapsed = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    return elapsed, process.returncode, peak_kb // 1024, usage.ru_utime + usage.ru_stime


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="voucher rows (one company)")
    parser.add_argument("--page-size", type=int, default=5000)
    parser.add_argument(
        "--batch-files", action="store_true", help="records to batch files (batch_config)"
    )
    parser.add_argument("--reference-loop", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.reference_loop:
        return reference_loop(args.reference_loop)

    from ifs_looker_sandboxes.ifs_cloud import IfsCloudSandbox, SandboxConfig

    config = SandboxConfig(
        companies=("US01",),
        voucher_rows_per_company=args.rows,
        orders_per_company=1,
        invoices_per_company=1,
    )
    print(f"generating {args.rows:,} voucher rows ...", file=sys.stderr)
    started = time.perf_counter()
    sandbox = IfsCloudSandbox(config).start()
    table = sandbox.store.table(PROJECTION, ENTITY_SET)
    total_rows = len(table.rows)
    print(f"sandbox ready in {time.perf_counter() - started:.1f} s", file=sys.stderr)

    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        tap_config = {
            "base_url": sandbox.base_url,
            "token_url": sandbox.token_url,
            "client_id": config.client_id,
            "client_secret": config.client_secret,
            "companies": ["US01"],
            "page_size": args.page_size,
        }
        if args.batch_files:
            tap_config["batch_config"] = {
                "encoding": {"format": "jsonl"},
                "storage": {"root": (tmp_path / "batches").as_uri()},
            }
            tap_config["max_pending_batch_files"] = 0  # no target here loads the files
        (tmp_path / "config.json").write_text(json.dumps(tap_config))
        (tmp_path / "catalog.json").write_text(json.dumps(voucher_rows_catalog(tap_config)))
        log_path = tmp_path / "tap.log"
        with open(os.devnull, "wb") as devnull, open(log_path, "wb") as log:
            seconds, code, peak_mb, tap_cpu = run_measured(
                [
                    sys.executable,
                    "-m",
                    "tap_ifscloud.tap",
                    "--config",
                    str(tmp_path / "config.json"),
                    "--catalog",
                    str(tmp_path / "catalog.json"),
                ],
                devnull,
                log,
            )
        log_text = log_path.read_text()
        if code != 0:
            print(log_text[-3000:], file=sys.stderr)
            return 1
        tap_records = sum(
            int(m)
            for m in re.findall(
                r'"metric":"record_count","value":(\d+),"tags":\{"stream":"voucher_rows"', log_text
            )
        )

        urls = [
            sandbox.base_url + path
            for method, path, status in list(sandbox.request_log)
            if method == "GET" and status == 200 and f"/{ENTITY_SET}?" in path
        ]
        (tmp_path / "urls.json").write_text(
            json.dumps(
                {
                    "urls": urls,
                    "token_url": sandbox.token_url,
                    "client_id": config.client_id,
                    "client_secret": config.client_secret,
                }
            )
        )
        reference = subprocess.run(
            [sys.executable, __file__, "--reference-loop", str(tmp_path / "urls.json")],
            capture_output=True,
            text=True,
            check=True,
        )
        loop = json.loads(reference.stdout.strip().splitlines()[-1])
        batch_mb = sum(f.stat().st_size for f in tmp_path.glob("batches/*")) / 2**20
    sandbox.stop()

    tap_rate = tap_records / seconds
    loop_rate = loop["rows"] / loop["seconds"]
    print(f"voucher rows in sandbox:   {total_rows:,}")
    print(f"tap records emitted:       {tap_records:,} in {seconds:.1f} s (process wall time)")
    print(f"pages requested:           {len(urls)}")
    print(f"tap:                       {tap_rate:,.0f} records/s")
    print(f"requests + JSON loop:      {loop_rate:,.0f} records/s ({loop['rows']:,} rows)")
    print(f"tap / loop:                {tap_rate / loop_rate:.2f} (target >= 0.50)")
    print(
        f"CPU per record:            tap {tap_cpu / max(tap_records, 1) * 1e6:.1f} µs "
        f"({tap_cpu:.1f} s, start-up included), loop "
        f"{loop['cpu_seconds'] / max(loop['rows'], 1) * 1e6:.1f} µs"
    )
    print(f"tap peak RSS:              {peak_mb} MB (target < 300 MB)")
    if args.batch_files:
        print(f"batch files:               {batch_mb:,.0f} MB")
    ok = tap_records == total_rows and tap_rate >= 0.5 * loop_rate and peak_mb < 300
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


def voucher_rows_catalog(config: dict) -> dict:
    """The discovered catalog with only voucher_rows selected."""
    from tap_ifscloud.tap import TapIFSCloud

    catalog = TapIFSCloud(config=config, setup_mapper=False).catalog_dict
    for entry in catalog["streams"]:
        for item in entry["metadata"]:
            if item["breadcrumb"] == []:
                item["metadata"]["selected"] = entry["tap_stream_id"] == "voucher_rows"
    return catalog


if __name__ == "__main__":
    sys.exit(main())

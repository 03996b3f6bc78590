"""How fast does the IFS Cloud sandbox serve voucher rows as OData JSON?

Starts `ifs-looker sandbox` as its own process with N voucher rows, then pages
through them the way the tap does (key-set paging, `$top` 5000, ordered by
EntryDate and the keys) and prints rows/s of wall time and rows per CPU-second
of the sandbox process (the "one core" figure; target >= 150,000), with the
sandbox's start-up time and RSS and its peak RSS. The CPU counted starts at the first
request, so the first page carries what a scan builds once (the order's index).
Run: `python benchmarks/bench_sandbox.py --rows 1000000`.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

import msgspec
import requests

KEYS = ("Company", "VoucherType", "AccountingYear", "VoucherNo", "RowNo")
ORDER = ("EntryDate", *KEYS)


def literal(value: object) -> str:
    if isinstance(value, str) and len(value) == 10 and value[4] == "-" and value[7] == "-":
        return value  # Edm.Date literals are unquoted
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return str(value)


def keyset_filter(last: dict[str, object]) -> str:
    """(f1 gt v1) or (f1 eq v1 and ((f2 gt v2) or ...)) over the whole order."""
    clause = ""
    for name in reversed(ORDER):
        this = f"{name} gt {literal(last[name])}"
        clause = (
            this if not clause else f"({this} or ({name} eq {literal(last[name])} and {clause}))"
        )
    return clause


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--page-size", type=int, default=5000)
    args = parser.parse_args()

    started = time.perf_counter()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ifs_looker.cli",
            "sandbox",
            "--port",
            "0",
            "--companies",
            "US01",
            "--voucher-rows",
            str(args.rows),
            "--no-looker",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        banner = server.stdout.readline()  # type: ignore[union-attr]
        base_url = banner.split(" on ", 1)[1].split()[0]
        print(
            f"sandbox ready in {time.perf_counter() - started:.1f} s, "
            f"{peak_rss_mb(server.pid):,.0f} MB: {base_url}"
        )
        session = requests.Session()
        token = session.post(
            f"{base_url}/auth/realms/ifsdemo/protocol/openid-connect/token",
            data={
                "grant_type": "client_credentials",
                "client_id": "ifs-looker-sandbox",
                "client_secret": "sandbox-secret",
            },
            timeout=30,
        ).json()["access_token"]
        session.headers["Authorization"] = f"Bearer {token}"
        url = f"{base_url}/main/ifsapplications/projection/v1/VoucherRowsAnalysis.svc/VoucherRowSet"
        decoder = msgspec.json.Decoder()
        base_filter = "Company eq 'US01'"
        last: dict[str, object] | None = None
        rows = pages = nbytes = 0
        first_page = (0.0, 0.0)
        cpu_before = cpu_seconds(server.pid)
        t0 = time.perf_counter()
        while True:
            flt = base_filter if last is None else f"{base_filter} and ({keyset_filter(last)})"
            response = session.get(
                url,
                params={
                    "$filter": flt,
                    "$orderby": ",".join(ORDER),
                    "$top": str(args.page_size),
                },
                timeout=120,
            )
            response.raise_for_status()
            page = decoder.decode(response.content)["value"]
            rows += len(page)
            pages += 1
            if pages == 1:
                first_page = (time.perf_counter() - t0, cpu_seconds(server.pid) - cpu_before)
            nbytes += len(response.content)
            if len(page) < args.page_size:
                break
            last = page[-1]
        wall = time.perf_counter() - t0
        cpu = cpu_seconds(server.pid) - cpu_before
        print(f"rows served           {rows:,} in {pages} pages, {nbytes / 1e6:,.0f} MB of JSON")
        print(f"wall time             {wall:.1f} s  -> {rows / wall:,.0f} rows/s (client included)")
        print(
            f"sandbox CPU time      {cpu:.1f} s  -> {rows / cpu:,.0f} rows per CPU-second "
            f"(target >= 150,000 on one core)"
        )
        steady_rows = rows - args.page_size
        steady_cpu = cpu - first_page[1]
        print(
            f"  first page          {first_page[1]:.2f} s CPU (builds the scan's index once)"
            f"\n  after the first     {steady_rows / steady_cpu:,.0f} rows per CPU-second"
        )
        print(f"sandbox peak RSS      {peak_rss_mb(server.pid):,.0f} MB")
    finally:
        server.terminate()
        server.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark target-looker against meltanolabs-target-postgres and PostgreSQL COPY.

Generates a Singer file of voucher rows (about 40 columns, fixed seed), then loads
the same file:
  - target-looker into PostgreSQL and into DuckDB,
  - meltanolabs-target-postgres (PyPI, installed into its own virtualenv under
    .bench/, the peer),
  - PostgreSQL COPY of the same rows from CSV (the limit),
and prints records/s and peak RSS of each, measured in this run.

    .venv/bin/python benchmarks/bench_target.py --records 20000     # quick try
    .venv/bin/python benchmarks/bench_target.py                      # 200,000 records
    .venv/bin/python benchmarks/bench_target.py --generate-only      # the input file alone

Targets: target-looker on PostgreSQL >= 10x the peer and >= 1/3 of the COPY rate;
peak RSS under 400 MB.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import decimal
import json
import os
import random
import subprocess
import sys
import time
import venv
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".bench"
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
PEER_PACKAGE = "meltanolabs-target-postgres>=0.6,<1"
STREAM = "voucher_rows"
SIX_PLACES = decimal.Decimal("0.000001")
KEYS = ["Company", "VoucherType", "AccountingYear", "VoucherNo", "RowNo"]

_NUM = {"type": ["number", "null"]}
_STR = {"type": ["string", "null"]}
PROPERTIES: dict[str, dict] = {
    "Company": {"type": "string", "maxLength": 20},
    "VoucherType": {"type": "string", "maxLength": 3},
    "AccountingYear": {"type": "integer"},
    "VoucherNo": {"type": "integer"},
    "RowNo": {"type": "integer"},
    "VoucherDate": {"type": ["string", "null"], "format": "date"},
    "EntryDate": {"type": ["string", "null"], "format": "date-time"},
    "AccountingPeriod": {"type": ["integer", "null"]},
    "Account": {"type": ["string", "null"], "maxLength": 20},
    "AccountDesc": _STR,
    **{f"Code{c}": {"type": ["string", "null"], "maxLength": 20} for c in "BCDEFGHIJ"},
    "CodeBDesc": _STR,
    "CodeCDesc": _STR,
    "DebetAmount": _NUM,
    "CreditAmount": _NUM,
    "Amount": _NUM,
    "CurrencyDebetAmount": _NUM,
    "CurrencyCreditAmount": _NUM,
    "CurrencyAmount": _NUM,
    "CurrencyCode": {"type": ["string", "null"], "maxLength": 3},
    "CurrencyRate": _NUM,
    "Quantity": _NUM,
    "Text": _STR,
    "ProcessCode": _STR,
    "OptionalCode": _STR,
    "TransCode": _STR,
    "PartyType": {"type": ["string", "null"], "enum": ["Customer", "Supplier", "Company", None]},
    "Objstate": _STR,
    "CorrectionFlag": {"type": ["boolean", "null"]},
    "Objkey": _STR,
    "_ifs_etag": _STR,
    "_ifs_objversion": _STR,
}


def make_record(rng: random.Random, i: int) -> dict:
    voucher, row = divmod(i, 4)
    amount = decimal.Decimal(rng.randrange(-(10**12), 10**12)) / decimal.Decimal(10**6)
    rate = decimal.Decimal(rng.randrange(5 * 10**5, 2 * 10**6)) / decimal.Decimal(10**6)
    currency = (amount * rate).quantize(SIX_PLACES)
    day = datetime.date(2025, 1, 1) + datetime.timedelta(days=voucher % 365)
    codes = {f"Code{c}": f"{c}{rng.randrange(100):03d}" for c in "BCDEFGHIJ"}
    objversion = f"{day:%Y%m%d}{rng.randrange(240000):06d}"
    return {
        "Company": f"C{voucher % 7:02d}",
        "VoucherType": "GJ",
        "AccountingYear": day.year,
        "VoucherNo": voucher,
        "RowNo": row + 1,
        "VoucherDate": day.isoformat(),
        "EntryDate": f"{day.isoformat()}T{rng.randrange(24):02d}:{rng.randrange(60):02d}:00+01:00",
        "AccountingPeriod": day.month,
        "Account": str(1000 + rng.randrange(9000)),
        "AccountDesc": f"Account description {rng.randrange(500)}",
        **codes,
        "CodeBDesc": f"Cost centre {codes['CodeB']}",
        "CodeCDesc": f"Project {codes['CodeC']} - Größe",
        "DebetAmount": amount if amount > 0 else None,
        "CreditAmount": -amount if amount < 0 else None,
        "Amount": amount,
        "CurrencyDebetAmount": currency if amount > 0 else None,
        "CurrencyCreditAmount": -currency if amount < 0 else None,
        "CurrencyAmount": currency,
        "CurrencyCode": rng.choice(["EUR", "USD", "SEK", "GBP"]),
        "CurrencyRate": rate,
        "Quantity": decimal.Decimal(rng.randrange(0, 10**6)) / 1000,
        "Text": rng.choice(["Invoice 'ACME' \"rush\"", "Accrual", "Ström & co", None]),
        "ProcessCode": None,
        "OptionalCode": f"O{rng.randrange(10)}",
        "TransCode": "MANUAL",
        "PartyType": rng.choice(["Customer", "Supplier", None]),
        "Objstate": "Posted",
        "CorrectionFlag": rng.random() < 0.01,
        "Objkey": f"{rng.getrandbits(64):016X}",
        "_ifs_etag": f'W/"{rng.getrandbits(48):012x}"',
        "_ifs_objversion": objversion,
    }


def _dumps(value: dict) -> str:
    """JSON with Decimals as exact numbers (the json module would go through float)."""
    parts = []
    for k, v in value.items():
        encoded = str(v) if isinstance(v, decimal.Decimal) else json.dumps(v, ensure_ascii=False)
        parts.append(f"{json.dumps(k)}: {encoded}")
    return "{" + ", ".join(parts) + "}"


def generate(singer_path: Path, csv_path: Path, records: int, seed: int = 42) -> None:
    """Write the Singer file (SCHEMA, RECORDs, STATE every 10,000) and the same rows as CSV."""
    if singer_path.exists() and csv_path.exists():
        return
    rng = random.Random(seed)
    extracted = "2026-01-01T00:00:00+00:00"
    schema = {
        "type": "SCHEMA",
        "stream": STREAM,
        "key_properties": KEYS,
        "bookmark_properties": ["VoucherDate"],
        "schema": {"type": "object", "properties": PROPERTIES},
    }
    with (
        singer_path.open("w", encoding="utf-8") as singer,
        csv_path.open("w", encoding="utf-8", newline="") as raw_csv,
    ):
        rows = csv.writer(raw_csv)
        singer.write(json.dumps(schema) + "\n")
        for i in range(records):
            record = make_record(rng, i)
            singer.write(
                f'{{"type": "RECORD", "stream": "{STREAM}", "record": {_dumps(record)}, '
                f'"time_extracted": "{extracted}"}}\n'
            )
            rows.writerow(["" if v is None else v for v in record.values()])
            if (i + 1) % 10_000 == 0 or i + 1 == records:
                state = {"bookmarks": {STREAM: {"replication_key_value": i + 1}}}
                singer.write(json.dumps({"type": "STATE", "value": state}) + "\n")


def measure(cmd: list[str], stdin_path: Path, log_path: Path) -> tuple[float, float]:
    """Run `cmd` with the file on stdin: (seconds, peak RSS in MB) of that process."""
    with stdin_path.open("rb") as stdin, log_path.open("wb") as log:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdin=stdin, stdout=subprocess.DEVNULL, stderr=log)
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        tail = log_path.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"{cmd[0]} exited {proc.returncode}:\n{tail}")
    return elapsed, usage.ru_maxrss / 1024


def fresh_database(name: str) -> str:
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"postgresql://postgres@127.0.0.1:5432/{name}"


def count_rows(url: str, table: str) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # noqa: S608


def run_target_looker(singer: Path, url: str, work: Path, name: str) -> tuple[float, float]:
    config = work / f"{name}.json"
    config.write_text(json.dumps({"warehouse_url": url, "default_target_schema": "ifs_cloud"}))
    exe = Path(sys.executable).parent / "target-looker"
    return measure([str(exe), "--config", str(config)], singer, work / f"{name}.log")


def peer_executable() -> Path:
    """meltanolabs-target-postgres in its own virtualenv under .bench/ (created once)."""
    env_dir = CACHE / "peer-venv"
    exe = env_dir / "bin" / "target-postgres"
    if not exe.exists():
        print(f"installing {PEER_PACKAGE} into {env_dir} ...", flush=True)
        venv.create(env_dir, with_pip=True)
        subprocess.run(
            [str(env_dir / "bin" / "pip"), "install", "--quiet", PEER_PACKAGE], check=True
        )
    return exe


def run_peer(singer: Path, url_db: str, work: Path) -> tuple[float, float]:
    config = work / "peer.json"
    config.write_text(
        json.dumps(
            {
                "host": "127.0.0.1",
                "port": 5432,
                "user": "postgres",
                "password": "",
                "database": url_db,
                "default_target_schema": "ifs_cloud",
                "load_method": "upsert",
            }
        )
    )
    return measure([str(peer_executable()), "--config", str(config)], singer, work / "peer.log")


def run_copy(csv_path: Path, url: str) -> float:
    """COPY the same rows from CSV into a table like target-looker's (same types, key)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA IF NOT EXISTS copy_limit")
        columns = ", ".join(f'"{name}" {pg_type(spec)}' for name, spec in PROPERTIES.items())
        keys = ", ".join(f'"{k}"' for k in KEYS)
        conn.execute(f"CREATE TABLE copy_limit.voucher_rows ({columns}, PRIMARY KEY ({keys}))")
        start = time.perf_counter()
        with (
            conn.cursor() as cur,
            cur.copy("COPY copy_limit.voucher_rows FROM STDIN (FORMAT csv)") as copy,
            csv_path.open("rb") as data,
        ):
            while chunk := data.read(1 << 20):
                copy.write(chunk)
        return time.perf_counter() - start


def pg_type(spec: dict) -> str:
    types = spec["type"] if isinstance(spec["type"], list) else [spec["type"]]
    if "integer" in types:
        return "BIGINT"
    if "number" in types:
        return "NUMERIC"
    if "boolean" in types:
        return "BOOLEAN"
    return {"date": "DATE", "date-time": "TIMESTAMPTZ"}.get(spec.get("format"), "TEXT")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--skip-peer", action="store_true", help="omit meltanolabs-target-postgres")
    parser.add_argument(
        "--generate-only",
        action="store_true",
        help="only write the input file (if it is missing) and print its path: for profiling",
    )
    args = parser.parse_args()
    n = args.records
    work = CACHE / "target"
    work.mkdir(parents=True, exist_ok=True)
    (CACHE / ".gitignore").write_text("*\n")  # keep the cache (and the peer's venv) out of git
    singer = work / f"voucher_rows_{n}.singer"
    rows_csv = work / f"voucher_rows_{n}.csv"
    generate(singer, rows_csv, n)
    print(
        f"input: {singer} ({singer.stat().st_size / 1e6:.0f} MB, {n} records, "
        f"{len(PROPERTIES)} properties)",
        flush=True,
    )
    if args.generate_only:
        return 0

    results: dict[str, tuple[float, float]] = {}
    url = fresh_database("bench_target_looker")
    results["target-looker -> PostgreSQL"] = run_target_looker(singer, url, work, "tl-pg")
    assert count_rows(url, "ifs_cloud.voucher_rows") == n, "target-looker lost rows"
    duck = work / "bench.duckdb"
    duck.unlink(missing_ok=True)
    results["target-looker -> DuckDB"] = run_target_looker(
        singer, f"duckdb:///{duck}", work, "tl-duck"
    )
    copy_url = fresh_database("bench_target_copy")
    results["PostgreSQL COPY from CSV (limit)"] = (run_copy(rows_csv, copy_url), float("nan"))
    assert count_rows(copy_url, "copy_limit.voucher_rows") == n
    if not args.skip_peer:
        peer_url = fresh_database("bench_target_peer")
        results["meltanolabs-target-postgres (peer)"] = run_peer(singer, "bench_target_peer", work)
        assert count_rows(peer_url, "ifs_cloud.voucher_rows") == n, "peer lost rows"

    print(f"\n{'loader':<38} {'seconds':>8} {'records/s':>10} {'peak RSS MB':>12}")
    for name, (seconds, rss) in results.items():
        print(f"{name:<38} {seconds:>8.2f} {n / seconds:>10,.0f} {rss:>12.0f}")
    tl_pg = results["target-looker -> PostgreSQL"][0]
    copy_s = results["PostgreSQL COPY from CSV (limit)"][0]
    print(f"\ntarget-looker PostgreSQL rate / COPY rate: {copy_s / tl_pg:.2f} (target >= 0.33)")
    if "meltanolabs-target-postgres (peer)" in results:
        peer_s = results["meltanolabs-target-postgres (peer)"][0]
        print(f"target-looker PostgreSQL speed-up over peer: {peer_s / tl_pg:.1f}x (target >= 10x)")
    worst = max(rss for name, (_, rss) in results.items() if name.startswith("target-looker"))
    print(f"target-looker peak RSS: {worst:.0f} MB (target < 400 MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

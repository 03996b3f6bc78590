"""End to end: `meltano run tap-ifscloud target-looker` of N voucher rows, and the parts alone.

Starts the IFS Cloud sandbox in a process of its own with N GL voucher rows (one company
by default), then, in a temporary Meltano project (a copy of this project's meltano.yml,
with the installed plugins of `.meltano/` linked in; its own system database and run
directory, so this project's `.meltano/` is left alone):

  1. the tap alone, `meltano invoke tap-ifscloud` into a file,
  2. per warehouse (a fresh PostgreSQL database, made and dropped here; a DuckDB file):
     the target alone from that file (`meltano invoke target-looker`), then
     `meltano run tap-ifscloud target-looker` into another fresh warehouse,
  3. the sandbox changes data (1,000 changes of its mutation clock, asked for on the
     sandbox process's stdin), then a second, incremental `meltano run` per warehouse.

Each `meltano run` is made per transport (`--transports`): `records`, RECORD lines that
Meltano relays one by one, and `batch`, the tap's `batch_config` (jsonl files in the
work directory; BATCH messages name them, the target loads and deletes them; the most
they held on disk at once is printed, `--max-pending-batch-files` sets the tap's bound).

Prints wall time, records/s and the peak RSS and CPU time of the tap and the target
(their processes found by name below Meltano's, VmHWM sampled from /proc), and how
much of the tap's and the target's time the pipeline overlaps. Needs PostgreSQL on
127.0.0.1:5432 with trust authentication and `make` having installed Meltano and the
plugins (`.venv-meltano`, `.meltano/`).

    .venv/bin/python benchmarks/bench_e2e.py --rows 20000          # quick try
    .venv/bin/python benchmarks/bench_e2e.py                       # 1,000,000 rows

Goals (SPEC section 10): 1M rows in <= 30 s with tap + target <= 400 MB on 2 cores; the
incremental run after 1,000 changes <= 10 s.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ifs_looker_core.batch_files import local_path

ROOT = Path(__file__).resolve().parent.parent
MELTANO = ROOT / ".venv-meltano" / "bin" / "meltano"
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
SCHEMA = "ifs_cloud"
ROLES = ("tap-ifscloud", "target-looker")
MELTANO_ROLE = "meltano"
TICK = os.sysconf("SC_CLK_TCK")
TRANSPORTS = {"records": "", "batch": ", batch files"}  # how each shows in a run's name


# the sandbox, in a process of its own ------------------------------------------------------------


def serve_sandbox(rows: int, companies: list[str]) -> int:
    """`--serve-sandbox`: serve until stdin closes; `mutate N` applies N changes now."""
    sys.path.insert(0, str(ROOT))
    from ifs_looker_sandboxes.ifs_cloud import IfsCloudSandbox, SandboxConfig

    config = SandboxConfig(
        companies=tuple(companies), voucher_rows_per_company=rows // len(companies)
    )
    started = time.perf_counter()
    sandbox = IfsCloudSandbox(config).start()
    print(f"ready {sandbox.base_url} {time.perf_counter() - started:.2f}", flush=True)
    try:
        for line in sys.stdin:
            command = line.split()
            if command[:1] == ["mutate"]:
                changed = sandbox.mutate(int(command[1]))
                print(f"mutated {changed}", flush=True)
            elif command[:1] == ["quit"]:
                break
    finally:
        sandbox.stop()
    return 0


class Sandbox:
    """The sandbox process, driven over its stdin."""

    def __init__(self, rows: int, companies: list[str]) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--serve-sandbox",
                "--rows",
                str(rows),
                "--companies",
                ",".join(companies),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        banner = self._line()
        _, self.base_url, seconds = banner.split()
        self.startup_seconds = float(seconds)

    def _line(self) -> str:
        line = self.proc.stdout.readline()  # type: ignore[union-attr]
        if not line:
            raise RuntimeError(f"the sandbox exited ({self.proc.wait()})")
        return line.strip()

    def mutate(self, count: int) -> int:
        self.proc.stdin.write(f"mutate {count}\n")  # type: ignore[union-attr]
        self.proc.stdin.flush()  # type: ignore[union-attr]
        return int(self._line().split()[1])

    def cpu_seconds(self) -> float:
        return _cpu_seconds(self.proc.pid)

    def peak_rss_mb(self) -> float:
        return _status(self.proc.pid).get("VmHWM", 0) / 1024

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self.proc.stdin.write("quit\n")  # type: ignore[union-attr]
            self.proc.stdin.close()  # type: ignore[union-attr]
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# processes below Meltano's: peak RSS and CPU, sampled from /proc ---------------------------------


def _status(pid: int) -> dict[str, int]:
    try:
        with open(f"/proc/{pid}/status") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return {}
    found = {}
    for line in lines:
        name, _, value = line.partition(":")
        if name in ("VmHWM", "VmRSS"):
            found[name] = int(value.split()[0])  # kB
    return found


def _stat(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()
    except OSError:
        return None


def _cpu_seconds(pid: int) -> float:
    fields = _stat(pid)
    return (int(fields[11]) + int(fields[12])) / TICK if fields else 0.0


def _role(pid: int) -> str | None:
    """tap-ifscloud or target-looker when the process runs one (not Meltano itself)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            argv = [a.decode(errors="replace") for a in handle.read().split(b"\0") if a]
    except OSError:
        return None
    names = [os.path.basename(a) for a in argv[:2]]
    if "meltano" in names:
        return None
    return next((role for role in ROLES if role in names), None)


@dataclass
class Usage:
    """Peak RSS (MB) and CPU seconds per role, over every process that played it."""

    peak_mb: dict[str, float] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)
    _cpu_by_pid: dict[int, tuple[str, float]] = field(default_factory=dict)
    _meltano_cpu: float = 0.0
    batch_files_mb: float = 0.0  # the most the batch directory held at once

    def sample(self, root: int, batch_dir: Path | None = None) -> None:
        if batch_dir is not None:
            self.batch_files_mb = max(self.batch_files_mb, _directory_mb(batch_dir))
        children: dict[int, list[int]] = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                fields = _stat(int(entry))
                if fields:
                    children.setdefault(int(fields[1]), []).append(int(entry))
        stack = list(children.get(root, []))
        while stack:
            pid = stack.pop()
            stack.extend(children.get(pid, []))
            role = _role(pid)
            if role is None:
                continue
            peak = _status(pid).get("VmHWM", 0) / 1024
            self.peak_mb[role] = max(self.peak_mb.get(role, 0.0), peak)
            self._cpu_by_pid[pid] = (role, _cpu_seconds(pid))
        self.cpu = {}
        for role, seconds in self._cpu_by_pid.values():
            self.cpu[role] = self.cpu.get(role, 0.0) + seconds
        # Meltano itself: `meltano run` relays every line from the tap to the target
        self._meltano_cpu = max(self._meltano_cpu, _cpu_seconds(root))
        self.cpu[MELTANO_ROLE] = self._meltano_cpu


def _directory_mb(path: Path) -> float:
    try:
        return sum(e.stat().st_size for e in os.scandir(path) if e.is_file()) / 2**20
    except FileNotFoundError:  # not created yet, or a file gone between scan and stat
        return 0.0


def batch_directory(env: dict[str, str]) -> Path | None:
    """Where the tap writes batch files in this environment, if it does."""
    config = env.get("TAP_IFSCLOUD_BATCH_CONFIG")
    if not config:
        return None
    return local_path(json.loads(config)["storage"]["root"])


@dataclass
class Run:
    name: str
    seconds: float
    records: int
    usage: Usage
    sandbox_cpu: float
    detail: str = ""


def run_measured(
    name: str,
    args: list[str],
    env: dict[str, str],
    cwd: Path,
    sandbox: Sandbox,
    stdin: Path | None = None,
    stdout: Path | None = None,
    log: Path | None = None,
) -> tuple[float, Usage, float]:
    """Run a Meltano command; its wall time, the usage of its tap/target, the sandbox's CPU."""
    usage = Usage()
    sandbox_before = sandbox.cpu_seconds()
    with contextlib.ExitStack() as stack:
        inp = stack.enter_context(stdin.open("rb")) if stdin else subprocess.DEVNULL
        out = stack.enter_context(stdout.open("wb")) if stdout else subprocess.DEVNULL
        err = stack.enter_context(log.open("wb")) if log else subprocess.DEVNULL
        started = time.perf_counter()
        proc = subprocess.Popen(
            [str(MELTANO), *args], cwd=cwd, env=env, stdin=inp, stdout=out, stderr=err
        )
        done = threading.Event()
        batch_dir = batch_directory(env)

        def sampler() -> None:
            while not done.wait(0.1):
                usage.sample(proc.pid, batch_dir)

        thread = threading.Thread(target=sampler, daemon=True)
        thread.start()
        code = proc.wait()
        seconds = time.perf_counter() - started
        done.set()
        thread.join()
    if code:
        tail = log.read_text(errors="replace")[-4000:] if log else ""
        raise RuntimeError(f"{name}: meltano {' '.join(args)} exited {code}\n{tail}")
    return seconds, usage, sandbox.cpu_seconds() - sandbox_before


# warehouses --------------------------------------------------------------------------------------


@dataclass
class Warehouse:
    kind: str  # postgresql or duckdb
    url: str
    dbname: str = ""

    def last_run(self) -> dict[str, object]:
        """The newest `_load_runs` row: records_in, rows_inserted, rows_updated, status."""
        sql = (
            f'SELECT records_in, rows_inserted, rows_updated, status FROM "{SCHEMA}"."_load_runs" '  # noqa: S608
            "ORDER BY started_at DESC LIMIT 1"
        )
        if self.kind == "duckdb":
            import duckdb

            with duckdb.connect(self.url.removeprefix("duckdb:///"), read_only=True) as con:
                row = con.execute(sql).fetchone()
        else:
            import psycopg

            with psycopg.connect(self.url) as con:
                row = con.execute(sql).fetchone()
        names = ("records_in", "rows_inserted", "rows_updated", "status")
        return dict(zip(names, row or (0, 0, 0, "none"), strict=True))


@contextlib.contextmanager
def warehouse(kind: str, work: Path, label: str) -> Iterator[Warehouse]:
    if kind == "duckdb":
        yield Warehouse(kind, f"duckdb:///{work / f'{label}.duckdb'}")
        return
    import psycopg

    name = f"bench_e2e_{label}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield Warehouse(kind, f"postgresql://postgres@127.0.0.1:5432/{name}", name)
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# the Meltano project -----------------------------------------------------------------------------


def meltano_project(work: Path) -> Path:
    """A copy of meltano.yml whose `.meltano/` links to this project's installed plugins."""
    project = work / "project"
    (project / ".meltano").mkdir(parents=True)
    shutil.copy(ROOT / "meltano.yml", project / "meltano.yml")
    for kind in ("extractors", "loaders"):
        installed = ROOT / ".meltano" / kind
        if not installed.is_dir():
            raise SystemExit(f"{installed} is missing: run `make` first (meltano install)")
        (project / ".meltano" / kind).symlink_to(installed, target_is_directory=True)
    return project


def meltano_env(
    work: Path,
    label: str,
    sandbox: Sandbox,
    companies: list[str],
    url: str,
    page_size: int,
    transport: str = "records",
    max_pending: int | None = None,
) -> dict[str, str]:
    """Settings as environment variables (Meltano ranks them above meltano.yml)."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("TAP_IFSCLOUD", "TARGET_LOOKER"))
    }
    env.update(
        MELTANO_ENVIRONMENT="dev",
        MELTANO_DATABASE_URI=f"sqlite:///{work / f'meltano-{label}.db'}",
        MELTANO_SEND_ANONYMOUS_USAGE_STATS="false",
        TAP_IFSCLOUD_BASE_URL=sandbox.base_url,
        TAP_IFSCLOUD_REALM="ifsdemo",
        TAP_IFSCLOUD_CLIENT_ID="ifs-looker-sandbox",
        TAP_IFSCLOUD_CLIENT_SECRET="sandbox-secret",  # the sandbox's documented credential
        TAP_IFSCLOUD_COMPANIES='["' + '","'.join(companies) + '"]',
        TAP_IFSCLOUD_PAGE_SIZE=str(page_size),
        TARGET_LOOKER_WAREHOUSE_URL=url,
        TARGET_LOOKER_LOOKER_BASE_URL="",  # no Looker: the post-load refresh is left out
        TARGET_LOOKER_LOOKML_DIR=str(work / f"lookml-{label}"),
    )
    if transport == "batch":
        root = (work / f"batches-{label}").as_uri()
        env["TAP_IFSCLOUD_BATCH_CONFIG"] = (
            '{"encoding": {"format": "jsonl"}, "storage": {"root": "' + root + '"}}'
        )
        if max_pending is not None:
            env["TAP_IFSCLOUD_MAX_PENDING_BATCH_FILES"] = str(max_pending)
    return env


def count_records(path: Path) -> int:
    count = 0
    with path.open("rb") as handle:
        for line in handle:
            if b'"RECORD"' in line[:40]:
                count += 1
    return count


# the benchmark -----------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="voucher rows in all")
    parser.add_argument("--companies", default="US01", help="comma-separated company codes")
    parser.add_argument("--changes", type=int, default=1000, help="changes before the 2nd run")
    parser.add_argument("--page-size", type=int, default=5000)
    parser.add_argument(
        "--warehouses", default="postgresql,duckdb", help="postgresql and/or duckdb"
    )
    parser.add_argument(
        "--transports", default="records,batch", help="records and/or batch (see above)"
    )
    parser.add_argument(
        "--max-pending-batch-files",
        type=int,
        help="the tap's max_pending_batch_files for the batch transport (default: the tap's)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument("--serve-sandbox", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    companies = [c for c in args.companies.split(",") if c]
    if args.serve_sandbox:
        return serve_sandbox(args.rows, companies)
    if not MELTANO.exists():
        raise SystemExit(f"{MELTANO} is missing: run `make` first")
    kinds = [k for k in args.warehouses.split(",") if k]
    transports = [t for t in args.transports.split(",") if t]
    if not set(transports) <= set(TRANSPORTS):
        raise SystemExit(f"--transports: {', '.join(TRANSPORTS)}")

    work = Path(tempfile.mkdtemp(prefix="bench_e2e_"))
    runs: list[Run] = []
    sandbox = Sandbox(args.rows, companies)
    print(
        f"sandbox: {args.rows:,} voucher rows ({', '.join(companies)}) ready in "
        f"{sandbox.startup_seconds:.1f} s, {sandbox.peak_rss_mb():.0f} MB: {sandbox.base_url}",
        flush=True,
    )
    try:
        project = meltano_project(work)
        singer = work / "tap.singer"

        env = meltano_env(work, "tap", sandbox, companies, "duckdb:///unused", args.page_size)
        seconds, usage, cpu = run_measured(
            "tap alone",
            ["invoke", "tap-ifscloud"],
            env,
            project,
            sandbox,
            stdout=singer,
            log=work / "tap.log",
        )
        records = count_records(singer)
        runs.append(Run("tap alone -> file", seconds, records, usage, cpu))
        print(f"  tap alone: {records:,} records in {seconds:.1f} s", flush=True)

        with contextlib.ExitStack() as stack:
            pipelines: dict[str, tuple[Warehouse, dict[str, str]]] = {}  # by run label
            for kind in kinds:
                alone = stack.enter_context(warehouse(kind, work, f"{kind}_target"))
                env = meltano_env(work, f"{kind}-alone", sandbox, companies, alone.url, 0)
                runs.append(
                    measure_load(
                        f"target alone <- file ({kind})",
                        ["invoke", "target-looker"],
                        env,
                        project,
                        sandbox,
                        alone,
                        work / f"target-{kind}.log",
                        stdin=singer,
                        records=records,
                    )
                )
                for transport in transports:
                    label = f"{kind}_{transport}_run"
                    target = stack.enter_context(warehouse(kind, work, label))
                    env = meltano_env(
                        work,
                        label,
                        sandbox,
                        companies,
                        target.url,
                        args.page_size,
                        transport,
                        args.max_pending_batch_files,
                    )
                    name = f"meltano run ({kind}{TRANSPORTS[transport]})"
                    runs.append(
                        measure_load(
                            name,
                            ["run", "tap-ifscloud", "target-looker"],
                            env,
                            project,
                            sandbox,
                            target,
                            work / f"run-{label}.log",
                        )
                    )
                    pipelines[f"{kind}{TRANSPORTS[transport]}"] = (target, env)

            changed = sandbox.mutate(args.changes)
            print(f"  sandbox: {args.changes:,} changes ({changed:,} rows)", flush=True)
            for kind, (target, env) in pipelines.items():
                runs.append(
                    measure_load(
                        f"incremental run after {args.changes:,} changes ({kind})",
                        ["run", "tap-ifscloud", "target-looker"],
                        env,
                        project,
                        sandbox,
                        target,
                        work / f"incremental-{kind.replace(', ', '-')}.log",
                    )
                )
    finally:
        sandbox_peak = sandbox.peak_rss_mb()
        sandbox.stop()
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    report(runs, args.rows, sandbox.startup_seconds, sandbox_peak)
    return 0


def measure_load(
    name: str,
    args: list[str],
    env: dict[str, str],
    project: Path,
    sandbox: Sandbox,
    target: Warehouse,
    log: Path,
    stdin: Path | None = None,
    records: int | None = None,
) -> Run:
    """One measured Meltano command that loads `target`: its Run, with what the target's
    audit says it loaded (`records`: the records given, when known, else the run's count)."""
    seconds, usage, cpu = run_measured(name, args, env, project, sandbox, stdin=stdin, log=log)
    loaded = target.last_run()
    count = records if records is not None else int(loaded["records_in"])
    print(f"  {name}: {seconds:.1f} s", flush=True)
    return Run(name, seconds, count, usage, cpu, _detail(loaded))


def _detail(loaded: dict[str, object]) -> str:
    return f"{loaded['status']}: +{loaded['rows_inserted']:,} ~{loaded['rows_updated']:,}"


def report(runs: list[Run], rows: int, startup: float, sandbox_peak: float) -> None:
    def mb(run: Run, role: str) -> str:
        value = run.usage.peak_mb.get(role)
        return f"{value:,.0f}" if value else "-"

    def cpu(run: Run, role: str) -> str:
        value = run.usage.cpu.get(role)
        return f"{value:,.1f}" if value else "-"

    print(
        f"\n{'run':<62} {'records':>9} {'wall s':>7} {'records/s':>10} "
        f"{'tap MB':>7} {'target MB':>9} {'tap CPU':>8} {'tgt CPU':>8} {'IFS CPU':>8} "
        f"{'Meltano CPU':>11}  result"
    )
    for run in runs:
        print(
            f"{run.name:<62} {run.records:>9,} {run.seconds:>7.1f} "
            f"{run.records / run.seconds:>10,.0f} {mb(run, 'tap-ifscloud'):>7} "
            f"{mb(run, 'target-looker'):>9} {cpu(run, 'tap-ifscloud'):>8} "
            f"{cpu(run, 'target-looker'):>8} {run.sandbox_cpu:>8.1f} "
            f"{cpu(run, MELTANO_ROLE):>11}  {run.detail}"
        )
    print(
        f"\nsandbox: start-up {startup:.1f} s, peak RSS {sandbox_peak:,.0f} MB "
        "(MB: peak RSS; CPU: seconds; IFS CPU: the sandbox's, answering; Meltano CPU: "
        "Meltano's own process, which relays the tap's lines to the target)"
    )
    tap = next(r for r in runs if r.name.startswith("tap alone"))
    for run in runs:
        if not run.name.startswith("meltano run"):
            continue
        kind = run.name[run.name.index("(") :]
        warehouse_kind = kind.split(",")[0].removesuffix(")") + ")"
        alone = next(r for r in runs if r.name == f"target alone <- file {warehouse_kind}")
        serial = tap.seconds + alone.seconds
        overlap = (serial - run.seconds) / min(tap.seconds, alone.seconds)
        peak = sum(run.usage.peak_mb.values())
        on_disk = run.usage.batch_files_mb
        print(
            f"pipeline {kind}: {run.seconds:.1f} s vs tap {tap.seconds:.1f} s + target "
            f"{alone.seconds:.1f} s = {serial:.1f} s one after the other (overlap "
            f"{max(overlap, 0):.0%} of the shorter); tap + target peak {peak:,.0f} MB"
            + (f"; batch files on disk at most {on_disk:,.0f} MB" if on_disk else "")
        )
    print(
        f"goals for 1M rows: meltano run <= 30 s, tap + target <= 400 MB; incremental <= 10 s "
        f"(this run: {rows:,} rows)"
    )


if __name__ == "__main__":
    sys.exit(main())

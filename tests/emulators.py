"""Local emulators of the cloud warehouses, started and stopped by the tests.

- BigQuery: `bqemulator` (REST API, DuckDB inside), driven by the official
  `google-cloud-bigquery` client through `bigquery_api_endpoint` / `?api_endpoint=`.
- Snowflake: `fakesnow` in its HTTP server mode, reached by the official
  `snowflake-connector-python` through `?host=...&port=...&protocol=http`, as the
  target reaches real Snowflake.

Each emulator lives in a virtual environment of its own (their pins conflict with each
other and with the product's), made by `make test` (`make emulators`) under
`.venv/emulators/`. A missing one is an error, never a skip. Both listen on loopback
only, on a port they pick; nothing leaves this machine.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import typing as t
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
EMULATORS = PROJECT / ".venv" / "emulators"
BQEMULATOR_VENV = EMULATORS / "bqemulator"
FAKESNOW_VENV = EMULATORS / "fakesnow"
BIGQUERY_PROJECT = "tl-emulator"
SNOWFLAKE_DATABASE = "TL_EMULATOR"
START_TIMEOUT = 90.0
# The official clients retry failed requests for minutes; an emulator's error should fail
# a test in seconds.
CLIENT_TIMEOUT = 30
_UVICORN_PORT = re.compile(r"Uvicorn running on http://127\.0\.0\.1:(\d+)")


class EmulatorMissing(RuntimeError):
    """The emulator's environment is not installed: run `make emulators` (or `make test`)."""


@dataclass
class Emulator:
    name: str
    process: subprocess.Popen
    port: int
    log: Path

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)

    # Warehouse URLs for the target ----------------------------------------------------------

    def bigquery_url(self, dataset: str) -> str:
        return (
            f"bigquery://{BIGQUERY_PROJECT}/{dataset}?api_endpoint={self.endpoint}"
            f"&timeout={CLIENT_TIMEOUT}"
        )

    def snowflake_url(self, schema: str) -> str:
        return (
            f"snowflake://tl_user:tl_password@tlaccount/{SNOWFLAKE_DATABASE}/{schema}"
            f"?host=127.0.0.1&port={self.port}&protocol=http"
            f"&login_timeout={CLIENT_TIMEOUT}&network_timeout={CLIENT_TIMEOUT}"
        )


def _require(venv: Path, program: str) -> Path:
    executable = venv / "bin" / program
    if not executable.exists():
        raise EmulatorMissing(
            f"{executable} is missing: the tests need the emulator environments; "
            f"run `make emulators` (part of `make test`)"
        )
    return executable


def _duckdb_home(venv: Path) -> Path:
    """A HOME for bqemulator whose DuckDB finds `spatial` and `avro` already installed.

    bqemulator runs `INSTALL spatial` at start, which downloads unless the extension is
    in `~/.duckdb/extensions/<version>/<platform>/`; the pip packages
    `duckdb-extension-*` ship the files, copied there once.
    """
    home = venv / "home"
    marker = home / ".extensions-installed"
    if marker.exists():
        return home
    python = venv / "bin" / "python"
    probe = (
        "import duckdb, json, importlib.util, pathlib\n"
        "found = {}\n"
        "for name in ('spatial', 'avro'):\n"
        "    spec = importlib.util.find_spec('duckdb_extension_' + name)\n"
        "    root = pathlib.Path(spec.submodule_search_locations[0]) / 'extensions'\n"
        "    found[name] = [str(p) for p in root.rglob('*.duckdb_extension')]\n"
        "platform = duckdb.execute('PRAGMA platform').fetchone()[0]\n"
        "print(json.dumps({'version': 'v' + duckdb.__version__, 'platform': platform,"
        " 'files': found}))\n"
    )
    result = subprocess.run(
        [str(python), "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    info = json.loads(result.stdout.strip().splitlines()[-1])
    target = home / ".duckdb" / "extensions" / info["version"] / info["platform"]
    target.mkdir(parents=True, exist_ok=True)
    for files in info["files"].values():
        if not files:
            raise EmulatorMissing(f"a DuckDB extension package in {venv} ships no file")
        for file in files:
            shutil.copy2(file, target / Path(file).name)
    marker.write_text("spatial, avro\n")
    return home


def _wait_for_port(process: subprocess.Popen, log: Path, pattern: re.Pattern, name: str) -> int:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace") if log.exists() else ""
        found = pattern.search(text)
        if found:
            return int(found.group(1))
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited ({process.returncode}) at start:\n{text[-3000:]}")
        time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"{name} did not start within {START_TIMEOUT:.0f} s:\n{text[-3000:]}")


def start_bqemulator(workdir: Path) -> Emulator:
    """bqemulator on a free loopback port, in memory (ephemeral)."""
    program = _require(BQEMULATOR_VENV, "bqemulator")
    home = _duckdb_home(BQEMULATOR_VENV)
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / f"bqemulator-{uuid.uuid4().hex[:6]}.log"
    env = {**os.environ, "HOME": str(home), "TMPDIR": str(workdir)}
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                str(program),
                "start",
                "--rest-host=127.0.0.1",
                "--rest-port=0",
                "--grpc-host=127.0.0.1",
                "--grpc-port=0",
                f"--project={BIGQUERY_PROJECT}",
                "--ephemeral",
                "--log-format=json",
                "--log-level=info",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=workdir,
        )
    port = _wait_for_port(
        process, log, re.compile(r'"port": (\d+), "event": "rest.listen"'), "bqemulator"
    )
    return Emulator("bqemulator", process, port, log)


def start_fakesnow(workdir: Path) -> Emulator:
    """fakesnow's HTTP server on a free loopback port, databases in memory."""
    program = _require(FAKESNOW_VENV, "fakesnow")
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / f"fakesnow-{uuid.uuid4().hex[:6]}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(program), "--server", "--host", "127.0.0.1"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "TMPDIR": str(workdir)},
            cwd=workdir,
        )
    port = _wait_for_port(process, log, _UVICORN_PORT, "fakesnow")
    return Emulator("fakesnow", process, port, log)


@contextlib.contextmanager
def running(kind: str, workdir: Path) -> Iterator[Emulator]:
    """`kind` ("bigquery" or "snowflake") running for the duration of the block."""
    emulator = start_bqemulator(workdir) if kind == "bigquery" else start_fakesnow(workdir)
    try:
        yield emulator
    finally:
        emulator.stop()


def warehouse_url(emulator: Emulator, kind: str, schema: str) -> str:
    return emulator.bigquery_url(schema) if kind == "bigquery" else emulator.snowflake_url(schema)


__all__ = [
    "BIGQUERY_PROJECT",
    "SNOWFLAKE_DATABASE",
    "Emulator",
    "EmulatorMissing",
    "running",
    "start_bqemulator",
    "start_fakesnow",
    "warehouse_url",
]


# Scenarios both dialect tests run against their emulator -----------------------------------------
# (tests/target_looker/warehouse/test_bigquery.py and test_snowflake.py)


@dataclass
class Rig:
    """One test's target config against one emulator, and a reader of what it loaded."""

    kind: str  # bigquery | snowflake
    emulator: Emulator
    schema: str

    @property
    def config(self) -> dict:
        return {
            "warehouse_url": warehouse_url(self.emulator, self.kind, self.schema),
            "default_target_schema": self.schema,
        }

    def with_schema(self, schema: str) -> Rig:
        return Rig(self.kind, self.emulator, schema)

    def fetch(self, sql: str, params: tuple = ()) -> list[tuple]:
        """Rows of `sql`; `{t:name}` in the text is the qualified table `name`."""
        from target_looker.warehouse import open_warehouse
        from target_looker.warehouse.base import TableRef

        warehouse = open_warehouse(self.config["warehouse_url"])
        warehouse.connect()
        try:
            text = re.sub(
                r"\{t:(\w+)\}",
                lambda m: warehouse.qualified(TableRef(self.schema, m.group(1))),
                sql,
            )
            text = re.sub(r"\{c:(\w+)\}", lambda m: warehouse.quote(m.group(1)), text)
            return warehouse.fetchall(text, params)
        finally:
            warehouse.close()

    def columns(self, table: str, names: str, order: str = "") -> list[tuple]:
        """`names` (comma-separated column names) of `table`, ordered by `order`'s names."""
        select = ", ".join(f"{{c:{n.strip()}}}" for n in names.split(","))
        by = ", ".join(f"{{c:{n.strip()}}}" for n in order.split(",")) if order else ""
        return self.fetch(
            f"SELECT {select} FROM {{t:{table}}}" + (f" ORDER BY {by}" if by else "")  # noqa: S608
        )


def _messages_module() -> t.Any:
    from tests.target_looker import singer_io

    return singer_io


VOUCHER_PROPERTIES = {
    "Company": {"type": "string"},
    "VoucherNo": {"type": "integer"},
    "RowNo": {"type": "integer"},
    "Amount": {"type": ["number", "null"]},
    "VoucherDate": {"type": ["string", "null"], "format": "date"},
    "DateCreated": {"type": ["string", "null"], "format": "date-time"},
    "Approved": {"type": ["boolean", "null"]},
    "Text": {"type": ["string", "null"], "maxLength": 20},
    "Extra": {"type": ["object", "null"]},
    "_ifs_objversion": {"type": ["string", "null"]},
}
VOUCHER_KEYS = ["Company", "VoucherNo", "RowNo"]
VOUCHER_COLUMNS = "voucher_no, row_no, amount, voucher_date, date_created, approved, text"


def voucher_schema() -> dict:
    return _messages_module().schema("voucher_rows", VOUCHER_PROPERTIES, VOUCHER_KEYS)


def voucher(no: int, row: int = 1, version: str = "20260101000000", **values: t.Any) -> str:
    """A RECORD line, written as text so that amounts keep every digit."""
    record = {"Company": "US01", "VoucherNo": no, "RowNo": row, "_ifs_objversion": version}
    body = json.dumps({**record, **{k: v for k, v in values.items() if k != "Amount"}})
    if "Amount" in values:  # an exact decimal literal, not a float
        body = body[:-1] + f', "Amount": {values["Amount"]}}}'
    return f'{{"type": "RECORD", "stream": "voucher_rows", "record": {body}}}'


# SIGKILL the target mid-stream, resume from its last STATE ------------------

BATCH, STATE_EVERY, RECORDS = 30, 15, 150
CLI = "from target_looker.target import TargetLooker; TargetLooker.cli()"


def _readline(proc: subprocess.Popen, timeout: float) -> str:
    """The next line of `proc`'s stdout; the test fails (never hangs) after `timeout` s."""
    import selectors

    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        if not selector.select(timeout):
            proc.kill()
            raise AssertionError(f"the target emitted no STATE within {timeout:.0f} s")
    line = proc.stdout.readline()
    if not line:
        raise AssertionError(f"the target ended (exit {proc.wait()}) before its next STATE")
    return line


def kill_and_resume(rig: Rig, tmp_path: Path) -> None:
    """The target killed mid-stream, then run from its last STATE, loads what one
    uninterrupted run loads."""
    from tests.target_looker.singer_io import lines, run, state

    messages: list[str] = [lines(voucher_schema())]
    for i in range(RECORDS):
        no, row = divmod(i % 100, 2)  # rows come back later with newer versions
        messages.append(lines(voucher(no, row + 1, version=f"2026010100{i:04d}", Amount=str(i))))
        if (i + 1) % STATE_EVERY == 0:
            messages.append(lines(state({"position": i + 1})))
    config = {**rig.config, "batch_size_rows": BATCH}
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(config))
    proc = subprocess.Popen(
        [sys.executable, "-c", CLI, "--config", str(config_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=(tmp_path / "killed-target.log").open("wb"),
    )
    assert proc.stdin is not None and proc.stdout is not None
    sent, emitted = 0, []
    while len(emitted) < 2:
        while sent < len(messages) and sent < (len(emitted) + 1) * 2 * BATCH:
            proc.stdin.write(messages[sent].encode())
            sent += 1
        proc.stdin.flush()
        emitted.append(json.loads(_readline(proc, timeout=120)))
    for message in messages[sent : sent + BATCH // 2]:
        proc.stdin.write(message.encode())
    proc.stdin.flush()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    resume_at = messages.index(lines(state(emitted[-1])))
    run(config, lines(voucher_schema()) + "".join(messages[resume_at + 1 :]))

    clean = rig.with_schema(rig.schema + "_clean")
    run({**clean.config, "batch_size_rows": BATCH}, "".join(messages))
    resumed = rig.columns(
        "voucher_rows", "voucher_no, row_no, amount, _ifs_objversion", "voucher_no, row_no"
    )
    expected = clean.columns(
        "voucher_rows", "voucher_no, row_no, amount, _ifs_objversion", "voucher_no, row_no"
    )
    assert len(expected) == 100
    assert resumed == expected
    statuses = rig.fetch("SELECT {c:status} FROM {t:_load_runs} ORDER BY {c:started_at}")
    # The killed run has no session to lose: it stays `running` until its heartbeat is
    # stale (load_session.STALE_RUN_AFTER), then the next run marks it interrupted.
    assert statuses == [("running",), ("succeeded",)]

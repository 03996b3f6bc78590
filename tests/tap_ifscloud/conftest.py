"""Fixtures for tap-ifscloud: in-process IFS Cloud sandboxes and ways to run the tap."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import msgspec
import pytest
import requests

from ifs_looker_sandboxes.ifs_cloud import IfsCloudSandbox
from tap_ifscloud.streams import BUILTIN_STREAMS
from tap_ifscloud.tap import TapIFSCloud
from tests.sandboxes import running_ifs_cloud

COMPANIES = ("US01", "DE01", "SE01")
_DECODER = msgspec.json.Decoder(float_hook=Decimal)
_ENCODER = msgspec.json.Encoder(decimal_format="number")


def running_sandbox(**changes: Any) -> contextlib.AbstractContextManager[IfsCloudSandbox]:
    """A serving sandbox with the tap tests' small data set (120 voucher rows a company)."""
    return running_ifs_cloud(**{"voucher_rows_per_company": 120, **changes})


def sandbox_rows(sandbox: IfsCloudSandbox, projection: str, entity_set: str) -> list[dict]:
    """The sandbox's current rows as a client would see them (Decimal numbers)."""
    return sandbox.rows(projection, entity_set)


def tap_config(sandbox: IfsCloudSandbox, **overrides: Any) -> dict[str, Any]:
    config = {
        "base_url": sandbox.base_url,
        "realm": sandbox.config.realm,
        "client_id": sandbox.config.client_id,
        "client_secret": sandbox.config.client_secret,
        "companies": list(sandbox.config.companies),
        "page_size": 50,
        "max_backoff_seconds": 0.2,
        "max_retries": 10,
    }
    config.update(overrides)
    return config


@dataclass
class TapRun:
    """The Singer messages of one tap run, parsed with exact decimals."""

    messages: list[dict] = field(default_factory=list)
    stderr: str = ""

    def records(self, stream: str) -> list[dict]:
        return [
            m["record"] for m in self.messages if m["type"] == "RECORD" and m["stream"] == stream
        ]

    @property
    def final_state(self) -> dict:
        states = [m["value"] for m in self.messages if m["type"] == "STATE"]
        return states[-1]

    def types(self, stream: str) -> list[str]:
        return [m["type"] for m in self.messages if m.get("stream") == stream]


def run_tap(config: dict, state: dict | None = None, catalog: dict | None = None) -> TapRun:
    """Run a full sync in-process and parse what it writes to stdout."""
    stdout = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    tap = TapIFSCloud(config=config, state=state, catalog=catalog)
    with contextlib.redirect_stdout(stdout):
        tap.sync_all()
    stdout.flush()
    raw = stdout.buffer.getvalue()
    return TapRun([_DECODER.decode(line) for line in raw.splitlines() if line.strip()])


def run_cli(
    args: list[str], config: dict | None, tmp_path: Path, timeout: float = 120
) -> subprocess.CompletedProcess:
    """Run `tap-ifscloud` as a process (exit codes and log output are part of the contract)."""
    argv = [sys.executable, "-m", "tap_ifscloud.tap", *args]
    if config is not None:
        path = tmp_path / "config.json"
        path.write_text(json.dumps(config))
        argv += ["--config", str(path)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAP_IFSCLOUD_")}
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env)


def by_key(rows: list[dict], keys: list[str]) -> dict[tuple, dict]:
    return {tuple(r[k] for k in keys): r for r in rows}


def expected_records(
    sandbox: IfsCloudSandbox, stream_name: str, companies: tuple[str, ...]
) -> dict:
    """What a full read of a built-in stream must produce, keyed like the stream."""
    definition = next(d for d in BUILTIN_STREAMS if d.name == stream_name)
    result: dict[tuple, dict] = {}
    for code_part, entity_set in definition.entity_sets():
        for row in sandbox_rows(sandbox, definition.projection, entity_set):
            if row.get("Company") not in companies:
                continue
            row = dict(row)
            etag = row.pop("@odata.etag")
            if code_part is not None:
                row["code"] = row.pop(f"Code{code_part}")
                # a tenant's own `CodePart` (real IFS has one) is the same fact as `code_part`
                assert row.pop("CodePart", code_part) == code_part
                row["code_part"] = code_part
            row["_ifs_etag"] = etag
            result[tuple(row[k] for k in definition.key_properties)] = row
    # one stream of several entity sets: a property only some of them have is null in the others
    names = {name for row in result.values() for name in row}
    for row in result.values():
        for name in names - row.keys():
            row[name] = None
    return result


def without_objversion(record: dict) -> dict:
    return {k: v for k, v in record.items() if k != "_ifs_objversion"}


@pytest.fixture(scope="session")
def shared_sandbox() -> Iterator[IfsCloudSandbox]:
    """A well-behaved sandbox that read-only tests share."""
    with running_sandbox(companies=COMPANIES) as sandbox:
        yield sandbox


RowsTransform = Callable[[str, list[dict]], list[dict]]


@contextlib.contextmanager
def relay(sandbox: IfsCloudSandbox, transform: RowsTransform) -> Iterator[str]:
    """An IFS in front of `sandbox` whose entity-set pages are reshaped by
    `transform(path, rows)` (exact decimals kept); tokens and `$metadata` pass through.
    Yields its base URL."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _send(self, response: requests.Response, body: bytes) -> None:
            self.send_response(response.status_code)
            self.send_header("Content-Type", response.headers.get("Content-Type", "text/plain"))
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            response = requests.post(
                sandbox.base_url + self.path,
                data=self.rfile.read(length),
                headers={"Content-Type": self.headers["Content-Type"]},
                timeout=30,
            )
            self._send(response, response.content)

        def do_GET(self) -> None:
            headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
            response = requests.get(sandbox.base_url + self.path, headers=headers, timeout=30)
            body = response.content
            if response.status_code == 200 and "$metadata" not in self.path:
                document = _DECODER.decode(body)
                if isinstance(document.get("value"), list):
                    document["value"] = transform(self.path, document["value"])
                    body = _ENCODER.encode(document)
            self._send(response, body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()

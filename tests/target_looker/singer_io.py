"""Helpers to drive the target in-process and read the warehouse back in tests."""

from __future__ import annotations

import contextlib
import io
import json
import typing as t

from target_looker.target import TargetLooker
from target_looker.warehouse import open_warehouse


def lines(*messages: dict | str) -> str:
    """Singer input text; dicts are JSON-encoded, strings are taken verbatim."""
    return "".join((m if isinstance(m, str) else json.dumps(m)) + "\n" for m in messages)


def schema(stream: str, properties: dict, keys: list[str], **extra: t.Any) -> dict:
    return {
        "type": "SCHEMA",
        "stream": stream,
        "schema": {"type": "object", "properties": properties},
        "key_properties": keys,
        **extra,
    }


def record(stream: str, rec: dict, **extra: t.Any) -> dict:
    return {"type": "RECORD", "stream": stream, "record": rec, **extra}


def state(value: dict) -> dict:
    return {"type": "STATE", "value": value}


def run(config: dict, text: str | bytes) -> list[dict]:
    """Run the target on `text` (bytes: read as stdin is, undecoded); returns the STATE
    values it emitted, in order."""
    out = io.StringIO()
    target = TargetLooker(config=config)
    with contextlib.redirect_stdout(out):
        target.listen(io.BytesIO(text) if isinstance(text, bytes) else io.StringIO(text))
    return [json.loads(line) for line in out.getvalue().splitlines() if line.strip()]


def query(config: dict, sql: str, params: t.Sequence = ()) -> list[tuple]:
    """Rows of `sql`; `{s}` in the text is the quoted target schema."""
    warehouse = open_warehouse(config["warehouse_url"])
    warehouse.connect()
    try:
        return warehouse.fetchall(
            sql.format(s=warehouse.quote(config["default_target_schema"])), params
        )
    finally:
        warehouse.close()


def batch_sizes(config: dict) -> list[int]:
    """The records of each committed batch (`_load_batches`), in commit order."""
    sql = "SELECT records_in FROM {s}._load_batches ORDER BY committed_at"
    return [n for (n,) in query(config, sql)]

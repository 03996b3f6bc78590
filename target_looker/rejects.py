"""Replay of `_load_rejects`: feed rejected records through the target again.

A record is rejected when it cannot be loaded as received (fails its schema, a value
cannot be cast, text too long, ...). Once the cause is fixed (a wider column, a
corrected schema in `_load_streams`, a new tap version), `ifs-looker replay-rejects`
re-sends each record, with its stream's latest SCHEMA, through a normal target run:
the same merge, version guard and audit. Every replayed reject gets `replayed_at` and
`replay_run_id`; a record that fails again becomes a new reject of the replay run, so
nothing is lost and nothing is retried forever by accident.
"""

# Identifiers go through Warehouse.quote; values are bound parameters.
# ruff: noqa: S608

from __future__ import annotations

import contextlib
import io
import json
import typing as t
from dataclasses import dataclass

from target_looker.audit import REJECTS, STREAMS, now
from target_looker.target import TargetLooker
from target_looker.warehouse import open_warehouse
from target_looker.warehouse.base import TableRef

if t.TYPE_CHECKING:
    from collections.abc import Iterator

    from target_looker.load_session import LoadSession
    from target_looker.warehouse.base import Warehouse


@dataclass(frozen=True)
class PendingReject:
    reject_id: str
    stream: str
    record: str  # raw JSON text
    time_extracted: str | None
    table_version: int | None


@dataclass(frozen=True)
class ReplayResult:
    replayed: int
    rejected_again: int
    run_id: str | None

    @property
    def loaded(self) -> int:
        return self.replayed - self.rejected_again


def pending_rejects(
    warehouse: Warehouse, schema: str, *, stream: str | None = None, run_id: str | None = None
) -> list[PendingReject]:
    """Rejects not yet replayed, oldest first, optionally for one stream or run."""
    table = warehouse.qualified(TableRef(schema, REJECTS.name))
    sql = (
        "SELECT reject_id, stream, CAST(record AS VARCHAR), time_extracted, table_version "
        f"FROM {table} WHERE replayed_at IS NULL"
    )
    params: list[t.Any] = []
    for column, value in (("stream", stream), ("run_id", run_id)):
        if value is not None:
            params.append(value)
            sql += f" AND {column} = ${len(params)}"
    rows = warehouse.fetchall(sql + " ORDER BY received_at, reject_id", params)
    return [PendingReject(*row) for row in rows]


def stream_schemas(warehouse: Warehouse, schema: str) -> dict[str, dict]:
    """The latest SCHEMA message of every stream the target has seen."""
    table = warehouse.qualified(TableRef(schema, STREAMS.name))
    rows = warehouse.fetchall(
        "SELECT stream, CAST(schema AS VARCHAR), CAST(key_properties AS VARCHAR), "
        f"CAST(bookmark_properties AS VARCHAR) FROM {table}"
    )
    return {
        name: {
            "type": "SCHEMA",
            "stream": name,
            "schema": json.loads(body),
            "key_properties": json.loads(keys),
            "bookmark_properties": json.loads(bookmarks),
        }
        for name, body, keys, bookmarks in rows
    }


def replay_messages(rejects: list[PendingReject], schemas: dict[str, dict]) -> Iterator[str]:
    """Singer lines: each stream's SCHEMA, then its rejected records verbatim."""
    announced: set[str] = set()
    for reject in rejects:
        if reject.stream not in announced:
            if reject.stream not in schemas:
                raise LookupError(
                    f"no schema recorded in {STREAMS.name} for stream {reject.stream!r}; "
                    "run the tap once so the target sees the stream's SCHEMA"
                )
            announced.add(reject.stream)
            yield json.dumps(schemas[reject.stream])
        extras = ""
        if reject.time_extracted is not None:
            extras += f', "time_extracted": {json.dumps(reject.time_extracted)}'
        if reject.table_version is not None:
            extras += f', "version": {int(reject.table_version)}'
        yield (
            f'{{"type": "RECORD", "stream": {json.dumps(reject.stream)}, '
            f'"record": {reject.record}{extras}}}'
        )


def replay(
    config: dict, *, stream: str | None = None, run_id: str | None = None, dry_run: bool = False
) -> ReplayResult:
    """Retry pending rejects through a target run with `config`; mark them replayed."""
    settings = TargetLooker(config=config).session  # the settings as the target reads them
    schema = settings.target_schema
    warehouse = open_warehouse(settings.warehouse_url)
    warehouse.connect()
    try:
        rejects = pending_rejects(warehouse, schema, stream=stream, run_id=run_id)
        schemas = stream_schemas(warehouse, schema) if rejects else {}
    finally:
        warehouse.close()
    if not rejects or dry_run:
        return ReplayResult(len(rejects), 0, None)
    text = "".join(line + "\n" for line in replay_messages(rejects, schemas))
    target = TargetLooker(config=config)
    with contextlib.redirect_stdout(io.StringIO()):
        target.listen(io.StringIO(text))
    run = target.session
    return ReplayResult(len(rejects), _mark_replayed(run, rejects), run.run_id)


def _mark_replayed(run: LoadSession, rejects: list[PendingReject]) -> int:
    """Stamp the replayed rejects with the replay `run`; returns how many it rejected again."""
    warehouse = open_warehouse(run.warehouse_url)
    warehouse.connect()
    table = warehouse.qualified(TableRef(run.target_schema, REJECTS.name))
    try:
        with warehouse.transaction():
            warehouse.executemany(
                f"UPDATE {table} SET replayed_at = $1, replay_run_id = $2 WHERE reject_id = $3",
                [(now(), run.run_id, r.reject_id) for r in rejects],
            )
        [(again,)] = warehouse.fetchall(
            f"SELECT count(*) FROM {table} WHERE run_id = $1",
            (run.run_id,),
        )
    finally:
        warehouse.close()
    return int(again)

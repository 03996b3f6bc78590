"""Replay of `_load_rejects`: feed rejected records through the target again.

A record is rejected when it cannot be loaded as received (fails its schema, a value
cannot be cast, text too long, ...). Once the cause is fixed (a wider column, a
corrected schema in `_load_streams`, a new tap version), `ifs-looker replay-rejects`
re-sends each record, with its stream's latest SCHEMA, through a normal target run:
the same merge, version guard and audit. Every replayed reject gets `replayed_at` and
`replay_run_id`; a record that fails again becomes a new reject of the replay run, so
nothing is lost and nothing is retried forever by accident.

Replay never regresses a row: a reject whose key has a stored row that arrived after
the reject was recorded (the row's `_sdc_sequence`, nanoseconds at receipt, is later
than the reject's `received_at`) is not sent, and counts as skipped; so is one the
version guard refuses. The check is made just before the replay run: a load of the
same stream running at that very moment could slip a newer row in between, so replay
while no load of those streams runs. The counts reported are the replay run's own
(loaded = inserted + updated) plus the rejects skipped before it.
"""

# Identifiers go through Warehouse.quote; values are bound parameters.
# ruff: noqa: S608

from __future__ import annotations

import contextlib
import datetime
import io
import json
import logging
import typing as t
from dataclasses import dataclass

import msgspec

from target_looker import naming
from target_looker.audit import REJECTS, STREAMS, now
from target_looker.reader import decode_generic
from target_looker.sinks import is_plain, key_match_sql, plan_table
from target_looker.target import TargetLooker
from target_looker.warehouse import open_warehouse
from target_looker.warehouse.base import APPEND_ONLY, UPSERT, TableRef, WarehouseError

if t.TYPE_CHECKING:
    from collections.abc import Iterator

    from target_looker.load_session import LoadSession
    from target_looker.warehouse.base import Warehouse


logger = logging.getLogger(__name__)
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
SEQUENCE_COLUMN = "_sdc_sequence"


@dataclass(frozen=True)
class PendingReject:
    reject_id: str
    stream: str
    record: str  # raw JSON text
    time_extracted: str | None
    table_version: int | None
    received_at: datetime.datetime | None = None


@dataclass(frozen=True)
class ReplayResult:
    """What a replay did with the pending rejects it took (`replayed` of them)."""

    replayed: int
    loaded: int  # inserted or updated a row
    skipped: int  # a newer row is stored (arrived later, or a newer IFS version)
    rejected_again: int
    run_id: str | None


def pending_rejects(
    warehouse: Warehouse, schema: str, *, stream: str | None = None, run_id: str | None = None
) -> list[PendingReject]:
    """Rejects not yet replayed, oldest first, optionally for one stream or run."""
    table = warehouse.qualified(TableRef(schema, REJECTS.name))
    sql = (
        "SELECT reject_id, stream, CAST(record AS VARCHAR), time_extracted, table_version, "
        f"received_at FROM {table} WHERE replayed_at IS NULL"
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


def replay_messages(
    rejects: list[PendingReject], schemas: dict[str, dict], streams: t.Iterable[str] = ()
) -> Iterator[str]:
    """Singer lines: the SCHEMA of each stream (of `streams`, then of the rejects), then
    the rejected records verbatim."""
    for name in dict.fromkeys([*streams, *(r.stream for r in rejects)]):
        if name not in schemas:
            raise LookupError(
                f"no schema recorded in {STREAMS.name} for stream {name!r}; "
                "run the tap once so the target sees the stream's SCHEMA"
            )
        yield json.dumps(schemas[name])
    for reject in rejects:
        extras = ""
        if reject.time_extracted is not None:
            extras += f', "time_extracted": {json.dumps(reject.time_extracted)}'
        if reject.table_version is not None:
            extras += f', "version": {int(reject.table_version)}'
        yield (
            f'{{"type": "RECORD", "stream": {json.dumps(reject.stream)}, '
            f'"record": {reject.record}{extras}}}'
        )


def superseded_rejects(
    warehouse: Warehouse,
    config: t.Mapping[str, t.Any],
    schema: str,
    rejects: list[PendingReject],
    schemas: dict[str, dict],
) -> set[str]:
    """Ids of rejects whose key has a stored row that arrived after the reject was recorded.

    Replaying one of those would overwrite newer data with older (the version guard
    cannot tell when a stream has no `_ifs_objversion`, or the record lacks one).
    """
    if (config.get("load_method") or UPSERT) == APPEND_ONLY:
        return set()
    superseded: set[str] = set()
    plans: dict[str, t.Any] = {}
    for reject in rejects:
        if reject.received_at is None or reject.stream not in schemas:
            continue
        if reject.stream not in plans:
            plans[reject.stream] = _stored_plan(warehouse, config, schema, schemas[reject.stream])
        plan = plans[reject.stream]
        if plan is None:
            continue
        try:
            key = plan.key_of(decode_generic(reject.record))
        except (msgspec.DecodeError, RecursionError):
            key = None
        if key is None or not is_plain(key):  # no key: it cannot replace a row
            continue
        received_ns = (reject.received_at - _EPOCH) // datetime.timedelta(microseconds=1) * 1000
        match = key_match_sql(warehouse, plan.columns, plan.keys, first_param=1)
        found = warehouse.fetchall(
            f"SELECT 1 FROM {warehouse.qualified(plan.table)} WHERE {match} "
            f"AND {warehouse.quote(SEQUENCE_COLUMN)} > ${len(plan.keys) + 1} LIMIT 1",
            (*key, received_ns),
        )
        if found:
            superseded.add(reject.reject_id)
    return superseded


def _stored_plan(
    warehouse: Warehouse, config: t.Mapping[str, t.Any], schema: str, message: dict
) -> t.Any:
    """The stream's table plan, when its table exists with keys and `_sdc_sequence`."""
    try:
        plan = plan_table(
            message["stream"],
            message["schema"],
            message.get("key_properties") or [],
            target_schema=schema,
            column_naming=config.get("column_naming", naming.SNAKE_CASE),
            warehouse=warehouse,
        )
    except (WarehouseError, ValueError):
        return None
    existing = warehouse.existing_columns(plan.table)
    if not plan.keys or existing is None or SEQUENCE_COLUMN not in existing:
        return None
    return plan


def replay(
    config: dict, *, stream: str | None = None, run_id: str | None = None, dry_run: bool = False
) -> ReplayResult:
    """Retry pending rejects through a target run with `config`; mark them replayed."""
    settings = TargetLooker(config=config).session  # the settings as the target reads them
    schema = settings.target_schema
    warehouse = open_warehouse(settings.warehouse_url, config)
    warehouse.connect()
    try:
        rejects = pending_rejects(warehouse, schema, stream=stream, run_id=run_id)
        schemas = stream_schemas(warehouse, schema) if rejects else {}
        superseded = (
            superseded_rejects(warehouse, config, schema, rejects, schemas)
            if rejects and not dry_run
            else set()
        )
    finally:
        warehouse.close()
    if not rejects or dry_run:
        return ReplayResult(len(rejects), 0, 0, 0, None)
    for reject in rejects:
        if reject.reject_id in superseded:
            logger.info(
                "Reject %s (stream %r) not replayed: a newer row with its key is stored",
                reject.reject_id,
                reject.stream,
            )
    to_send = [r for r in rejects if r.reject_id not in superseded]
    # Every stream's SCHEMA goes out even when all its rejects are skipped, so the replay
    # is always a run of its own (audited, and named in `replay_run_id`).
    lines = replay_messages(to_send, schemas, streams=[r.stream for r in rejects])
    target = TargetLooker(config=config)
    with contextlib.redirect_stdout(io.StringIO()):
        target.listen(io.StringIO("".join(line + "\n" for line in lines)))
    run = target.session
    _mark_replayed(run, rejects)
    totals = run.totals
    if totals is None:  # nothing reached the warehouse: cannot happen with a SCHEMA sent
        return ReplayResult(len(rejects), 0, len(superseded), 0, run.run_id)
    return ReplayResult(
        replayed=len(rejects),
        loaded=totals.inserted + totals.updated,
        skipped=totals.skipped + len(superseded),
        rejected_again=totals.rejected,
        run_id=run.run_id,
    )


def _mark_replayed(run: LoadSession, rejects: list[PendingReject]) -> None:
    """Stamp the replayed rejects with the replay `run`."""
    warehouse = open_warehouse(run.warehouse_url, run.config)
    warehouse.connect()
    table = warehouse.qualified(TableRef(run.target_schema, REJECTS.name))
    try:
        with warehouse.transaction():
            warehouse.executemany(
                f"UPDATE {table} SET replayed_at = $1, replay_run_id = $2 WHERE reject_id = $3",
                [(now(), run.run_id, r.reject_id) for r in rejects],
            )
    finally:
        warehouse.close()

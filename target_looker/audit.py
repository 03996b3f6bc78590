"""Audit trail: one `_load_runs` row per run, one `_load_batches` row per committed
batch, `_load_rejects` for records that could not be loaded, `_load_streams` for the
latest schema of each stream (so rejects can be replayed without the tap).

Batch, reject and run-counter rows are written inside the batch's own transaction,
so the audit trail and the data can never disagree.
"""

# SQL here is built from identifiers passed through Warehouse.quote (tested) and
# fixed fragments; every value is a bound $n parameter.
# ruff: noqa: S608

from __future__ import annotations

import datetime
import typing as t
from dataclasses import dataclass, field

import msgspec

from target_looker.columns import BIGINT, JSON, TEXT, TIMESTAMPTZ, Column
from target_looker.warehouse.base import TableRef

if t.TYPE_CHECKING:
    from target_looker.warehouse.base import MergeCounts, Warehouse

_encode = msgspec.json.Encoder(decimal_format="number").encode


def _col(name: str, sql_type=TEXT, *, nullable: bool = True) -> Column:
    return Column(name, sql_type, nullable=nullable)


@dataclass(frozen=True)
class AuditTable:
    name: str
    columns: tuple[Column, ...]
    keys: tuple[str, ...]


RUNS = AuditTable(
    "_load_runs",
    (
        _col("run_id", nullable=False),
        _col("started_at", TIMESTAMPTZ),
        _col("finished_at", TIMESTAMPTZ),
        _col("status"),
        _col("records_in", BIGINT),
        _col("rows_inserted", BIGINT),
        _col("rows_updated", BIGINT),
        _col("rows_skipped", BIGINT),
        _col("rows_rejected", BIGINT),
        _col("last_state", JSON),
        _col("looker_actions", JSON),
        _col("error"),
    ),
    ("run_id",),
)
BATCHES = AuditTable(
    "_load_batches",
    (
        _col("run_id", nullable=False),
        _col("batch_id", nullable=False),
        _col("stream"),
        _col("table_name"),
        _col("records_in", BIGINT),
        _col("rows_inserted", BIGINT),
        _col("rows_updated", BIGINT),
        _col("rows_skipped", BIGINT),
        _col("rows_rejected", BIGINT),
        _col("min_bookmark"),
        _col("max_bookmark"),
        _col("checksum"),
        _col("committed_at", TIMESTAMPTZ),
    ),
    ("batch_id",),
)
REJECTS = AuditTable(
    "_load_rejects",
    (
        _col("reject_id", nullable=False),
        _col("run_id"),
        _col("batch_id"),
        _col("stream"),
        _col("received_at", TIMESTAMPTZ),
        _col("reason"),
        _col("record"),  # the raw record exactly as received: JSON text
        _col("time_extracted"),
        _col("table_version", BIGINT),
        _col("replayed_at", TIMESTAMPTZ),
        _col("replay_run_id"),
    ),
    ("reject_id",),
)
STREAMS = AuditTable(
    "_load_streams",
    (
        _col("stream", nullable=False),
        _col("table_name"),
        _col("schema", JSON),
        _col("key_properties", JSON),
        _col("bookmark_properties", JSON),
        _col("updated_at", TIMESTAMPTZ),
    ),
    ("stream",),
)
AUDIT_TABLES = (RUNS, BATCHES, REJECTS, STREAMS)


@dataclass
class Reject:
    """A record that cannot be loaded, kept verbatim with the reason."""

    stream: str
    reason: str
    record: str  # raw JSON text
    received_at: datetime.datetime
    time_extracted: str | None = None
    table_version: int | None = None


@dataclass
class BatchAudit:
    run_id: str
    batch_id: str
    stream: str
    table_name: str
    records_in: int
    counts: MergeCounts
    rejected: int
    min_bookmark: str | None
    max_bookmark: str | None
    checksum: str
    committed_at: datetime.datetime


@dataclass
class RunTotals:
    records_in: int = 0
    inserted: int = 0
    updated: int = 0
    skipped: int = 0
    rejected: int = 0

    def add(self, batch: BatchAudit) -> None:
        self.records_in += batch.records_in
        self.inserted += batch.counts.inserted
        self.updated += batch.counts.updated
        self.skipped += batch.counts.skipped
        self.rejected += batch.rejected


def now() -> datetime.datetime:
    return datetime.datetime.now(tz=datetime.timezone.utc)


@dataclass
class AuditLog:
    """Writes the audit rows of one run."""

    warehouse: Warehouse
    schema: str
    run_id: str
    totals: RunTotals = field(default_factory=RunTotals)
    last_state: dict | None = None

    def table(self, spec: AuditTable) -> str:
        return self.warehouse.qualified(TableRef(self.schema, spec.name))

    def ensure_tables(self) -> None:
        wh = self.warehouse
        wh.ensure_schema(self.schema)
        for spec in AUDIT_TABLES:
            ref = TableRef(self.schema, spec.name)
            existing = wh.existing_columns(ref)
            if existing is None:
                wh.create_table(ref, spec.columns, spec.keys)
                continue
            for column in spec.columns:  # audit tables grow like data tables: add only
                if column.name not in existing:
                    wh.add_column(ref, column)

    def start(self, started_at: datetime.datetime) -> None:
        self.warehouse.execute(
            f"INSERT INTO {self.table(RUNS)} (run_id, started_at, status, records_in, "
            "rows_inserted, rows_updated, rows_skipped, rows_rejected) "
            "VALUES ($1, $2, 'running', 0, 0, 0, 0, 0)",
            (self.run_id, started_at),
        )

    def record_stream(
        self, stream: str, table_name: str, schema: dict, keys: list, bookmarks: list
    ) -> None:
        wh = self.warehouse
        with wh.transaction():
            wh.execute(f"DELETE FROM {self.table(STREAMS)} WHERE stream = $1", (stream,))
            wh.execute(
                f"INSERT INTO {self.table(STREAMS)} VALUES ($1, $2, $3, $4, $5, $6)",
                (
                    stream,
                    table_name,
                    _encode(schema).decode(),
                    _encode(keys).decode(),
                    _encode(bookmarks).decode(),
                    now(),
                ),
            )

    def record_rejects(self, batch_id: str | None, rejects: list[Reject]) -> None:
        """Inside the batch transaction: the rejects of this batch."""
        if not rejects:
            return
        self.warehouse.executemany(
            f"INSERT INTO {self.table(REJECTS)} (reject_id, run_id, batch_id, stream, "
            "received_at, reason, record, time_extracted, table_version) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            [
                (
                    f"{batch_id or self.run_id}:{i}",
                    self.run_id,
                    batch_id,
                    r.stream,
                    r.received_at,
                    r.reason,
                    r.record,
                    r.time_extracted,
                    r.table_version,
                )
                for i, r in enumerate(rejects)
            ],
        )

    def record_batch(self, batch: BatchAudit, state: dict | None) -> None:
        """Inside the batch transaction: the batch row and the run's running totals."""
        c = batch.counts
        self.warehouse.execute(
            f"INSERT INTO {self.table(BATCHES)} VALUES "
            "($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
            (
                batch.run_id,
                batch.batch_id,
                batch.stream,
                batch.table_name,
                batch.records_in,
                c.inserted,
                c.updated,
                c.skipped,
                batch.rejected,
                batch.min_bookmark,
                batch.max_bookmark,
                batch.checksum,
                batch.committed_at,
            ),
        )
        self.totals.add(batch)
        if state is not None:
            self.last_state = state
        self._write_totals()

    def _write_totals(self, *extra: tuple[str, t.Any]) -> None:
        totals = self.totals
        values: list[tuple[str, t.Any]] = [
            ("records_in", totals.records_in),
            ("rows_inserted", totals.inserted),
            ("rows_updated", totals.updated),
            ("rows_skipped", totals.skipped),
            ("rows_rejected", totals.rejected),
            ("last_state", None if self.last_state is None else _encode(self.last_state).decode()),
            *extra,
        ]
        assignments = ", ".join(f"{name} = ${i + 2}" for i, (name, _) in enumerate(values))
        self.warehouse.execute(
            f"UPDATE {self.table(RUNS)} SET {assignments} WHERE run_id = $1",
            (self.run_id, *(v for _, v in values)),
        )

    def record_state(self, state: dict) -> None:
        """A state that became safe without a batch (nothing was pending)."""
        self.last_state = state
        self._write_totals()

    def record_looker_actions(self, actions: dict) -> None:
        """What the post-load Looker step triggered (datagroups, PDTs, LookML), for the run row."""
        self.warehouse.execute(
            f"UPDATE {self.table(RUNS)} SET looker_actions = $2 WHERE run_id = $1",
            (self.run_id, _encode(actions).decode()),
        )

    def finish(self, status: str, error: str | None = None) -> None:
        self._write_totals(("status", status), ("finished_at", now()), ("error", error))

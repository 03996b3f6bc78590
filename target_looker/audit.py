"""Audit trail: one `_load_runs` row per run, one `_load_batches` row per committed
batch, `_load_rejects` for records that could not be loaded, `_load_streams` for the
latest schema of each stream (so rejects can be replayed without the tap).

Batch, reject and run-counter rows are written inside the batch's own transaction,
so the audit trail and the data can never disagree. The run row's `last_state` is the
STATE emitted after that transaction (sealed inside it, see committer.py), and its
`heartbeat_at` is bumped with every write: a run whose process died stays `running`
until the next run finds it dead (`mark_dead_runs`) and marks it `interrupted`.
"""

# SQL here is built from identifiers passed through Warehouse.quote (tested) and
# fixed fragments; every value is a bound $n parameter.
# ruff: noqa: S608

from __future__ import annotations

import dataclasses
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
        _col("heartbeat_at", TIMESTAMPTZ),  # the run's last write: a sign of life
        _col("liveness"),  # how another run can tell it is alive (load_session.py)
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
        # The table the batch was written to when not `table_name`: an overwrite's shadow,
        # which becomes `table_name` when the run swaps it in (only a succeeded run does).
        _col("loaded_into"),
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
        _col("input_line", BIGINT),  # line number of the record in the target's input
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
    input_line: int | None = None
    #: The record's key as a row holds it, when it could be read and the record belongs
    #: to a full-table sync (`table_version`): the key still counts as seen.
    key: tuple | None = None


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
    loaded_into: str | None = None  # an overwrite's shadow table (see BATCHES)


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
    totals: RunTotals = field(default_factory=RunTotals)  # committed
    last_state: dict | None = None  # the last STATE recorded and committed (then emitted)
    _staged: tuple[RunTotals, dict | None] | None = None  # written, not yet committed

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

    def start(self, started_at: datetime.datetime, liveness: str | None = None) -> None:
        self.warehouse.execute(
            f"INSERT INTO {self.table(RUNS)} (run_id, started_at, status, records_in, "
            "rows_inserted, rows_updated, rows_skipped, rows_rejected, heartbeat_at, liveness) "
            "VALUES ($1, $2, 'running', 0, 0, 0, 0, 0, $2, $3)",
            (self.run_id, started_at, liveness),
        )

    def running_runs(self) -> list[tuple[str, datetime.datetime | None, str | None]]:
        """Other runs still `running`: id, last sign of life (heartbeat or start), and
        how they show they are alive."""
        return [
            (run_id, heartbeat or started, liveness)
            for run_id, started, heartbeat, liveness in self.warehouse.fetchall(
                f"SELECT run_id, started_at, heartbeat_at, liveness FROM {self.table(RUNS)} "
                "WHERE status = 'running' AND run_id <> $1 ORDER BY started_at",
                (self.run_id,),
            )
        ]

    def mark_interrupted(self, run_id: str, why: str) -> None:
        """A run found dead: `interrupted`, finished at its last sign of life."""
        self.warehouse.execute(
            f"UPDATE {self.table(RUNS)} SET status = 'interrupted', "
            "finished_at = COALESCE(heartbeat_at, started_at), error = $2 "
            "WHERE run_id = $1 AND status = 'running'",
            (run_id, why),
        )

    def record_stream(
        self, stream: str, table_name: str, schema: dict, keys: list, bookmarks: list
    ) -> None:
        q = self.warehouse.quote
        updates = ", ".join(
            f"{q(c.name)} = EXCLUDED.{q(c.name)}" for c in STREAMS.columns if c.name != "stream"
        )
        # One statement, so two runs recording the same stream at once cannot collide.
        self.warehouse.execute(
            f"INSERT INTO {self.table(STREAMS)} VALUES ($1, $2, $3, $4, $5, $6) "
            f"ON CONFLICT (stream) DO UPDATE SET {updates}",
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
            "received_at, reason, record, time_extracted, table_version, input_line) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
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
                    r.input_line,
                )
                for i, r in enumerate(rejects)
            ],
        )

    def record_batch(self, batch: BatchAudit, state: dict | None) -> None:
        """Inside the batch transaction: the batch row and the run's running totals."""
        c = batch.counts
        self.warehouse.execute(
            f"INSERT INTO {self.table(BATCHES)} (run_id, batch_id, stream, table_name, "
            "records_in, rows_inserted, rows_updated, rows_skipped, rows_rejected, "
            "min_bookmark, max_bookmark, checksum, committed_at, loaded_into) VALUES "
            "($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
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
                batch.loaded_into,
            ),
        )
        totals = dataclasses.replace(self.totals)
        totals.add(batch)
        self._write_totals(totals, state)

    def committed(self) -> None:
        """The transaction that wrote the last totals committed: they are the run's now.

        Until then the run's totals and `last_state` stay the committed ones, so a run
        that fails in a batch's commit records what was really committed and emitted.
        """
        if self._staged is not None:
            self.totals, state = self._staged
            if state is not None:
                self.last_state = state
            self._staged = None

    def _write_totals(
        self,
        totals: RunTotals | None = None,
        state: dict | None = None,
        *extra: tuple[str, t.Any],
        at: datetime.datetime | None = None,
    ) -> None:
        """The run row's counters and `last_state`; new `totals`/`state` are staged until
        `committed` (None: the committed ones)."""
        self._staged = None if totals is None and state is None else (totals or self.totals, state)
        totals = totals or self.totals
        last_state = state if state is not None else self.last_state
        values: list[tuple[str, t.Any]] = [
            ("records_in", totals.records_in),
            ("rows_inserted", totals.inserted),
            ("rows_updated", totals.updated),
            ("rows_skipped", totals.skipped),
            ("rows_rejected", totals.rejected),
            ("last_state", None if last_state is None else _encode(last_state).decode()),
            ("heartbeat_at", at or now()),
            *extra,
        ]
        assignments = ", ".join(f"{name} = ${i + 2}" for i, (name, _) in enumerate(values))
        self.warehouse.execute(
            f"UPDATE {self.table(RUNS)} SET {assignments} WHERE run_id = $1",
            (self.run_id, *(v for _, v in values)),
        )

    def record_state(self, state: dict | None) -> None:
        """A state that became safe without a batch (nothing was pending)."""
        self._write_totals(None, state)

    def record_looker_actions(self, actions: dict) -> None:
        """What the post-load Looker step triggered (datagroups, PDTs, LookML), for the run row."""
        self.warehouse.execute(
            f"UPDATE {self.table(RUNS)} SET looker_actions = $2 WHERE run_id = $1",
            (self.run_id, _encode(actions).decode()),
        )

    def finish(self, status: str, error: str | None = None) -> None:
        at = now()
        self._write_totals(
            None, None, ("status", status), ("finished_at", at), ("error", error), at=at
        )

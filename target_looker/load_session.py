"""One run of the target against one warehouse: connection, audit rows, loader thread.

The session opens the warehouse (or the Looker SQL Runner) on first use, creates the
audit tables and the run's `_load_runs` row, hands jobs to the loader thread
(`Committer`) and emits each job's STATE from that thread right after its commit. At
the end it marks the run succeeded and only then tells Looker; on failure it marks
the run failed (or interrupted) and emits nothing more.

Overwrite (overwrite.py): the batches of an overwrite stream load into the run's
shadow of the table (created by the stream's first batch job), and `swap_in` submits
the job that replaces the table with it; the target holds back STATE until then.

Threads: once a job is submitted, the loader thread owns the connection until it is
idle again. Main-thread code reaches the connection only through `idle_connection()`,
which waits for that.

Dead runs: a run whose process died (SIGKILL, lost connection) never records its end.
Each run, when it opens, marks such runs `interrupted`, telling a dead run from a live
concurrent one by what the warehouse offers (recorded in the run row's `liveness`):
- `advisory_lock`, PostgreSQL: every run holds a session-level advisory lock for its
  lifetime (the server drops it with the session), so a run whose lock can be taken is
  dead;
- `single_writer`, DuckDB: a file has one writing process, so a `running` row of
  another process is dead (this process knows its own live runs);
- `heartbeat`, the SQL Runner path (no session of its own): a run whose `heartbeat_at`,
  bumped with every write, is older than `STALE_RUN_AFTER` is taken for dead; so is any
  run whose own method the checking run cannot use.
"""

from __future__ import annotations

import datetime
import hashlib
import sys
import typing as t
import uuid
from functools import cached_property

import msgspec

from ifs_looker_core import encrypted_settings
from ifs_looker_core.defaults import DEFAULT_TARGET_SCHEMA
from target_looker.audit import AuditLog, BatchAudit, RunTotals, now
from target_looker.committer import Committer, Job
from target_looker.lookml import generate_lookml
from target_looker.overwrite import Overwrite
from target_looker.refresh import refresh_after_load
from target_looker.sinks import ensure_table
from target_looker.warehouse import open_warehouse
from target_looker.warehouse.base import OVERWRITE
from target_looker.warehouse.looker_sql_runner import LookerSqlRunnerWarehouse

if t.TYPE_CHECKING:
    import logging
    from collections.abc import Callable, Mapping

    from target_looker.refresh import LookerSettings
    from target_looker.sinks import BatchWork, TablePlan
    from target_looker.warehouse import Warehouse
    from target_looker.warehouse.base import TableRef

WRITE_PATHS = ("warehouse", "looker_sql_runner")
#: Where no lock tells a live run from a dead one: a `running` run silent this long is dead.
STALE_RUN_AFTER = datetime.timedelta(hours=2)
ADVISORY_LOCK, SINGLE_WRITER, HEARTBEAT = "advisory_lock", "single_writer", "heartbeat"
_encode_state = msgspec.json.Encoder(decimal_format="number").encode
# Runs of this process whose session is open (DuckDB: other processes cannot be writing).
_LIVE_RUNS: set[str] = set()


def run_lock_key(run_id: str) -> int:
    """The PostgreSQL advisory lock (a signed 64-bit key) a run holds while it lives."""
    digest = hashlib.sha256(f"target-looker run {run_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def write_state_line(state: dict) -> None:
    """Emit one STATE value on stdout, numbers exact (a Decimal bookmark stays as sent)."""
    sys.stdout.write(_encode_state(state).decode() + "\n")
    sys.stdout.flush()


def uses_sql_runner(config: Mapping[str, t.Any]) -> bool:
    return config.get("write_path", "warehouse") == "looker_sql_runner"


def target_schema_for(config: t.Mapping[str, t.Any], warehouse: Warehouse) -> str:
    """`default_target_schema`; unset, the schema the warehouse URL names (a BigQuery
    dataset, a Snowflake schema), else DEFAULT_TARGET_SCHEMA: never a silent other place."""
    return config.get("default_target_schema") or warehouse.default_schema or DEFAULT_TARGET_SCHEMA


class LoadSession:
    """The warehouse side of one target run: opened lazily, finished or failed once."""

    def __init__(
        self,
        config: Mapping[str, t.Any],
        looker_settings: LookerSettings,
        logger: logging.Logger,
    ) -> None:
        self.config = config
        self.looker_settings = looker_settings
        self.logger = logger
        self.run_id = f"{now():%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"
        self._warehouse: Warehouse | None = None
        self._audit: AuditLog | None = None
        self._committer = Committer(self._on_committed)
        self._overwrites: dict[TableRef, Overwrite] = {}  # in progress: not swapped in yet
        self._all_overwrites: list[Overwrite] = []  # of the run, to drop its shadows on failure
        self._finished = False  # the run row has its final status

    # Settings ---------------------------------------------------------------------------

    @cached_property
    def target_schema(self) -> str:
        configured = self.config.get("default_target_schema")
        if configured:
            return configured
        return target_schema_for(self.config, open_warehouse(self.warehouse_url, self.config))

    @property
    def warehouse_url(self) -> str | None:
        """`warehouse_url`, decrypted when it is given as `fernet:...` (SPEC section 9)."""
        url = self.config.get("warehouse_url")
        return encrypted_settings.decrypt("warehouse_url", url) if url else None

    # Opening ------------------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        """The run has started: connected, with its `_load_runs` row."""
        return self._audit is not None

    def _open(self) -> tuple[Warehouse, AuditLog]:
        """Connect, create the audit tables and the run row (once); never waits."""
        if self._warehouse is None or self._audit is None:
            warehouse = (
                LookerSqlRunnerWarehouse(self.looker_settings)
                if uses_sql_runner(self.config)
                else open_warehouse(self.warehouse_url, self.config)
            )
            try:
                warehouse.connect()
            except BaseException:  # a half-open connection (e.g. a failed SET) is closed too
                warehouse.close()
                raise
            self._warehouse = warehouse  # from here on, `close` closes it
            self.logger.info("Loading into %s, schema %r", warehouse.safe_url, self.target_schema)
            audit = AuditLog(warehouse, self.target_schema, self.run_id)
            audit.ensure_tables()
            liveness = self._liveness(warehouse)
            if liveness == ADVISORY_LOCK:
                warehouse.fetchall(
                    "SELECT pg_advisory_lock(CAST($1 AS BIGINT))", (run_lock_key(self.run_id),)
                )
            _LIVE_RUNS.add(self.run_id)
            audit.start(now(), liveness)
            self._audit = audit
            self._mark_dead_runs(warehouse, audit)
        return self._warehouse, self._audit

    @staticmethod
    def _liveness(warehouse: Warehouse) -> str:
        """How this run shows it is alive (see the module docstring)."""
        if isinstance(warehouse, LookerSqlRunnerWarehouse):
            return HEARTBEAT
        if warehouse.dialect == "postgresql":
            return ADVISORY_LOCK
        if warehouse.dialect == "duckdb":
            return SINGLE_WRITER
        return HEARTBEAT

    def _mark_dead_runs(self, warehouse: Warehouse, audit: AuditLog) -> None:
        """Mark `interrupted` the runs left `running` by a process that died."""
        try:
            for run_id, last_seen, liveness in audit.running_runs():
                if not self._is_alive(warehouse, run_id, last_seen, liveness):
                    audit.mark_interrupted(
                        run_id,
                        f"the run's process ended without finishing (last sign of life "
                        f"{last_seen:%Y-%m-%d %H:%M:%S %Z}; found by run {self.run_id})"
                        if last_seen
                        else f"the run's process ended without finishing (found by run "
                        f"{self.run_id})",
                    )
                    self.logger.warning("Run %s had died: marked interrupted", run_id)
        except Exception:  # bookkeeping about other runs never stops this one
            self.logger.exception("Could not check for runs left running")

    def _is_alive(
        self,
        warehouse: Warehouse,
        run_id: str,
        last_seen: datetime.datetime | None,
        liveness: str | None,
    ) -> bool:
        mine = self._liveness(warehouse)
        method = liveness or mine  # rows of older versions: as runs here do now
        if method == mine == ADVISORY_LOCK:
            key = run_lock_key(run_id)
            [(free,)] = warehouse.fetchall(
                "SELECT pg_try_advisory_lock(CAST($1 AS BIGINT))", (key,)
            )
            if free:
                warehouse.fetchall("SELECT pg_advisory_unlock(CAST($1 AS BIGINT))", (key,))
            return not free
        if method == mine == SINGLE_WRITER:
            return run_id in _LIVE_RUNS
        return last_seen is not None and now() - last_seen < STALE_RUN_AFTER

    def idle_connection(self) -> tuple[Warehouse, AuditLog]:
        """The connection for main-thread use: opens the run, waits for the loader thread
        to be idle and raises its failure. Valid until the next job is submitted."""
        connection = self._open()
        self._committer.wait_idle()
        self.raise_loader_failure()
        return connection

    def raise_loader_failure(self) -> None:
        """Re-raise, in the main thread, a failure of the loader thread."""
        self._committer.raise_if_failed()

    @property
    def totals(self) -> RunTotals | None:
        """The run's counts so far (None before it opened); final once it finished."""
        return None if self._audit is None else self._audit.totals

    # Jobs for the loader thread -----------------------------------------------------------

    def _submit(self, run: Callable[[Job], t.Any], state: dict | None) -> None:
        self._committer.submit(Job(run, state))

    def load(self, work: BatchWork, state: dict | None) -> None:
        """Load and audit one batch on the loader thread; `state` is emitted after it commits.

        A batch of an overwrite goes into the table's shadow, created by the first one.
        """
        warehouse, audit = self._open()
        overwrite = None
        if work.batch.load_method == OVERWRITE:
            table = work.batch.table
            overwrite = self._overwrites.get(table)
            if overwrite is None:
                overwrite = self._overwrites[table] = Overwrite(work.stream, table, self.run_id)
                self._all_overwrites.append(overwrite)
            work.into = overwrite.shadow
        logger = self.logger

        def load(job: Job) -> BatchAudit:
            if overwrite is not None and not overwrite.created:
                others = [run_id for run_id, _, _ in audit.running_runs()]

                def shape(shadow: TableRef) -> None:
                    ensure_table(warehouse, t.cast("TablePlan", work.plan), OVERWRITE, shadow)

                for name in overwrite.create(warehouse, others, shape):
                    logger.info("Dropped %s, left by a run that did not finish", name)
                logger.info(
                    "Overwrite of %s: loading into %s, swapped in at the end",
                    warehouse.qualified(overwrite.table),
                    warehouse.qualified(overwrite.shadow),
                )
            return work.load(warehouse, audit, job.seal)

        self._submit(load, state)

    def shadow_of(self, table: TableRef) -> TableRef | None:
        """The shadow this run is loading for `table` (an overwrite), once it exists."""
        overwrite = self._overwrites.get(table)
        return overwrite.shadow if overwrite is not None and overwrite.created else None

    def is_overwriting(self, table: TableRef) -> bool:
        """Batches of `table` went into a shadow that is not swapped in yet."""
        return table in self._overwrites

    def pending_overwrites(self) -> list[Overwrite]:
        """Overwrites with batches submitted and no swap yet."""
        return list(self._overwrites.values())

    def swap_in(
        self, table: TableRef, version: int | None, *, hard_delete: bool, state: dict | None
    ) -> None:
        """Replace `table` by its shadow, after the batches before; `state` is emitted
        once the swap has committed.

        `version`: the stream's ACTIVATE_VERSION; rows of older table versions are retired
        in the shadow first (never in the table users read).
        """
        overwrite = self._overwrites.pop(table)
        warehouse, audit = self._open()
        logger = self.logger

        def swap(job: Job) -> None:
            if not overwrite.created:  # no batch ever reached it: nothing to swap in
                warehouse.run_transaction(lambda: audit.record_state(job.seal()))
                return
            if version is not None:
                count = warehouse.run_transaction(
                    lambda: warehouse.retire_old_versions(
                        overwrite.shadow, version, hard_delete=hard_delete, deleted_at=now()
                    ),
                    what=f"ACTIVATE_VERSION of {overwrite.stream}",
                )
                logger.info(
                    "ACTIVATE_VERSION %s for %s: %d older rows %s in the new table",
                    version,
                    overwrite.stream,
                    count,
                    "deleted" if hard_delete else "marked _sdc_deleted_at",
                )
            overwrite.swap(warehouse, lambda: audit.record_state(job.seal()))
            logger.info(
                "Overwrite of %s: the newly loaded table replaced the old one",
                warehouse.qualified(table),
            )

        self._submit(swap, state)

    def after_commit(self, work: Callable[[], None]) -> None:
        """`work` once the jobs submitted so far have committed (none in flight: now)."""
        self._committer.after_commit(work)

    def pass_on_state(self, state: dict) -> None:
        """A STATE that is safe once the jobs already submitted have committed.

        It rides on the last job still in flight; with none, it goes through the loader
        thread on its own (recorded in the run row, then emitted).
        """
        if not self._committer.attach_state(state):
            warehouse, audit = self._open()

            def record(job: Job) -> None:
                warehouse.run_transaction(lambda: audit.record_state(job.seal()))

            self._submit(record, state)

    def retire_old_versions(
        self, stream: str, table: TableRef, version: int, *, hard_delete: bool
    ) -> None:
        """ACTIVATE_VERSION: after the batches before it, rows of older versions go."""
        warehouse, audit = self._open()
        logger = self.logger

        def retire(job: Job) -> None:
            def write() -> int:
                count = warehouse.retire_old_versions(
                    table, version, hard_delete=hard_delete, deleted_at=now()
                )
                state = job.seal()  # a STATE that rode on this job is recorded with it
                if state is not None:
                    audit.record_state(state)
                return count

            count = warehouse.run_transaction(write, what=f"ACTIVATE_VERSION of {stream}")
            logger.info(
                "ACTIVATE_VERSION %s for %s: %d older rows %s",
                version,
                stream,
                count,
                "deleted" if hard_delete else "marked _sdc_deleted_at",
            )

        self._submit(retire, None)

    def _on_committed(self, job: Job) -> None:
        """On the loader thread, right after a job committed: emit its STATE, log it."""
        if self._audit is not None:
            self._audit.committed()
        if job.state is not None:  # recorded in the run row inside the job's transaction
            write_state_line(job.state)
        if isinstance(job.result, BatchAudit):
            self._log_batch(job.result)

    def _log_batch(self, result: BatchAudit) -> None:
        self.logger.info(
            "Committed %s batch: %d records -> %d inserted, %d updated, %d skipped, %d rejected",
            result.stream,
            result.records_in,
            result.counts.inserted,
            result.counts.updated,
            result.counts.skipped,
            result.rejected,
        )

    # End of the run ---------------------------------------------------------------------

    def finish(self) -> None:
        """After the last job: mark the run succeeded, then (only then) the Looker step."""
        warehouse, audit = self.idle_connection()
        self._refresh_statistics(warehouse)
        audit.finish("succeeded")
        self._finished = True
        audit.record_looker_actions(self._after_load(warehouse))

    def _refresh_statistics(self, warehouse: Warehouse) -> None:
        """Planner statistics of the tables the run loaded in bulk; the load is committed,
        so a failure here is logged, never the run's."""
        try:
            refreshed = warehouse.refresh_statistics()
        except Exception as exc:
            self.logger.warning("Could not refresh the warehouse's statistics: %s", exc)
            return
        if refreshed:
            names = ", ".join(table.name for table in refreshed)
            self.logger.info("Refreshed the planner's statistics of %s", names)

    def _after_load(self, warehouse: Warehouse) -> dict:
        """Only after a committed, successful load: tell Looker, regenerate LookML.

        Neither step can undo the load or hold back state; failures are reported in
        the run's `looker_actions` and in the log.
        """
        actions = refresh_after_load(self.looker_settings)
        lookml_dir = self.config.get("lookml_dir")
        if lookml_dir:
            connection = self.looker_settings.connection_name or "warehouse"
            try:
                written = generate_lookml(
                    warehouse, self.target_schema, lookml_dir, connection=connection
                )
                actions["lookml"] = [str(path) for path in written]
            except Exception as exc:  # the load is committed: report, never undo or block
                self.logger.error("LookML not written to %s: %s", lookml_dir, exc)
                actions["lookml"] = [str(path) for path in getattr(exc, "written", [])]
                actions["lookml_error"] = f"{type(exc).__name__}: {exc}"
                actions["status"] = "failed"
        return actions

    def fail(self, error: BaseException) -> None:
        """Record the failed run and close; its uncommitted records were never
        acknowledged by STATE, so the next run replays them."""
        self._committer.stop()  # lets a running batch finish; queued ones are dropped
        self._drop_shadows()
        if self._audit is not None and not self._finished:
            self._finished = True
            kind = "interrupted" if isinstance(error, SystemExit | KeyboardInterrupt) else "failed"
            try:
                self._audit.finish(kind, f"{type(error).__name__}: {error}"[:4000])
            except Exception:  # the warehouse may be what failed
                self.logger.exception("Could not record the failed run %s", self.run_id)
        self.close()

    def _drop_shadows(self) -> None:
        """A failed run's shadows: never to be swapped in (the next run would drop them)."""
        if self._warehouse is None:
            return
        for overwrite in self._all_overwrites:
            if overwrite.created:  # not swapped in
                try:
                    self._warehouse.drop_table(overwrite.shadow)
                except Exception as exc:  # the warehouse may be what failed
                    self.logger.warning(
                        "Could not drop %s (the next run will): %s", overwrite.shadow.name, exc
                    )
        self._overwrites.clear()
        self._all_overwrites.clear()

    def close(self) -> None:
        """Stop the loader thread and close the connection (safe to call twice); on
        PostgreSQL closing the session releases the run's advisory lock."""
        self._committer.stop()
        if self._warehouse is not None:
            self._warehouse.close()
        _LIVE_RUNS.discard(self.run_id)


__all__ = [
    "WRITE_PATHS",
    "LoadSession",
    "target_schema_for",
    "uses_sql_runner",
    "write_state_line",
]

"""target-looker: Singer target loading IFS Cloud data into the warehouse behind Looker.

STATE semantics: a STATE message is emitted only once every record received before
it is committed, right after the batch that made it safe (not only at the end). A
failed write raises, so the process exits non-zero without newer state, and the
next run replays from the last committed bookmark.
"""

from __future__ import annotations

import contextlib
import gc
import math
import sys
import typing as t
import uuid

import msgspec
from singer_sdk import typing as th
from singer_sdk.exceptions import ConfigValidationError, RecordsWithoutSchemaException
from singer_sdk.helpers.capabilities import PluginCapabilities, TargetCapabilities
from singer_sdk.mapper import SameRecordTransform
from singer_sdk.target_base import Target

from ifs_looker_core import encrypted_settings
from ifs_looker_core.defaults import DEFAULT_TARGET_SCHEMA
from target_looker import naming
from target_looker.audit import AuditLog, BatchAudit, now
from target_looker.committer import Committer, Job
from target_looker.lookml import generate_lookml
from target_looker.reader import FastSingerReader, RecordEnvelope, decode_generic
from target_looker.refresh import LookerSettings, LookerSettingsError, refresh_after_load
from target_looker.sinks import LookerSink
from target_looker.warehouse import Warehouse, default_url, open_warehouse
from target_looker.warehouse.base import LOAD_METHODS, OVERWRITE, UPSERT
from target_looker.warehouse.looker_sql_runner import LookerSqlRunnerWarehouse

if t.TYPE_CHECKING:
    from types import FrameType

DEFAULT_BATCH_SIZE_ROWS = 10_000
WRITE_PATHS = ("warehouse", "looker_sql_runner")
_encode_state = msgspec.json.Encoder(decimal_format="number").encode


class TargetLooker(Target):
    """Loads Singer streams into typed, keyed, audited warehouse tables for Looker."""

    name = "target-looker"
    message_reader_class = FastSingerReader
    default_sink_class = LookerSink
    capabilities: t.ClassVar = [
        PluginCapabilities.ABOUT,
        PluginCapabilities.STREAM_MAPS,
        PluginCapabilities.ACTIVATE_VERSION,
        TargetCapabilities.HARD_DELETE,
    ]

    config_jsonschema = th.PropertiesList(
        th.Property(
            "warehouse_url",
            th.StringType,
            secret=True,
            description=(
                "SQLAlchemy URL of the warehouse behind the Looker connection, e.g. "
                "postgresql://user:pw@host:5432/db (psycopg 3). Default: DuckDB file "
                f"{default_url()!r} under the working directory."
            ),
        ),
        th.Property(
            "column_naming",
            th.StringType,
            default=naming.SNAKE_CASE,
            allowed_values=list(naming.NAMING_MODES),
            description="snake_case (VoucherNo -> voucher_no) or preserve",
        ),
        th.Property(
            "default_target_schema",
            th.StringType,
            default=DEFAULT_TARGET_SCHEMA,
            description="Warehouse schema for data and audit tables",
        ),
        th.Property(
            "load_method",
            th.StringType,
            default=UPSERT,
            allowed_values=list(LOAD_METHODS),
            description="upsert (versioned merge by key), append-only or overwrite",
        ),
        th.Property(
            "write_path",
            th.StringType,
            default="warehouse",
            allowed_values=list(WRITE_PATHS),
            description="warehouse (direct) or looker_sql_runner (through the Looker API)",
        ),
        th.Property(
            "batch_size_rows",
            th.IntegerType,
            default=DEFAULT_BATCH_SIZE_ROWS,
            description="Records per committed batch; STATE follows each commit",
        ),
        th.Property(
            "hard_delete",
            th.BooleanType,
            default=False,
            description="ACTIVATE_VERSION deletes rows instead of setting _sdc_deleted_at",
        ),
        th.Property("looker_base_url", th.StringType, description="https://acme.cloud.looker.com"),
        th.Property("looker_client_id", th.StringType, description="Looker API 4.0 client id"),
        th.Property("looker_client_secret", th.StringType, secret=True),
        th.Property("looker_connection_name", th.StringType),
        th.Property("looker_datagroups", th.ArrayType(th.StringType), description="model::name"),
        th.Property("looker_pdts", th.ArrayType(th.StringType), description="model/view"),
        th.Property("lookml_dir", th.StringType, description="Where to write LookML views"),
        th.Property("looker_max_retries", th.IntegerType, default=8),
        th.Property("looker_max_backoff_seconds", th.NumberType, default=60),
    ).to_dict()

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        super().__init__(*args, **kwargs)
        self.looker_settings = self._looker_settings()
        self.max_parallelism = 1
        self.message_reader.on_error = self._on_error
        self.run_id = f"{now():%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"
        self.bookmark_properties: dict[str, list[str]] = {}
        self._warehouse: Warehouse | None = None
        self._audit: AuditLog | None = None
        self._seq = 0
        self._pending_states: list[tuple[int, dict]] = []
        self._fast_sinks: dict[str, LookerSink] = {}
        self._last_sink: LookerSink | None = None  # the sink of the latest record
        self._activations: dict[str, int] = {}
        self._overwritten: set[str] = set()
        self._finished = False
        self._committer = Committer(self._on_committed)

    def _looker_settings(self) -> LookerSettings:
        """The Looker settings, checked up front: a bad value fails before any data moves."""
        try:
            settings = LookerSettings.from_config(self.config)
        except (LookerSettingsError, encrypted_settings.SecretError) as exc:
            raise ConfigValidationError(str(exc), errors=[str(exc)]) from None
        if self.uses_sql_runner and not (settings.configured and settings.connection_name):
            message = (
                "write_path 'looker_sql_runner' needs looker_base_url, looker_client_id, "
                "looker_client_secret and looker_connection_name"
            )
            raise ConfigValidationError(message, errors=[message])
        return settings

    @property
    def uses_sql_runner(self) -> bool:
        return self.config.get("write_path", "warehouse") == "looker_sql_runner"

    # Warehouse and audit, opened on the first SCHEMA ---------------------------------

    @property
    def target_schema(self) -> str:
        return self.config.get("default_target_schema") or DEFAULT_TARGET_SCHEMA

    @property
    def warehouse_url(self) -> str | None:
        """`warehouse_url`, decrypted when it is given as `fernet:...` (SPEC section 9)."""
        url = self.config.get("warehouse_url")
        return encrypted_settings.decrypt("warehouse_url", url) if url else None

    @property
    def warehouse(self) -> Warehouse:
        """The connection, for main-thread use: waits until the loader thread is idle."""
        if self._warehouse is None:
            warehouse = (
                LookerSqlRunnerWarehouse(self.looker_settings)
                if self.uses_sql_runner
                else open_warehouse(self.warehouse_url)
            )
            warehouse.connect()
            self.logger.info("Loading into %s, schema %r", warehouse.safe_url, self.target_schema)
            audit = AuditLog(warehouse, self.target_schema, self.run_id)
            audit.ensure_tables()
            audit.start(now())
            self._warehouse, self._audit = warehouse, audit
        self._committer.wait_idle()
        self._emit_finished()
        return self._warehouse

    @property
    def audit(self) -> AuditLog:
        _ = self.warehouse
        return t.cast("AuditLog", self._audit)

    # Messages --------------------------------------------------------------------------

    def _process_schema_message(self, message_dict: dict) -> None:
        stream = message_dict.get("stream")
        self.bookmark_properties[stream] = list(message_dict.get("bookmark_properties") or [])
        existing = self._sinks_active.get(stream)
        if (
            existing is not None
            and existing.pending
            and (
                existing.original_schema != message_dict.get("schema")
                or list(existing.key_properties) != list(message_dict.get("key_properties") or [])
            )
        ):
            self.commit_sink(existing)  # old-schema records go in before the table changes
        self._fast_sinks.clear()
        super()._process_schema_message(message_dict)
        self._sinks_to_clear = [s for s in self._sinks_to_clear if s.pending]

    def _sink_for(self, stream: str) -> LookerSink | None:
        """The sink for records that need no stream-map transform, else None."""
        sink = self._fast_sinks.get(stream)
        if sink is not None:
            return sink
        maps = self.mapper.stream_maps.get(stream)
        if maps is None:
            raise RecordsWithoutSchemaException(
                f"A record for stream {stream!r} arrived before its SCHEMA message"
            )
        if (
            len(maps) == 1
            and type(maps[0]) is SameRecordTransform
            and maps[0].stream_alias == stream
            and not maps[0].flattening_enabled
            and stream in self._sinks_active
        ):
            sink = t.cast("LookerSink", self._sinks_active[stream])
            self._fast_sinks[stream] = sink
            return sink
        return None

    def _process_record_message(  # type: ignore[override]
        self, envelope: RecordEnvelope, has_nul: bool = True
    ) -> None:
        self._seq += 1
        sink = self._sink_for(envelope.stream)
        self._last_sink = sink
        if sink is not None:
            sink.add(envelope, self._seq, has_nul)
            if sink.pending >= sink.batch_rows:
                self.commit_sink(sink)
        else:
            record = decode_generic(envelope.record)
            for stream_map in self.mapper.stream_maps[envelope.stream]:
                transformed = stream_map.transform(dict(record))
                if transformed is None:
                    continue
                mapped = t.cast("LookerSink", self.get_sink(stream_map.stream_alias))
                mapped.add_record(transformed, envelope, self._seq)
                if mapped.pending >= mapped.batch_rows:
                    self.commit_sink(mapped)
        if self._committer.has_finished:
            self._emit_finished()
        if self._seq % 1000 == 0:
            self._handle_max_record_age()

    def _process_state_message(self, message_dict: dict) -> None:
        self._assert_line_requires(message_dict, requires={"value"})
        self._pending_states.append((self._seq, message_dict["value"]))
        # A stream the tap has moved on from would otherwise hold its partial batch,
        # and with it every later STATE, until the end of the run.
        for sink in self._all_sinks():
            if sink.pending and sink is not self._last_sink:
                self.commit_sink(sink)
        state = self._take_safe_state()
        if state is not None and not self._committer.attach_state(state):
            # Nothing in flight: record it and pass it on now (through the loader thread).
            self._submit(lambda: self.audit_log.record_state(state), state)
        self._emit_finished()

    def _process_activate_version_message(self, message_dict: dict) -> None:
        if not self.config.get("process_activate_version_messages", True):
            self.logger.warning("ACTIVATE_VERSION ignored (process_activate_version_messages off)")
            return
        stream, version = message_dict["stream"], int(message_dict["version"])
        for stream_map in self.mapper.stream_maps.get(stream, []):
            alias = stream_map.stream_alias
            previous = self._activations.get(alias)
            if previous is not None and previous != version:
                self._apply_activation(alias, previous)
            self._activations[alias] = version

    def _process_batch_message(self, message_dict: dict) -> None:
        raise NotImplementedError(
            "BATCH messages are not supported by target-looker: run the tap without "
            "batch_config so it sends RECORD messages"
        )

    # Committing ------------------------------------------------------------------------

    @property
    def audit_log(self) -> AuditLog:
        """The audit log without waiting (for code running on the loader thread)."""
        return t.cast("AuditLog", self._audit)

    def _all_sinks(self) -> list[LookerSink]:
        return [*self._sinks_to_clear, *self._sinks_active.values()]  # type: ignore[list-item]

    def _take_safe_state(self) -> dict | None:
        """The newest pending STATE with no buffered record before it (or None).

        Records already handed to the loader thread count as committed here: the STATE
        rides on the last job submitted, and is emitted only once that job commits.
        """
        low = min(
            (s.first_seq for s in self._all_sinks() if s.first_seq is not None),
            default=math.inf,
        )
        position = -1
        for i, (watermark, _) in enumerate(self._pending_states):
            if watermark < low:
                position = i
        if position < 0:
            return None
        state = self._pending_states[position][1]
        del self._pending_states[: position + 1]
        return state

    def _submit(self, run: t.Callable[[], t.Any], state: dict | None) -> None:
        _ = self.warehouse if self._warehouse is None else None
        self._committer.submit(Job(run, state))
        self._emit_finished()

    def _on_committed(self, job: Job) -> None:
        """On the loader thread, right after a job committed: emit its STATE, log it."""
        if job.state is not None:
            self.audit_log.last_state = job.state  # written with the next totals
            self._write_state_message(job.state)
        if isinstance(job.result, BatchAudit):
            self._log_batch(job.result)

    def _emit_finished(self) -> None:
        """Surface a loader-thread failure in the main thread."""
        self._committer.finished()
        self._committer.raise_if_failed()

    def commit_sink(self, sink: LookerSink) -> None:
        """Hand one sink's batch to the loader thread; its STATE follows the commit."""
        if not sink.pending:
            return
        if self._warehouse is None:
            _ = self.warehouse
        table = sink.plan.table
        truncate = sink.load_method == OVERWRITE and table not in self._overwritten
        if truncate:
            self._overwritten.add(table)
        work = sink.take_batch(truncate)
        state = self._take_safe_state()
        warehouse, audit = self._warehouse, self.audit_log
        self._submit(lambda: work.load(warehouse, audit, state), state)

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

    def commit_all(self) -> None:
        for sink in sorted(
            (s for s in self._all_sinks() if s.pending), key=lambda s: s.first_seq or 0
        ):
            self.commit_sink(sink)
        self._sinks_to_clear = []
        self._reset_max_record_age()

    def _apply_activation(self, stream: str, version: int) -> None:
        sink = self._sinks_active.get(stream)
        if sink is None:
            return
        self.commit_sink(t.cast("LookerSink", sink))
        hard = bool(self.config.get("hard_delete", False))
        table = sink.plan.table
        warehouse = self._warehouse

        def retire() -> None:
            with warehouse.transaction():
                count = warehouse.retire_old_versions(
                    table, version, hard_delete=hard, deleted_at=now()
                )
            self.logger.info(
                "ACTIVATE_VERSION %s for %s: %d older rows %s",
                version,
                stream,
                count,
                "deleted" if hard else "marked _sdc_deleted_at",
            )

        self._submit(retire, None)

    def _handle_max_record_age(self) -> None:
        if self._max_record_age_in_minutes > self._MAX_RECORD_AGE_IN_MINUTES:
            self.logger.info(
                "Records older than %d minutes: committing", self._MAX_RECORD_AGE_IN_MINUTES
            )
            self.commit_all()

    def process_endofpipe(self) -> None:
        try:
            if self._warehouse is None and not self._pending_states:
                return
            self.commit_all()
            for stream, version in list(self._activations.items()):
                self._apply_activation(stream, version)
            self._activations.clear()
            state = self._take_safe_state()
            if state is not None:
                self._submit(lambda: self.audit_log.record_state(state), state)
            self.audit.finish("succeeded")  # waits for the loader thread
            self._finished = True
            self.audit.record_looker_actions(self._after_load())
            for sink in self._all_sinks():
                sink.clean_up()
        except BaseException as exc:
            self._on_error(exc)
            raise
        finally:
            self._committer.stop()
            if self._warehouse is not None:
                self._warehouse.close()

    def _after_load(self) -> dict:
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
                    self.warehouse, self.target_schema, lookml_dir, connection=connection
                )
                actions["lookml"] = [str(path) for path in written]
            except Exception as exc:  # the load is committed: report, never undo or block
                self.logger.error("LookML not written to %s: %s", lookml_dir, exc)
                actions["lookml_error"] = f"{type(exc).__name__}: {exc}"
        return actions

    def _write_state_message(self, state: dict) -> None:
        sys.stdout.write(_encode_state(state).decode() + "\n")
        sys.stdout.flush()

    # Failure ---------------------------------------------------------------------------

    def _on_error(self, error: BaseException) -> None:
        """Record the failed run; its uncommitted records were never acknowledged by STATE."""
        self._committer.stop()  # lets a running batch finish; queued ones are dropped
        if self._audit is None or self._finished:
            return
        self._finished = True
        status = "interrupted" if isinstance(error, SystemExit | KeyboardInterrupt) else "failed"
        try:
            self._audit.finish(status, f"{type(error).__name__}: {error}"[:4000])
        except Exception:  # the warehouse may be what failed
            self.logger.exception("Could not record the failed run %s", self.run_id)

    @classmethod
    def invoke(cls, *args: t.Any, **kwargs: t.Any) -> None:  # type: ignore[override]
        """The CLI run, with the garbage collector tuned for bulk loading."""
        with bulk_loading_gc():
            super().invoke(*args, **kwargs)

    def _handle_termination(self, signum: int, frame: FrameType | None) -> None:
        """SIGTERM/SIGINT: abandon the open batch (rolled back), exit non-zero."""
        self.logger.warning("Signal %d: stopping; uncommitted records will be replayed", signum)
        raise SystemExit(128 + signum)


@contextlib.contextmanager
def bulk_loading_gc() -> t.Iterator[None]:
    """Collect cyclic garbage rarely while loading.

    A batch is tens of thousands of fresh tuples; with the default threshold (700
    allocations) the collector walks them over and over and costs about a third of
    the run. Rows hold no cycles, so collecting every 100,000 allocations loses
    nothing, and objects alive before the load are frozen out of the walk.
    """
    previous = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(100_000, 20, 100)
    try:
        yield
    finally:
        gc.set_threshold(*previous)
        gc.unfreeze()


__all__ = ["TargetLooker"]

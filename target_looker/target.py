"""target-looker: Singer target loading IFS Cloud data into the warehouse behind Looker.

STATE semantics: a STATE message is emitted only once every record received before
it is committed, right after the batch that made it safe (not only at the end). A
failed write raises, so the process exits non-zero without newer state, and the
next run replays from the last committed bookmark. With `load_method: overwrite` a
stream's records are committed into a shadow table that users cannot see until it is
swapped in (overwrite.py), so STATE after its first record waits for the swap.

The parts, one job each:
- `TargetLooker` (here): settings, and routing Singer messages to sinks; decides when
  a sink's batch is committed.
- `StateLedger` (state_ledger.py): which STATE is safe after which commits.
- `LoadSession` (load_session.py): the run in the warehouse: connection, audit rows,
  the loader thread that commits batches and emits STATE, the Looker step, failures.
- `LookerSink` (sinks.py): one stream's records decoded into rows and batches.
- `BatchManifest`, `BatchFileCleanup` (batch_files.py): BATCH messages, whose files'
  lines take the RECORD path here, and the files' deletion once their records commit.
- `SingerTargetAdapter` (sdk_adapter.py): the SDK's private hooks, in one place.
"""

from __future__ import annotations

import contextlib
import gc
import time
import typing as t

import click
import msgspec
from singer_sdk import typing as th
from singer_sdk.exceptions import ConfigValidationError, RecordsWithoutSchemaException
from singer_sdk.helpers.capabilities import PluginCapabilities, TargetCapabilities
from singer_sdk.mapper import SameRecordTransform

from ifs_looker_core import encrypted_settings
from ifs_looker_core.defaults import DEFAULT_TARGET_SCHEMA
from target_looker import naming
from target_looker.batch_files import (
    BatchFile,
    BatchFileCleanup,
    BatchFileError,
    BatchManifest,
    describe_line,
    undecodable_record_reason,
)
from target_looker.load_session import WRITE_PATHS, LoadSession, uses_sql_runner
from target_looker.reader import FastSingerReader, RecordEnvelope, decode_generic
from target_looker.refresh import LookerSettings, LookerSettingsError
from target_looker.sdk_adapter import SingerTargetAdapter
from target_looker.sinks import DEFAULT_BATCH_SIZE_BYTES, LookerSink
from target_looker.state_ledger import StateLedger
from target_looker.warehouse import default_url
from target_looker.warehouse.base import LOAD_METHODS, OVERWRITE, UPSERT, WarehouseError

if t.TYPE_CHECKING:
    from collections.abc import Mapping

    from target_looker.warehouse.base import TableRef

DEFAULT_BATCH_SIZE_ROWS = 10_000
# Buffered records older than this are committed even if their batch is not full
# (the SDK's rule for targets, five minutes), checked every 1,000 records.
MAX_BUFFER_AGE_SECONDS = 300.0
# SDK built-in settings this target does not honour, and why: `--about` leaves them out
# and a config that sets one gets a warning.
UNSUPPORTED_BUILTIN_SETTINGS = {
    "add_record_metadata": "target-looker always writes its own metadata columns",
}


def checked_looker_settings(config: Mapping[str, t.Any]) -> LookerSettings:
    """The Looker settings, checked up front: a bad value fails before any data moves."""
    try:
        settings = LookerSettings.from_config(config)
    except (LookerSettingsError, encrypted_settings.SecretError) as exc:
        raise ConfigValidationError(str(exc), errors=[str(exc)]) from None
    if uses_sql_runner(config) and not (settings.configured and settings.connection_name):
        message = (
            "write_path 'looker_sql_runner' needs looker_base_url, looker_client_id, "
            "looker_client_secret and looker_connection_name"
        )
        raise ConfigValidationError(message, errors=[message])
    return settings


def check_batch_size(config: Mapping[str, t.Any]) -> None:
    """`batch_size_rows` is a whole number of at least 1 (0 used to mean one record per
    batch). The config schema says so too; this holds when the SDK skips validation."""
    batch_size = config.get("batch_size_rows", DEFAULT_BATCH_SIZE_ROWS)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        message = f"batch_size_rows must be a whole number of at least 1, not {batch_size!r}"
        raise ConfigValidationError(message, errors=[message])


class TargetLooker(SingerTargetAdapter[LookerSink]):
    """Loads Singer streams into typed, keyed, audited warehouse tables for Looker."""

    name = "target-looker"
    package_name = "ifs-looker-connector"  # the distribution: `--about` shows its version
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
                "URL of the warehouse behind the Looker connection: "
                "postgresql://user:pw@host:5432/db (psycopg 3), "
                "bigquery://PROJECT/DATASET?location=EU (extra [bigquery]), "
                "snowflake://USER:PW@ACCOUNT/DB/SCHEMA?warehouse=WH&role=R (extra [snowflake]). "
                f"Default: DuckDB file {default_url()!r} under the working directory."
            ),
        ),
        th.Property(
            "bigquery_service_account_key",
            th.StringType,
            secret=True,
            description=(
                "BigQuery service-account key: the JSON key file's path or the JSON itself "
                "(may be fernet:...). Without it, Application Default Credentials; with "
                "bigquery_api_endpoint and no key, anonymous."
            ),
        ),
        th.Property(
            "bigquery_api_endpoint",
            th.StringType,
            description="Another endpoint for the BigQuery client (e.g. a local emulator)",
        ),
        th.Property(
            "bigquery_timeout_seconds",
            th.IntegerType,
            default=600,
            description="Seconds one BigQuery API call or job may take, retries included",
        ),
        th.Property(
            "snowflake_private_key",
            th.StringType,
            secret=True,
            description="Snowflake key-pair auth: PEM text or file path (may be fernet:...)",
        ),
        th.Property(
            "snowflake_private_key_passphrase",
            th.StringType,
            secret=True,
            description="Passphrase of an encrypted snowflake_private_key (may be fernet:...)",
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
            description=(
                "Warehouse schema for data and audit tables; unset: the BigQuery dataset or "
                f"Snowflake schema named in warehouse_url, else {DEFAULT_TARGET_SCHEMA}"
            ),
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
            th.IntegerType(minimum=1),
            default=DEFAULT_BATCH_SIZE_ROWS,
            description="Records per committed batch (at least 1); STATE follows each commit",
        ),
        th.Property(
            "batch_size_bytes",
            th.IntegerType(minimum=1),
            default=DEFAULT_BATCH_SIZE_BYTES,
            description="Fewer records per batch for wide records: a stream's batches hold "
            "about this much record JSON (16 MiB), so memory does not grow with the number "
            "of properties and custom fields",
        ),
        th.Property(
            "hard_delete",
            th.BooleanType,
            default=False,
            description="ACTIVATE_VERSION deletes rows instead of setting _sdc_deleted_at",
        ),
        th.Property(
            "delete_batch_files",
            th.BooleanType,
            default=True,
            description=(
                "Delete each file of a BATCH message once all its records are committed "
                "(a failed run keeps the rest); false: never touch them"
            ),
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

    @classmethod
    def append_builtin_config(cls, config_jsonschema: dict) -> None:
        """The SDK's built-in settings, less those this target does not honour."""
        super().append_builtin_config(config_jsonschema)
        for setting in UNSUPPORTED_BUILTIN_SETTINGS:
            config_jsonschema["properties"].pop(setting, None)

    def __init__(self, **kwargs: t.Any) -> None:
        super().__init__(**kwargs)
        for setting, reason in UNSUPPORTED_BUILTIN_SETTINGS.items():
            if setting in self.config:
                self.logger.warning("Setting %r is ignored: %s", setting, reason)
        check_batch_size(self.config)
        self.session = LoadSession(self.config, checked_looker_settings(self.config), self.logger)
        self.ledger = StateLedger()
        self.batch_files = BatchFileCleanup(
            enabled=bool(self.config.get("delete_batch_files", True)), logger=self.logger
        )
        self.message_reader.on_error = self._fail
        self.message_reader.on_bad_record = self.process_undecodable_record
        self.bookmark_properties: dict[str, list[str]] = {}
        self._fast_sinks: dict[str, LookerSink] = {}  # streams whose records need no map
        self._last_sink: LookerSink | None = None  # the sink of the latest record
        self._activations: dict[str, int] = {}  # stream -> version, retired at the end
        self._last_full_commit = time.monotonic()

    # Messages -------------------------------------------------------------------------------

    def process_schema(self, message: dict) -> None:
        stream = message.get("stream")
        self.bookmark_properties[stream] = list(message.get("bookmark_properties") or [])
        existing = self.active_sink(stream)
        if (
            existing is not None
            and existing.current_size
            and (
                existing.original_schema != message.get("schema")
                or list(existing.key_properties) != list(message.get("key_properties") or [])
            )
        ):
            self.commit_sink(existing)  # old-schema records go in before the table changes
        self._fast_sinks.clear()
        self.register_schema(message)
        self.release_retired_sinks()

    def process_record(self, envelope: RecordEnvelope, has_nul: bool = True, line: int = 0) -> None:
        """The hot path: one typed decode into the stream's sink; a full sink commits.

        `has_nul`: the input line holds a `\\u0000` escape (FastSingerReader checks);
        `line`: its number in the input, for a reject.
        """
        ledger = self.ledger
        seq = ledger.last_seq = ledger.last_seq + 1
        sink = self._fast_sinks.get(envelope.stream) or self._unmapped_sink(envelope.stream)
        self._last_sink = sink
        if sink is not None:
            if sink.add(envelope, seq, has_nul, line):  # the batch is full
                self.commit_sink(sink)
        else:
            self._add_mapped(envelope, seq, line)
        if seq % 1000 == 0:
            self._check_progress()

    def _check_progress(self) -> None:
        """Now and then on the hot path: a loader failure surfaces, a stream's rows per
        batch fit its record size, and records buffered longer than
        MAX_BUFFER_AGE_SECONDS are committed."""
        self.session.raise_loader_failure()
        for sink in self.all_sinks():
            if sink.fit_batch_rows():  # smaller batches, and this one is already full
                self.commit_sink(sink)
        if time.monotonic() - self._last_full_commit > MAX_BUFFER_AGE_SECONDS:
            self.logger.info("Records older than %d s: committing", MAX_BUFFER_AGE_SECONDS)
            self.commit_all()

    def _unmapped_sink(self, stream: str) -> LookerSink | None:
        """The sink for records that need no stream-map transform (remembered), else None."""
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
        ):
            sink = self.active_sink(stream)
            if sink is not None:
                self._fast_sinks[stream] = sink
            return sink
        return None

    def _add_mapped(self, envelope: RecordEnvelope, seq: int, line: int) -> None:
        """A record through its stream maps: decoded generically, one row per mapped stream."""
        try:
            record = decode_generic(envelope.record)
        except (msgspec.DecodeError, RecursionError, UnicodeDecodeError) as exc:
            reason = undecodable_record_reason(envelope.record, exc, line)  # or not JSON: stop
            self._reject_mapped(envelope, seq, line, reason)
            return
        if not isinstance(record, dict):
            self._reject_mapped(envelope, seq, line, "record is not a JSON object")
            return
        for stream_map in self.mapper.stream_maps[envelope.stream]:
            transformed = stream_map.transform(dict(record))
            if transformed is None:
                continue
            sink = t.cast("LookerSink", self.get_sink(stream_map.stream_alias))
            if sink.add_record(transformed, envelope, seq, line):  # the batch is full
                self.commit_sink(sink)

    def process_undecodable_record(self, envelope: RecordEnvelope, line: int, reason: str) -> None:
        """A RECORD line that is JSON but whose record cannot be decoded: one reject.

        (The reader's `on_bad_record`: a lone surrogate escape, absurd nesting.)
        """
        self.ledger.last_seq += 1
        if envelope.stream not in self.mapper.stream_maps:
            raise RecordsWithoutSchemaException(
                f"A record for stream {envelope.stream!r} arrived before its SCHEMA message"
            )
        self._reject_mapped(envelope, self.ledger.last_seq, line, reason)

    def _reject_mapped(self, envelope: RecordEnvelope, seq: int, line: int, reason: str) -> None:
        """A record no stream map can see: rejected into the sink of its first mapped stream."""
        sink = next(
            (
                s
                for m in self.mapper.stream_maps.get(envelope.stream, [])
                if (s := self.active_sink(m.stream_alias)) is not None
            ),
            None,
        )
        if sink is None:  # the stream maps drop the stream altogether
            self.logger.warning(
                "Stream %r, %s: undecodable record of a stream that is not loaded, dropped (%s)",
                envelope.stream,
                describe_line(line),
                reason,
            )
            return
        self._last_sink = sink
        sink.add_undecodable(envelope, seq, line, reason)
        if sink.current_size >= sink.batch_rows:
            self.commit_sink(sink)

    def process_state(self, message: dict) -> None:
        self.message_reader.assert_line_requires(message, requires={"value"})
        self.ledger.state_received(message["value"])
        # A stream the tap has moved on from would otherwise hold its partial batch,
        # and with it every later STATE, until the end of the run.
        for sink in self.all_sinks():
            if sink.current_size and sink is not self._last_sink:
                self.commit_sink(sink)
        state = self._take_safe_state()
        if state is not None:
            self.session.pass_on_state(state)
        self._release_batch_files()
        self.session.raise_loader_failure()

    def process_activate_version(self, message: dict) -> None:
        """Remember the version; rows of older ones are retired after the stream's records."""
        if not self.config.get("process_activate_version_messages", True):
            self.logger.warning("ACTIVATE_VERSION ignored (process_activate_version_messages off)")
            return
        stream, version = message["stream"], int(message["version"])
        for stream_map in self.mapper.stream_maps.get(stream, []):
            alias = stream_map.stream_alias
            previous = self._activations.get(alias)
            if previous is not None and previous != version:  # the previous one is complete
                self._complete_version(alias, previous)
            self._activations[alias] = version

    def process_batch_manifest(self, message: dict) -> None:
        """A BATCH message: each file's lines, in order, take the path of RECORD lines
        (stream maps, typed decode, rejects, batches, STATE, versions, audit); its records
        are committed at its end, and each file is deleted once its records are
        committed (`delete_batch_files`).

        Not the SDK's `process_batch_files`: it makes a dict of every record and
        bypasses these sinks.
        """
        manifest = BatchManifest.from_message(message)  # all checked before any file is read
        if manifest.stream not in self.mapper.stream_maps:
            raise RecordsWithoutSchemaException(
                f"A BATCH for stream {manifest.stream!r} arrived before its SCHEMA message"
            )
        for batch_file in manifest.files:
            self.batch_files.reading(batch_file)
            first_seq = self.ledger.last_seq + 1
            self._read_batch_file(manifest, batch_file)
            self.batch_files.file_read(batch_file, first_seq, self.ledger.last_seq)
            # Its records may all be with the loader already (a full batch was the last).
            self.batch_files.handed_over(self._oldest_buffered())
            self._release_batch_files()
        # The last records go to the loader now: a tap that bounds its files on disk
        # waits for them to be committed and deleted before it writes more.
        self.commit_all()

    def _read_batch_file(self, manifest: BatchManifest, batch_file: BatchFile) -> None:
        """The BATCH hot path: every non-blank line is one record. A block of lines goes
        to its sink in one piece (`LookerSink.add_lines`, one decode for all) when the
        stream needs no stream map; otherwise, or when the sink cannot take the block
        whole, each line is handed to `process_record` as the reader hands over a RECORD
        line, and the sink's typed decode explains the one that failed."""
        stream = manifest.stream
        with contextlib.closing(batch_file.blocks()) as blocks:
            for number, lines in blocks:
                sink = self._fast_sinks.get(stream) or self._unmapped_sink(stream)
                while lines:
                    taken = self._add_lines(sink, manifest, lines, number)
                    if not taken:
                        self._process_lines(manifest, lines, number)
                        break
                    lines = lines[taken:]
                    number += taken

    def _add_lines(
        self, sink: LookerSink | None, manifest: BatchManifest, lines: list[bytes], number: int
    ) -> int:
        """As many of `lines` as the sink's open batch has room for, added in one piece
        (then committed if full): how many, or 0 when they must go one by one."""
        if sink is None:
            return 0
        chunk = lines[: max(sink.batch_rows - sink.current_size, 1)]
        ledger = self.ledger
        full = sink.add_lines(
            chunk, ledger.last_seq + 1, number, manifest.time_extracted, manifest.version
        )
        if full is None:
            return 0
        ledger.last_seq += len(chunk)
        self._last_sink = sink
        if full:
            self.commit_sink(sink)
        self._check_progress()
        return len(chunk)

    def _process_lines(self, manifest: BatchManifest, lines: list[bytes], first: int) -> None:
        """Lines of a batch file one by one, each as a RECORD line."""
        process = self.process_record
        stream, extracted, version = manifest.stream, manifest.time_extracted, manifest.version
        envelope, raw, nul = RecordEnvelope, msgspec.Raw, b"\\u0000"
        for number, line in enumerate(lines, first):
            if not line or line.isspace():
                continue
            record = envelope("RECORD", stream, raw(line), extracted, version)
            process(record, nul in line, number)

    def on_termination(self, signum: int) -> None:
        """SIGTERM/SIGINT: abandon the open batch (rolled back), exit non-zero."""
        self.logger.warning("Signal %d: stopping; uncommitted records will be replayed", signum)
        raise SystemExit(128 + signum)

    # Committing -----------------------------------------------------------------------------

    def _oldest_buffered(self) -> int | None:
        """The number of the oldest record still buffered in a sink (None: none is)."""
        return min((s.first_seq for s in self.all_sinks() if s.first_seq is not None), default=None)

    def _take_safe_state(self) -> dict | None:
        """The STATE that the records handed to the loader thread make safe; the batch
        files they came from wait for those jobs to commit."""
        oldest = self._oldest_buffered()
        self.batch_files.handed_over(oldest)
        return self.ledger.take_safe(oldest)

    def commit_sink(self, sink: LookerSink) -> None:
        """Hand one sink's batch to the loader thread; the STATE it makes safe rides on it.

        An overwrite's batch is invisible until the swap: its records hold STATE back.
        """
        if not sink.current_size:
            return
        if sink.load_method == OVERWRITE:
            self.ledger.hold(sink.plan.table, t.cast("int", sink.first_seq))
            self.batch_files.hold(sink.plan.table, t.cast("int", sink.first_seq))
        work = sink.take_batch()
        self.session.load(work, self._take_safe_state())
        self._release_batch_files()

    def _release_batch_files(self) -> None:
        """Batch files whose records are all in jobs submitted so far go when those
        commit (on the loader thread, whether or not more input arrives)."""
        self.batch_files.delete_when_committed(self.session.after_commit)

    def commit_all(self) -> None:
        """Every buffered batch, oldest first record first."""
        for sink in sorted(
            (s for s in self.all_sinks() if s.current_size), key=lambda s: s.first_seq or 0
        ):
            self.commit_sink(sink)
        self.release_retired_sinks()
        self._last_full_commit = time.monotonic()

    def _complete_version(self, stream: str, version: int) -> None:
        """Full-table version `version` of `stream` is complete: rows of older versions go.

        In an overwrite in progress, the shadow (retired inside) replaces the table.
        """
        sink = self.active_sink(stream)
        if sink is None:
            return
        self.commit_sink(sink)
        if self.session.is_overwriting(sink.plan.table):
            self._swap_in(sink.plan.table, version)
            return
        self.session.retire_old_versions(
            stream, sink.plan.table, version, hard_delete=bool(self.config.get("hard_delete"))
        )

    def _swap_in(self, table: TableRef, version: int | None) -> None:
        """An overwrite's shadow replaces `table`; the STATE its records held back rides
        on the swap."""
        self.ledger.release(table)
        self.batch_files.release(table)
        self.session.swap_in(
            table,
            version,
            hard_delete=bool(self.config.get("hard_delete")),
            state=self._take_safe_state(),
        )
        self._release_batch_files()

    def process_endofpipe(self) -> None:
        """End of input: commit everything, swap overwrites in, retire old versions, pass
        on the last STATE, finish the run, then the Looker step."""
        try:
            if not self.session.is_open and not self.ledger.has_pending:
                self.batch_files.handed_over(None)  # no record reached a sink
                self.batch_files.committed()
                return
            self.commit_all()
            for overwrite in self.session.pending_overwrites():
                self._swap_in(overwrite.table, self._activations.pop(overwrite.stream, None))
            for stream, version in list(self._activations.items()):
                self._complete_version(stream, version)
            self._activations.clear()
            state = self._take_safe_state()
            if state is not None:
                self.session.pass_on_state(state)
            self.session.finish()
            self.batch_files.committed()
            for sink in self.all_sinks():
                sink.clean_up()
        except BaseException as exc:
            self._fail(exc)
            raise
        finally:
            self.session.close()

    def _fail(self, error: BaseException) -> None:
        """The run failed: fail the session (nothing uncommitted is acknowledged, so the
        next run replays it), then say which batch files stay."""
        try:
            self.session.fail(error)  # the batch loading now finishes, and its files go
        finally:
            self.batch_files.keep_on_failure()

    @classmethod
    def invoke(cls, *args: t.Any, **kwargs: t.Any) -> None:  # type: ignore[override]
        """The CLI run, with the garbage collector tuned for bulk loading."""
        with bulk_loading_gc():
            try:
                super().invoke(*args, **kwargs)
            except (WarehouseError, BatchFileError) as exc:  # one line, no traceback
                raise click.ClickException(str(exc)) from None


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

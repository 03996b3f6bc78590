"""The tap's one seam to singer-sdk internals: every private SDK name it uses is here.

IFS rows are read in pages (key-set paging, paging.py); they arrive typed, hold only
the selected columns and come in ascending bookmark order. singer-sdk 0.54 offers no
public hook for four things this makes possible, so `PagedStream` does them here:

- the bookmark moves once per page instead of once per record, to the page's newest
  replication value (rows without one are ignored, never a crash), and STATE follows
  every page, so a target that commits batches resumes a killed run from the last
  page (`_increment_stream_state`, `_write_state_message`);
- a page goes out in one piece: when nothing needs the SDK's per-record path (no
  stream map or flattening that changes records, no batch files, no dry-run record
  limit, no child streams), `_sync_records` runs the SDK's own loop a page at a time
  and the writer encodes the page's RECORD messages in one call and one write
  (`output.FastSingerWriter.write_records`): the same bytes as the per-record path,
  without its Python work per record. It keeps the SDK's partition handling, metrics,
  starting values and state finalisation (`_get_state_partition_context`,
  `_write_starting_replication_value`, `_finalize_state`);
- otherwise RECORD messages skip the SDK's per-record work (pruning deselected
  properties, type conformance, a clock read per record) and still pass through every
  stream map, so `stream_maps` and `flattening_*` keep working
  (`_generate_record_messages`);
- with `batch_config` (jsonl files on local storage), the same page loop writes pages
  to batch files (batch_files.py) instead of the SDK's per-record batcher
  (`get_batches`, `_sync_records`' steps as above); a BATCH message carries the sync's
  version and the file's extraction time (`_generate_batch_messages`);
- every record of a FULL_TABLE stream carries the version of the ACTIVATE_VERSION the
  SDK wrote at the start of the sync (`_stream_version`).

`PRIVATE_SDK_NAMES` lists each one; tests/tap_ifscloud/test_sdk_adapter.py checks them,
and the signatures relied on, against the installed singer-sdk, so an SDK upgrade
fails that test instead of a production run. No other tap module uses a private name.
"""

from __future__ import annotations

import abc
import typing as t
from datetime import datetime, timezone
from functools import cached_property

from singer_sdk import Stream
from singer_sdk.mapper import RemoveRecordTransform, SameRecordTransform
from singer_sdk.singerlib import ActivateVersionMessage, RecordMessage

from tap_ifscloud.batch_files import (
    BatchFileMessage,
    BatchFileSettings,
    BatchFileWriter,
    PendingFiles,
)
from tap_ifscloud.output import FastSingerWriter

if t.TYPE_CHECKING:
    from singer_sdk import Tap

PRIVATE_SDK_NAMES: tuple[str, ...] = (
    "singer_sdk.Stream._increment_stream_state",
    "singer_sdk.Stream._write_state_message",
    "singer_sdk.Stream._generate_record_messages",
    "singer_sdk.Stream._stream_version",
    "singer_sdk.Stream._sync_records",
    "singer_sdk.Stream._get_state_partition_context",
    "singer_sdk.Stream._write_starting_replication_value",
    "singer_sdk.Stream._finalize_state",
    "singer_sdk.Stream._generate_batch_messages",
)

Record = dict[str, t.Any]


class PagedStream(Stream):
    """A stream read in pages: subclasses implement `get_pages`.

    Contract for subclasses: `get_pages` yields, per page, a list of records and the
    page's newest replication-key value (None when no row of the page has one); the
    records are already of their final JSON types and hold only the selected columns
    (see `selected_columns`); within a partition they come in ascending replication-key
    order. Whatever `get_pages` does after its last page runs after that page's STATE.
    With `for_writer` the pages go straight to `FastSingerWriter.write_records`, so a
    record may be anything its encoder writes as that JSON object (e.g. a msgspec
    Struct) that also answers `in` and item assignment by property name; otherwise
    records are dicts.
    """

    def __init__(self, tap: Tap, *, name: str, schema: dict[str, t.Any]) -> None:
        super().__init__(tap=tap, schema=schema, name=name)
        self.plugin = tap
        self.extracted_at = datetime.now(timezone.utc)  # `time_extracted` of the current page
        self.batch_extracted_at: datetime | None = None  # of the batch file handed over last

    @abc.abstractmethod
    def get_pages(
        self, context: dict | None, *, for_writer: bool = False
    ) -> t.Iterable[tuple[list[t.Any], t.Any]]:
        """Per page: its records and its newest replication-key value (or None)."""

    def get_records(self, context: dict | None) -> t.Iterable[Record]:
        """The records one at a time, for the SDK's per-record path (stream maps,
        flattening, batch files): the bookmark moves and STATE follows once the SDK has
        taken a page's last record."""
        for records, bookmark in self.get_pages(context):
            yield from records
            self.end_page(context, bookmark)

    # -- what subclasses use -----------------------------------------------------------

    def selected_columns(self) -> set[str]:
        """The catalog schema's properties, less what the catalog deselects."""
        properties = self.effective_schema.get("properties", {})
        mask = self.mask
        return {name for name in properties if mask.get(("properties", name), True)}

    @cached_property
    def batching(self) -> bool:
        """True when `batch_config` is set: the SDK writes BATCH files, STATE after each."""
        return self.get_batch_config(self.config) is not None

    @property
    def stream_version(self) -> int | None:
        """The version of this sync's ACTIVATE_VERSION (full-table streams), else None."""
        return self._stream_version

    def end_page(self, context: dict | None, bookmark: t.Any = None) -> None:
        """After a page's last record: the bookmark moves to `bookmark` (the page's newest
        replication-key value; None leaves it) and (unless batching) STATE is written,
        also when the SDK's own every-10,000-records STATE came just before (it carries
        the previous page's bookmark)."""
        if bookmark is not None and self.replication_key:
            super()._increment_stream_state({self.replication_key: bookmark}, context=context)
            self.state_manager.is_flushed = False
        if not self.batching:
            self._write_state_message()

    def write_activate_version(self) -> None:
        """ACTIVATE_VERSION (again) for every stream map, e.g. after a full table's last row,
        so a target drops the rows the source no longer has."""
        version = self.stream_version
        if version is None:
            return
        for stream_map in self.stream_maps:
            if not isinstance(stream_map, RemoveRecordTransform):
                self.plugin.write_message(
                    ActivateVersionMessage(stream=stream_map.stream_alias, version=version)
                )

    def page_writer(self) -> FastSingerWriter | None:
        """The writer that takes whole pages, when nothing needs the SDK's per-record path:
        every stream map passes records through unchanged (or drops the stream), no
        flattening, no dry-run record limit, no child streams, the tap's writer is the
        fast one. None otherwise (batch files never get here: `_sync_records`)."""
        writer = self.plugin.message_writer
        if (
            not isinstance(writer, FastSingerWriter)
            or not self.selected
            or self.child_streams
            or self.ABORT_AT_RECORD_COUNT is not None
            or type(self).post_process is not Stream.post_process
        ):
            return None
        for stream_map in self.stream_maps:
            if isinstance(stream_map, RemoveRecordTransform):
                continue
            if type(stream_map) is not SameRecordTransform or stream_map.flattening_enabled:
                return None
        return writer

    def add_partition_values(
        self, records: list[t.Any], values: t.Iterable[tuple[str, t.Any]]
    ) -> None:
        """The SDK's `_process_record`: a record lacking a partition key gets its value."""
        for key, value in values:
            for record in records:
                if key not in record:
                    record[key] = value

    def write_page(self, writer: FastSingerWriter, records: list[t.Any]) -> None:
        """A page's RECORD messages, for every stream map, in one write each."""
        for stream_map in self.stream_maps:
            if not isinstance(stream_map, RemoveRecordTransform):
                writer.write_records(
                    stream_map.stream_alias,
                    records,
                    version=self._stream_version,
                    time_extracted=self.extracted_at,
                )

    # -- SDK internals -----------------------------------------------------------------

    def _sync_records(
        self, context: dict | None = None, *, write_messages: bool = True
    ) -> t.Generator[Record, t.Any, t.Any]:
        """The SDK's `_sync_records` a page at a time, when `page_writer` allows it.

        Per partition, as the SDK: metrics context, state partition, starting value;
        per page: the partition's keys added to records lacking them (the SDK's
        `_process_record`), the RECORD messages, the record count, the bookmark and
        STATE (`end_page`); then the SDK's state finalisation and closing STATE. The
        SDK's STATE every 10,000 records is left out: STATE follows every page.
        Yields nothing (the SDK's `sync` only drains it; batch files take the SDK's
        path with `write_messages=False`).
        """
        writer = self.page_writer() if write_messages else None
        if writer is None:
            yield from super()._sync_records(context, write_messages=write_messages)
            return
        for records in self.counted_pages(context):
            self.write_page(writer, records)
        self._write_state_message()

    def counted_pages(self, context: dict | None) -> t.Iterator[list[t.Any]]:
        """The SDK's `_sync_records` steps around each page the caller writes.

        Per partition, as the SDK: metrics context, state partition, starting value; per
        page: the partition's keys added to records lacking them (the SDK's
        `_process_record`), then the page is yielded to be written, and once the caller
        asks for the next one, the record count and the bookmark move (`end_page`); then
        the SDK's state finalisation. The SDK's STATE every 10,000 records is left out.
        """
        record_counter = self.get_record_counter()
        timer = self.get_sync_timer()
        context_list = [context] if context is not None else self.partitions
        with record_counter, timer:
            for context_element in context_list or [{}]:
                record_counter.with_context(context_element)
                timer.with_context(context_element)
                current_context = context_element or None
                state_partition_context = self._get_state_partition_context(current_context)
                self._write_starting_replication_value(current_context)
                partition_values = tuple((state_partition_context or {}).items())
                for records, bookmark in self.get_pages(current_context, for_writer=True):
                    if records:
                        self.add_partition_values(records, partition_values)
                        yield records
                        self.state_manager.is_flushed = False
                        record_counter.increment(len(records))
                    self.end_page(current_context, bookmark)
                if current_context == state_partition_context:
                    self._finalize_state(self.get_context_state(current_context))
        if not context:
            self._finalize_state(self.stream_state)

    def batch_file_writer(self, batch_config: t.Any) -> BatchFileWriter | None:
        """A writer of whole pages to batch files, when the page path applies (see
        `page_writer`) and `batch_config` asks for jsonl files on local storage; None
        leaves the files to the SDK's batcher."""
        if self.page_writer() is None:
            return None
        storage = batch_config.storage
        settings = BatchFileSettings.from_config(
            str(batch_config.encoding.format),
            batch_config.encoding.compression,
            storage.root,
            storage.prefix,
            batch_config.batch_size,
        )
        if settings is None:
            return None
        return BatchFileWriter(settings, self.tap_name, self.name, self.pending_batch_files())

    def pending_batch_files(self) -> PendingFiles | None:
        """The tap's count of handed-over files the target has not loaded yet (shared by
        its streams), which bounds the files on disk; None: unbounded."""
        return None

    def get_batches(
        self, batch_config: t.Any, context: dict | None = None
    ) -> t.Iterable[tuple[t.Any, list[str]]]:
        """Batch files a page at a time (see `batch_file_writer`), else the SDK's.

        A file is handed over (the SDK then writes its BATCH message and STATE) before
        the next page is written, once the bookmark has moved past its last page, so a
        STATE never covers a record that is not in a file already named.
        """
        files = self.batch_file_writer(batch_config)
        if files is None:
            yield from super().get_batches(batch_config, context)
            return
        try:
            for records in self.counted_pages(context):
                if files.full:
                    yield from self._hand_over(files, batch_config)
                files.write(records, self.extracted_at)
            yield from self._hand_over(files, batch_config)
        except BaseException:
            files.discard()
            raise

    def _hand_over(
        self, files: BatchFileWriter, batch_config: t.Any
    ) -> t.Iterator[tuple[t.Any, list[str]]]:
        extracted_at = files.extracted_at
        url = files.close()
        if url is not None:
            self.batch_extracted_at = extracted_at
            yield batch_config.encoding, [url]

    def _generate_batch_messages(
        self, encoding: t.Any, manifest: list[str]
    ) -> t.Generator[BatchFileMessage, None, None]:
        """The SDK's BATCH messages (one per stream map), with the sync's version, as
        RECORD messages carry it, and the file's extraction time."""
        extracted_at = self.batch_extracted_at
        if extracted_at is not None:
            extracted_at = extracted_at.astimezone(timezone.utc)
        for stream_map in self.stream_maps:
            if not isinstance(stream_map, RemoveRecordTransform):
                yield BatchFileMessage(
                    stream=stream_map.stream_alias,
                    encoding=encoding,
                    manifest=manifest,
                    version=self._stream_version,
                    time_extracted=extracted_at,
                )

    def _increment_stream_state(
        self, latest_record: dict[str, t.Any], *, context: dict | None = None
    ) -> None:
        """Nothing per record: `end_page` moves the bookmark once per page.

        Records arrive in ascending replication order, so a page's newest value is its
        last row's that has one: the bookmarks at page ends, where STATE is written, are
        the same as the SDK's, without its per-record work (and a row that lacks the
        field cannot crash it). A STATE the SDK writes mid-page carries the previous
        page's bookmark, which only re-reads a little more.
        """

    def _generate_record_messages(
        self, record: dict[str, t.Any]
    ) -> t.Generator[RecordMessage, None, None]:
        """The SDK's record path without its per-record work, through every stream map."""
        extracted = self.extracted_at
        version = self._stream_version
        for stream_map in self.stream_maps:
            mapped = stream_map.transform(record)
            if mapped is not None:
                yield RecordMessage(
                    stream=stream_map.stream_alias,
                    record=mapped,
                    version=version,
                    time_extracted=extracted,
                )

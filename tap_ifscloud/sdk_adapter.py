"""The tap's one seam to singer-sdk internals: every private SDK name it uses is here.

IFS rows are read in pages (key-set paging, paging.py); they arrive typed, hold only
the selected columns and come in ascending bookmark order. singer-sdk 0.54 offers no
public hook for three things this makes possible, so `PagedStream` does them here:

- the bookmark moves once per page instead of once per record, to the page's newest
  replication value (rows without one are ignored, never a crash), and STATE follows
  every page, so a target that commits batches resumes a killed run from the last
  page (`_increment_stream_state`, `_write_state_message`);
- RECORD messages skip the SDK's per-record work (pruning deselected properties,
  type conformance, a clock read per record) and still pass through every stream
  map, so `stream_maps` and `flattening_*` keep working (`_generate_record_messages`);
- every record of a FULL_TABLE stream carries the version of the ACTIVATE_VERSION the
  SDK wrote at the start of the sync (`_stream_version`).

`PRIVATE_SDK_NAMES` lists each one; tests/tap_ifscloud/test_sdk_adapter.py checks them,
and the signatures relied on, against the installed singer-sdk, so an SDK upgrade
fails that test instead of a production run. No other tap module uses a private name.
"""

from __future__ import annotations

import typing as t
from datetime import datetime, timezone
from functools import cached_property

from singer_sdk import Stream
from singer_sdk.mapper import RemoveRecordTransform
from singer_sdk.singerlib import ActivateVersionMessage, RecordMessage

if t.TYPE_CHECKING:
    from singer_sdk import Tap

PRIVATE_SDK_NAMES: tuple[str, ...] = (
    "singer_sdk.Stream._increment_stream_state",
    "singer_sdk.Stream._write_state_message",
    "singer_sdk.Stream._generate_record_messages",
    "singer_sdk.Stream._stream_version",
)


class PagedStream(Stream):
    """A stream whose `get_records` yields pages of ready records and calls `end_page()`
    after each page.

    Contract for subclasses: records are already of their final JSON types and hold
    only the selected columns (see `selected_columns`); within a partition they come in
    ascending replication-key order; `end_page` is given each page's newest
    replication-key value (None when no row of the page has one).
    """

    def __init__(self, tap: Tap, *, name: str, schema: dict[str, t.Any]) -> None:
        super().__init__(tap=tap, schema=schema, name=name)
        self.plugin = tap
        self.extracted_at = datetime.now(timezone.utc)  # `time_extracted` of the current page

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
        """Call once the SDK has taken a page's last record: the bookmark moves to
        `bookmark` (the page's newest replication-key value; None leaves it) and (unless
        batching) STATE is written."""
        if bookmark is not None and self.replication_key:
            super()._increment_stream_state({self.replication_key: bookmark}, context=context)
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

    # -- SDK internals -----------------------------------------------------------------

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

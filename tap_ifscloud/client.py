"""The IFS stream: one partition per company, bookmarks, etag columns.

Each company is a partition with its own bookmark. A run reads from the
bookmark (or start_date) minus the lookback, in (replication field, keys)
order through key-set paging (paging.py), and adds `_ifs_etag` and
`_ifs_objversion` to every row.
"""

from __future__ import annotations

import typing as t
from datetime import date, datetime, timedelta, timezone
from functools import cached_property

from singer_sdk import RESTStream
from singer_sdk.helpers._catalog import pop_deselected_record_properties
from singer_sdk.helpers.conform import TypeConformanceLevel
from singer_sdk.singerlib import RecordMessage

from tap_ifscloud import odata
from tap_ifscloud.catalogue import FULL_TABLE, INCREMENTAL, WINDOW, StreamDefinition
from tap_ifscloud.etag import ETAG_ANNOTATION, ETAG_COLUMN, OBJVERSION_COLUMN, decode_objversion
from tap_ifscloud.layout import CODE_PART_COLUMN, EntityRead, StreamLayout, build_layout
from tap_ifscloud.paging import KeysetReader

if t.TYPE_CHECKING:
    from tap_ifscloud.api import IFSApi
    from tap_ifscloud.tap import TapIFSCloud


class IFSStream(RESTStream):
    """A stream over one IFS entity set (or one per code part), per company."""

    TYPE_CONFORMANCE_LEVEL = TypeConformanceLevel.NONE  # JSON is decoded to final types
    _LOG_REQUEST_METRICS = False

    def __init__(self, tap: TapIFSCloud, definition: StreamDefinition, layout: StreamLayout):
        self.definition = definition
        self.layout = layout
        self._ifs_tap = tap
        super().__init__(tap=tap, name=definition.name, schema=layout.schema)
        self.primary_keys = layout.key_properties
        self.replication_key = layout.replication_key
        self._live_layout: StreamLayout | None = None
        self._pending_bookmark: dict | None = None
        self._extracted_at = datetime.now(timezone.utc)
        self._bookmark_context: dict | None = None

    # -- SDK hooks -------------------------------------------------------------------

    @property
    def url_base(self) -> str:
        return self.api.connection.projection_url(self.definition.projection)

    @property
    def api(self) -> IFSApi:
        return self._ifs_tap.api

    @property
    def authenticator(self):
        return self.api.tokens

    @property
    def partitions(self) -> list[dict] | None:
        return [{self.definition.partition_field: c} for c in self._ifs_tap.companies]

    @property
    def is_sorted(self) -> bool:
        return self.definition.is_incremental

    @property
    def check_sorted(self) -> bool:
        """Off: a lookback re-reads rows older than the incoming bookmark on purpose.
        Rows still arrive in ascending order (key-set paging), so the last row of a
        partition carries its newest value and the bookmark ends there."""
        return False

    @property
    def emit_activate_version_messages(self) -> bool:
        return self.definition.replication_mode == FULL_TABLE

    def compare_start_date(self, value: str, start_date_value: str) -> str:
        """The later of bookmark and start_date (for dates as well as timestamps)."""
        return max(value, start_date_value, key=odata.parse_timestamp)

    def parse_response(self, response):
        """Unused by the sync path (get_records pages itself); kept for SDK tooling."""
        yield from response.json().get("value", [])

    # -- reading ---------------------------------------------------------------------

    def get_records(self, context: dict | None) -> t.Iterable[dict[str, t.Any]]:
        layout = self.live_layout()
        company = (context or {}).get(self.definition.partition_field)
        self._bookmark_context = context
        since = self._since(context)
        wanted = self._wanted_columns()
        self._pending_bookmark = None
        for read in layout.reads:
            yield from self._read_entity_set(read, company, since, wanted)
            self._advance_bookmark(context)
        if (
            self.emit_activate_version_messages
            and self._stream_version is not None
            and context == (self.partitions or [None])[-1]
        ):
            # Emitted again after the last row, so a target drops rows IFS no longer has.
            self._write_activate_version_message(self._stream_version)

    def live_layout(self) -> StreamLayout:
        """The layout checked against the system's `$metadata` (once per run)."""
        if self._live_layout is None:
            metadata = self.api.metadata(self.definition.projection)
            self._live_layout = build_layout(self.definition, metadata.entity_sets)
        return self._live_layout

    def _wanted_columns(self) -> set[str]:
        """Columns to request (`$select`): the schema's, less what the catalog deselects."""
        properties = self.effective_schema.get("properties", {})
        mask = self.mask
        return {name for name in properties if mask.get(("properties", name), True)}

    def _since(self, context: dict | None) -> t.Any:
        """Lower bound for the replication field: bookmark (or start_date) minus lookback."""
        if not self.definition.is_incremental:
            return None
        start = self.get_starting_replication_key_value(context)
        if not start:
            return None
        config = self.config
        if self.definition.replication_mode == WINDOW:
            days = int(config.get("lookback_days") or 0)
            minutes = int(config.get("lookback_minutes") or 0)
            days += -(-minutes // (24 * 60))  # a business date moves in whole days
            return odata.as_date(start) - timedelta(days=days)
        lookback = timedelta(
            days=int(config.get("lookback_days") or 0),
            minutes=int(config.get("lookback_minutes") or 0),
        )
        return odata.parse_timestamp(start) - lookback

    def base_filter(self, read: EntityRead, company: str | None, since: t.Any) -> str:
        """Company partition, the configured filter, and the replication window.

        An `incremental` read also stops at the moment the run started (`le`),
        so rows that keep changing while the tap reads cannot keep it chasing them
        for ever; the next run starts at this run's bookmark and picks them up.
        """
        clauses: list[str | None] = []
        if company is not None:
            clauses.append(odata.eq(self.definition.partition_field, company, odata.STRING))
        clauses.append(self.definition.filter)
        name, kind = self.definition.replication_key, read.replication_kind
        if since is not None and name:
            clauses.append(odata.ge(name, _bound(since, kind), kind or odata.TIMESTAMP))
        if name and kind == odata.TIMESTAMP and self.definition.replication_mode == INCREMENTAL:
            clauses.append(odata.le(name, self._read_until, odata.TIMESTAMP))
        return odata.and_all(clauses)

    @cached_property
    def _read_until(self) -> datetime:
        """This run's upper bound for change timestamps: the tap's start, rounded up
        to whole seconds (IFS keeps change dates to the second)."""
        started = datetime.fromtimestamp(self._initialized_at / 1000, tz=timezone.utc)
        return started.replace(microsecond=0) + timedelta(seconds=1)

    def _read_entity_set(
        self,
        read: EntityRead,
        company: str | None,
        since: t.Any,
        wanted: set[str] | None,
        *,
        page_size: int | None = None,
        max_pages: int | None = None,
    ) -> t.Iterator[dict[str, t.Any]]:
        """Rows of one entity set for one company, in (replication field, keys) order."""
        reader = KeysetReader(
            self.api.get_json,
            f"{self.url_base}/{read.entity_set}",
            base_filter=self.base_filter(read, company, since),
            order_fields=read.order_fields,
            select=read.select(wanted),
            page_size=page_size or int(self.config.get("page_size") or 5000),
            max_pages=max_pages,
            name=self.name,
        )
        for rows in reader.pages():
            self._extracted_at = datetime.now(timezone.utc)
            yield from self._records(rows, read)
            # Resumed only after the SDK wrote the page's last row: a STATE per page lets
            # a target that commits batches make a killed run resume from here.
            self._advance_bookmark(self._bookmark_context)
            self._write_state_message()

    def _records(self, rows: list[dict], read: EntityRead) -> t.Iterator[dict[str, t.Any]]:
        rename = read.rename
        code_part = read.code_part
        for row in rows:
            etag = row.pop(ETAG_ANNOTATION, None)
            if rename:
                row = {rename.get(k, k): v for k, v in row.items()}
                row[CODE_PART_COLUMN] = code_part
            row[ETAG_COLUMN] = etag
            row[OBJVERSION_COLUMN] = decode_objversion(etag)
            yield row

    # -- bookmarks -------------------------------------------------------------------

    def _increment_stream_state(self, latest_record: dict, *, context: dict | None = None) -> None:
        """Remember the row; the bookmark moves once per page (see _advance_bookmark).

        Rows arrive in ascending replication order, so the last row of a page
        carries the page's newest value: advancing per page instead of per row
        gives the same bookmarks at page ends, where STATE is written, and saves
        the SDK's per-row work. A STATE the SDK writes mid-page carries the
        previous page's bookmark, which only re-reads a little more on resume.
        """
        self._pending_bookmark = latest_record

    def _advance_bookmark(self, context: dict | None) -> None:
        record, self._pending_bookmark = self._pending_bookmark, None
        if record is not None:
            super()._increment_stream_state(record, context=context)

    # -- output ----------------------------------------------------------------------

    @cached_property
    def _nothing_deselected(self) -> bool:
        return self._wanted_columns() == set(self.schema["properties"])

    def _generate_record_messages(self, record: dict) -> t.Generator[RecordMessage, None, None]:
        """The SDK's record path without per-record work this data does not need:
        rows arrive typed and already restricted to the selected columns."""
        if not self._nothing_deselected:
            pop_deselected_record_properties(record, self.schema, self.mask)
        extracted = self._extracted_at
        for stream_map in self.stream_maps:
            mapped = stream_map.transform(record)
            if mapped is not None:
                yield RecordMessage(
                    stream=stream_map.stream_alias,
                    record=mapped,
                    version=self._stream_version,
                    time_extracted=extracted,
                )


def _bound(since: t.Any, kind: str | None) -> t.Any:
    if kind == odata.DATE:
        return (
            since
            if isinstance(since, date) and not isinstance(since, datetime)
            else odata.as_date(since)
        )
    return since

"""The IFS stream: one partition per company, bookmarks, etag columns.

Each company is a partition with its own bookmark. A run reads from the
bookmark (or start_date) minus the lookback, in (replication field, keys)
order through key-set paging (paging.py), and adds `_ifs_etag` and
`_ifs_objversion` to every row. The SDK side of paging (bookmark and STATE per
page, the record fast path) is `sdk_adapter.PagedStream`.
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from functools import cached_property

from tap_ifscloud import odata
from tap_ifscloud.etag import ETAG_ANNOTATION, ETAG_COLUMN, OBJVERSION_COLUMN, decode_objversion
from tap_ifscloud.layout import CODE_PART_COLUMN, EntityRead, StreamLayout, build_layout
from tap_ifscloud.paging import KeysetReader
from tap_ifscloud.sdk_adapter import PagedStream
from tap_ifscloud.streams import FULL_TABLE, INCREMENTAL, WINDOW, StreamDefinition

if t.TYPE_CHECKING:
    from tap_ifscloud.api import IFSApi
    from tap_ifscloud.tap import TapIFSCloud

Record = dict[str, t.Any]


@dataclass(frozen=True)
class PageSample:
    """The first page of a stream's first entity set for one company (`--test`)."""

    entity_set: str
    url: str
    records: list[Record]


class IFSStream(PagedStream):
    """A stream over one IFS entity set (or one per code part), per company."""

    plugin: TapIFSCloud

    def __init__(self, tap: TapIFSCloud, definition: StreamDefinition, layout: StreamLayout):
        self.definition = definition
        self.layout = layout
        super().__init__(tap, name=definition.name, schema=layout.schema)
        self.primary_keys = layout.key_properties
        self.replication_key = layout.replication_key
        self._live_layout: StreamLayout | None = None

    # -- SDK hooks -------------------------------------------------------------------

    @property
    def partitions(self) -> list[dict] | None:
        return [{self.definition.partition_field: c} for c in self.plugin.companies]

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

    def get_records(self, context: dict | None) -> t.Iterable[Record]:
        company = (context or {}).get(self.definition.partition_field)
        since = self._since(context)
        wanted = self.selected_columns()
        for read in self.live_layout().reads:
            for records in self._pages(read, company, since, wanted):
                yield from records
                self.end_page(context)  # the SDK has written the page's last record
        if (
            not self.batching
            and self.emit_activate_version_messages
            and context == (self.partitions or [None])[-1]
        ):
            # Again after the last row, so a target drops rows IFS no longer has.
            self.write_activate_version()

    def get_batches(
        self, batch_config: t.Any, context: dict | None = None
    ) -> t.Iterable[tuple[t.Any, list[str]]]:
        """The SDK's batches; a full table's closing ACTIVATE_VERSION follows the last one."""
        yield from super().get_batches(batch_config, context)
        if self.emit_activate_version_messages:
            self.write_activate_version()

    # -- reading ---------------------------------------------------------------------

    @property
    def api(self) -> IFSApi:
        return self.plugin.api

    @property
    def projection_url(self) -> str:
        return self.api.connection.projection_url(self.definition.projection)

    def live_layout(self) -> StreamLayout:
        """The layout checked against the system's `$metadata` (once per run)."""
        if self._live_layout is None:
            metadata = self.api.metadata(self.definition.projection)
            self._live_layout = build_layout(self.definition, metadata.entity_sets)
        return self._live_layout

    def read_first_page(self, company: str) -> PageSample:
        """One page of the first entity set for `company`, from the start; bookmarks and
        STATE are left alone."""
        read = self.live_layout().reads[0]
        wanted = self.selected_columns()
        reader = self._reader(read, company, None, wanted, max_pages=1)
        records = [r for rows in reader.pages() for r in self._records(rows, read, wanted)]
        return PageSample(entity_set=read.entity_set, url=reader.url, records=records)

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
        started = datetime.fromtimestamp(self.plugin.initialized_at / 1000, tz=timezone.utc)
        return started.replace(microsecond=0) + timedelta(seconds=1)

    def _reader(
        self,
        read: EntityRead,
        company: str | None,
        since: t.Any,
        wanted: set[str],
        *,
        max_pages: int | None = None,
    ) -> KeysetReader:
        return KeysetReader(
            self.api.get_json,
            f"{self.projection_url}/{read.entity_set}",
            base_filter=self.base_filter(read, company, since),
            order_fields=read.order_fields,
            select=read.select(wanted),
            page_size=int(self.config.get("page_size") or 5000),
            max_pages=max_pages,
            name=self.name,
        )

    def _pages(
        self, read: EntityRead, company: str | None, since: t.Any, wanted: set[str]
    ) -> t.Iterator[t.Iterator[Record]]:
        """The records of one entity set for one company, a page at a time, in
        (replication field, keys) order."""
        for rows in self._reader(read, company, since, wanted).pages():
            self.extracted_at = datetime.now(timezone.utc)
            yield self._records(rows, read, wanted)

    def _records(self, rows: list[dict], read: EntityRead, wanted: set[str]) -> t.Iterator[Record]:
        """Stream records from OData rows: renamed columns, etag columns, nothing unselected."""
        rename = read.rename
        code_part = read.code_part
        unselected = _unselected_columns(read, wanted)
        for row in rows:
            etag = row.pop(ETAG_ANNOTATION, None)
            if rename:
                row = {rename.get(k, k): v for k, v in row.items()}
                row[CODE_PART_COLUMN] = code_part
            row[ETAG_COLUMN] = etag
            row[OBJVERSION_COLUMN] = decode_objversion(etag)
            for column in unselected:
                row.pop(column, None)
            yield row


def _unselected_columns(read: EntityRead, wanted: set[str]) -> tuple[str, ...]:
    """Columns a record would carry although the catalog deselects them: ordering fields
    that key-set paging must `$select`, and the etag and code-part columns."""
    carried = [read.rename.get(name, name) for name in read.select(wanted)]
    carried += [ETAG_COLUMN, OBJVERSION_COLUMN]
    if read.rename:
        carried.append(CODE_PART_COLUMN)
    return tuple(column for column in carried if column not in wanted)


def _bound(since: t.Any, kind: str | None) -> t.Any:
    if kind == odata.DATE:
        return (
            since
            if isinstance(since, date) and not isinstance(since, datetime)
            else odata.as_date(since)
        )
    return since

"""The IFS stream: one partition per company, bookmarks, etag columns.

Each company is a partition with its own bookmark. A run reads from the
bookmark (or start_date) minus the lookback, in (replication field, keys)
order through key-set paging (paging.py), and adds `_ifs_etag` and
`_ifs_objversion` to every row. The SDK side of paging (bookmark and STATE per
page, the record fast path) is `sdk_adapter.PagedStream`.

At the start of its sync a stream checks the catalog it was given against the
system's `$metadata` (read once per projection and run): properties IFS has and
the catalog lacks, and catalog properties IFS no longer has (emitted as null,
never `$select`ed), get one WARNING each per stream. Rows without a value for
the replication field are emitted, leave the bookmark alone and are counted in
one WARNING per stream; on a run without a lower bound they are read in a pass
of their own, so where a server sorts nulls does not matter. Everything here is
per page or per stream: the per-record loops are `_records` and, for typed rows
(typed_rows.py), `as_records`.
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from functools import cached_property, partial

from tap_ifscloud import odata
from tap_ifscloud.etag import ETAG_ANNOTATION, ETAG_COLUMN, OBJVERSION_COLUMN, decode_objversion
from tap_ifscloud.layout import CODE_PART_COLUMN, EntityRead, StreamLayout, build_layout
from tap_ifscloud.paging import KeysetReader
from tap_ifscloud.sdk_adapter import PagedStream
from tap_ifscloud.streams import FULL_TABLE, INCREMENTAL, WINDOW, StreamDefinition
from tap_ifscloud.typed_rows import RowDecoder, TypedRow, as_records

if t.TYPE_CHECKING:
    from tap_ifscloud.api import IFSApi
    from tap_ifscloud.batch_files import PendingFiles
    from tap_ifscloud.tap import TapIFSCloud

Record = dict[str, t.Any]


REFRESH_HINT = (
    "Meltano caches catalogs: run `meltano run --refresh-catalog tap-ifscloud target-looker` "
    "(or discover again) to pick up the system's current properties"
)


@dataclass(frozen=True)
class _ReadPlan:
    """What one entity set's rows need to become records, worked out once per read."""

    read: EntityRead
    select: tuple[str, ...]  # entity fields requested
    expected: frozenset[str]  # keys a row may carry: the select and the etag annotation
    drop: tuple[str, ...]  # columns a record must not carry (not selected)
    fill: tuple[str, ...]  # selected columns this entity set lacks: emitted as null


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
        self._rows_without_bookmark = 0
        self._unknown_reported: set[str] = set()

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

    def get_pages(
        self, context: dict | None, *, for_writer: bool = False
    ) -> t.Iterable[tuple[list[t.Any], t.Any]]:
        company = (context or {}).get(self.definition.partition_field)
        since = self._since(context)
        wanted = self.selected_columns()
        for read in self.live_layout().reads:
            yield from self._pages(read, company, since, wanted, for_writer=for_writer)
        last_partition = context == (self.partitions or [None])[-1]
        if last_partition:
            self._report_rows_without_bookmark()
        if not self.batching and self.emit_activate_version_messages and last_partition:
            # Again after the last row, so a target drops rows IFS no longer has.
            self.write_activate_version()

    def get_batches(
        self, batch_config: t.Any, context: dict | None = None
    ) -> t.Iterable[tuple[t.Any, list[str]]]:
        """The batch files (`PagedStream.get_batches`); a full table's closing ACTIVATE_VERSION
        follows the last one."""
        yield from super().get_batches(batch_config, context)
        if self.emit_activate_version_messages:
            self.write_activate_version()

    def add_partition_values(
        self, records: list[t.Any], values: t.Iterable[tuple[str, t.Any]]
    ) -> None:
        if records and isinstance(records[0], TypedRow):
            for key, value in values:
                type(records[0]).fill_missing(records, key, value)
            return
        super().add_partition_values(records, values)

    # -- reading ---------------------------------------------------------------------

    @property
    def api(self) -> IFSApi:
        return self.plugin.api

    def pending_batch_files(self) -> PendingFiles:
        return self.plugin.pending_batch_files

    @property
    def projection_url(self) -> str:
        return self.api.connection.projection_url(
            self.definition.projection, self.definition.path_prefix
        )

    def live_layout(self) -> StreamLayout:
        """The layout from the system's `$metadata` (read once per projection and run),
        checked against the catalog the first time."""
        if self._live_layout is None:
            metadata = self.api.metadata(self.definition.projection, self.definition.path_prefix)
            layout = build_layout(self.definition, metadata.entity_sets, self.projection_url)
            self._report_drift(layout)
            self._live_layout = layout
        return self._live_layout

    def _report_drift(self, live: StreamLayout) -> None:
        """One WARNING per kind of difference between the catalog and IFS's `$metadata`."""
        catalog = self.effective_schema.get("properties") or {}
        new = [name for name in live.schema["properties"] if name not in catalog]
        if new:
            self.logger.warning(
                "Stream '%s': IFS has %d propert%s the catalog lacks, so they are not read: %s. %s",
                self.name,
                len(new),
                "y" if len(new) == 1 else "ies",
                ", ".join(new),
                REFRESH_HINT,
            )
        served = set(live.schema["properties"])
        for read in live.reads:
            served.update(read.rename.get(name, name) for name in read.entity.properties)
        gone = [name for name in catalog if name not in served]
        if gone:
            left_out = {name for read in live.reads for name in read.entity.left_out}
            self.logger.warning(
                "Stream '%s': the catalog has propert%s that IFS's $metadata no longer offers "
                "as columns%s: %s. They are not requested and are emitted as null. %s",
                self.name,
                "y" if len(gone) == 1 else "ies",
                " (binary, stream or navigation properties are never read)"
                if left_out & set(gone)
                else "",
                ", ".join(gone),
                REFRESH_HINT,
            )

    def read_first_page(self, company: str) -> PageSample:
        """One page of the first entity set for `company`, from the start; bookmarks and
        STATE are left alone."""
        read = self.live_layout().reads[0]
        plan = _plan(read, self.selected_columns())
        reader = self._reader(read, plan, company, None, max_pages=1)
        records = [r for rows in reader.pages() for r in self._records(rows, plan, plan.drop)]
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

    def base_filter(
        self, read: EntityRead, company: str | None, since: t.Any, nulls: bool | None = None
    ) -> str:
        """Company partition, the configured filter, and the replication window.

        An `incremental` read also stops at the moment the run started (`le`),
        so rows that keep changing while the tap reads cannot keep it chasing them
        for ever; the next run starts at this run's bookmark and picks them up.
        `nulls` True reads only the rows without a replication value (no window
        applies to them), False only the others, None does not ask.
        """
        clauses: list[str | None] = []
        if company is not None:
            clauses.append(odata.eq(self.definition.partition_field, company, odata.STRING))
        clauses.append(self.definition.filter)
        name, kind = self.definition.replication_key, read.replication_kind
        if nulls and name:
            clauses.append(f"{odata.identifier(name)} eq null")
            return odata.and_all(clauses)
        if nulls is False and name:
            clauses.append(f"{odata.identifier(name)} ne null")
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
        plan: _ReadPlan,
        company: str | None,
        since: t.Any,
        *,
        max_pages: int | None = None,
        nulls: bool | None = None,
        decoder: RowDecoder | None = None,
    ) -> KeysetReader:
        order_fields = read.order_fields
        if nulls and read.replication_kind is not None:
            order_fields = order_fields[1:]  # the replication field is null throughout
        get_json = self.api.get_json
        if decoder is not None:
            get_json = partial(get_json, decode=decoder.decode)
        return KeysetReader(
            get_json,
            f"{self.projection_url}/{read.entity_set}",
            base_filter=self.base_filter(read, company, since, nulls),
            order_fields=order_fields,
            select=plan.select,
            page_size=int(self.config.get("page_size") or 5000),
            max_pages=max_pages,
            name=self.name,
        )

    def _pages(
        self,
        read: EntityRead,
        company: str | None,
        since: t.Any,
        wanted: set[str],
        *,
        for_writer: bool = False,
    ) -> t.Iterator[tuple[list[t.Any], t.Any]]:
        """The records of one entity set for one company, a page at a time, in
        (replication field, keys) order, each page with its newest replication value.

        Without a lower bound (a first run) the rows that have no replication value
        come first, in a read of their own, so they are neither lost nor repeated
        whether the server sorts nulls first or last. Pages `for_writer` are decoded
        into typed rows when the plan allows (typed_rows.py).
        """
        plan = _plan(read, wanted)
        key = self.replication_key if read.replication_kind is not None else None
        passes: tuple[bool | None, ...] = (True, False) if key and since is None else (None,)
        decoder = self._row_decoder(plan) if for_writer else None
        for nulls in passes:
            reader = self._reader(read, plan, company, since, nulls=nulls, decoder=decoder)
            for rows in reader.pages():
                self.extracted_at = datetime.now(timezone.utc)
                bookmark = self._page_bookmark(rows, key) if key and rows else None
                yield self._records(rows, plan, self._page_drop(rows, plan)), bookmark

    def _row_decoder(self, plan: _ReadPlan) -> RowDecoder | None:
        """Typed rows for a read whose records are its rows plus the etag columns: no
        renamed, dropped or filled column, the partition field among them."""
        read = plan.read
        if read.rename or plan.drop or plan.fill:
            return None
        if self.definition.partition_field not in plan.select:
            return None
        return RowDecoder.for_select(
            plan.select, read.entity.edm_types, [name for name, _ in read.order_fields]
        )

    def _page_bookmark(self, rows: list[dict], key: str) -> t.Any:
        """The page's newest replication value: its last row's. Rows come in ascending
        order with rows lacking the value together at one end, so the first and last
        rows show whether any lacks it; only then are the rows counted."""
        newest = rows[-1].get(key)
        if newest is not None and rows[0].get(key) is not None:
            return newest
        values = [row.get(key) for row in rows]
        present = [v for v in values if v is not None]
        self._rows_without_bookmark += len(values) - len(present)
        return present[-1] if present else None

    def _page_drop(self, rows: list[dict], plan: _ReadPlan) -> tuple[str, ...]:
        """The plan's columns to drop, plus any property a row brought that was not
        asked for (looked for in the page's first and last rows); those outside the
        catalog schema are reported once per stream."""
        if not rows or not isinstance(rows[0], dict):  # typed rows hold only the $select
            return plan.drop
        extra = (rows[0].keys() | rows[-1].keys()) - plan.expected
        if not extra:
            return plan.drop
        known = self.effective_schema.get("properties") or {}
        unknown = sorted(n for n in extra if n not in known and not n.startswith("@"))
        new = [n for n in unknown if n not in self._unknown_reported]
        if new:
            self._unknown_reported.update(new)
            self.logger.warning(
                "Stream '%s': IFS sent propert%s outside the catalog schema, left out of the "
                "records: %s. %s",
                self.name,
                "y" if len(new) == 1 else "ies",
                ", ".join(new),
                REFRESH_HINT,
            )
        return plan.drop + tuple(sorted(extra))

    def _report_rows_without_bookmark(self) -> None:
        count, self._rows_without_bookmark = self._rows_without_bookmark, 0
        if count:
            self.logger.warning(
                "Stream '%s': %d row(s) had no value for the replication key '%s'; they were "
                "emitted, and the bookmark ignores them (an incremental run with a bookmark "
                "does not see them again: if their changes matter, use another "
                "replication_key or replication_mode full_table)",
                self.name,
                count,
                self.replication_key,
            )

    def _records(self, rows: list[t.Any], plan: _ReadPlan, drop: tuple[str, ...]) -> list[t.Any]:
        """Stream records from OData rows, in place: renamed columns, etag columns, nothing
        unselected, null for selected columns the entity set lacks."""
        if rows and isinstance(rows[0], TypedRow):
            return as_records(rows)
        rename = plan.read.rename
        fill = plan.fill
        if not (rename or drop or fill):  # the usual case: only the etag columns change
            for row in rows:
                etag = row.pop(ETAG_ANNOTATION, None)
                row[ETAG_COLUMN] = etag
                row[OBJVERSION_COLUMN] = decode_objversion(etag)
            return rows
        code_part = plan.read.code_part
        for index, row in enumerate(rows):
            etag = row.pop(ETAG_ANNOTATION, None)
            if rename:
                row = {rename.get(k, k): v for k, v in row.items()}
                row[CODE_PART_COLUMN] = code_part
                rows[index] = row
            row[ETAG_COLUMN] = etag
            row[OBJVERSION_COLUMN] = decode_objversion(etag)
            for column in drop:
                row.pop(column, None)
            for column in fill:
                row[column] = None
        return rows


def _plan(read: EntityRead, wanted: set[str]) -> _ReadPlan:
    select = tuple(read.select(wanted))
    produced = {read.rename.get(name, name) for name in select}
    produced.update((ETAG_COLUMN, OBJVERSION_COLUMN))
    if read.code_part is not None:
        produced.add(CODE_PART_COLUMN)
    return _ReadPlan(
        read=read,
        select=select,
        expected=frozenset((*select, ETAG_ANNOTATION)),
        drop=_unselected_columns(read, wanted),
        fill=tuple(sorted(wanted - produced)),
    )


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

"""The in-memory entity tables behind the sandbox, with sorted scan indexes.

Rows are msgspec Structs (compact, and encoded to JSON without building dicts).
A row is never changed in place: an update swaps in a new Struct, so a page
being encoded outside the lock never sees a half-written row. Sorted indexes
are built lazily per (company partition, order) and dropped on any change.

The GL voucher rows, millions of them, are not kept as rows: a table may hold
generated rows (`GeneratedRows`, over a `dataset.VoucherPlan` of a few bytes a
row) and makes them into rows only while it answers. Rows put or deleted later
(PATCH, DELETE, the mutation clock) are ordinary rows beside them: a changed
generated row is shadowed where it stands, a deleted one left out, so the table
reads as the same dict of rows it would be had every row been put. Scans in
(EntryDate, keys) order or in key order walk the generated rows a chunk at a
time (one company's entry day, or a run of voucher numbers), skip chunks the
filter rules out, and merge the changed rows in; generated rows reach a scan as
light `Ref` rows (keys and EntryDate; any other property is made on first use)
and their JSON is written from the plan. Other orders sort every row once, as
for ordinary tables.
"""

from __future__ import annotations

import base64
import threading
from bisect import bisect_left, bisect_right, insort
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from itertools import repeat
from operator import attrgetter, rshift

import msgspec

from . import etag
from .dataset import (
    ACCOUNTS,
    CODES_HIGH_VALUES,
    CODES_LOW_VALUES,
    DETAIL_COLUMNS,
    FOREIGN_RATES,
    MICRO,
    ONE,
    SCALE_FACTORS,
    TEXTS,
    VOUCHER_COLUMNS,
    VOUCHER_TYPES,
    VoucherPlan,
    company_currency,
    voucher_details,
    year_period_key,
)
from .entities import PROJECTIONS, EntitySet, EntityType, Projection
from .query import (
    BoolOp,
    Compare,
    Filter,
    Literal,
    Not,
    Property,
    lower_bound,
    operands,
    partition_value,
)
from .tenants import Shaper

ETAG_FIELD = "odata_etag"
ENCODER = msgspec.json.Encoder(decimal_format="number")
DECODER = msgspec.json.Decoder(float_hook=Decimal)  # JSON numbers with a fraction -> exact Decimal
Order = tuple[tuple[str, bool], ...]

GENERATED_KEYS = ("Company", "VoucherType", "AccountingYear", "VoucherNo", "RowNo")
CHUNK_VOUCHERS = 1024  # vouchers per chunk of a key-order scan
CACHED_CHUNKS = 8  # chunks of Ref rows kept per table


def _null_first(value: object) -> tuple[bool, object]:
    return (value is not None, value)


def _sort_key(row: object, names: tuple[str, ...]) -> tuple:
    return tuple((v is not None, v) for v in (getattr(row, n) for n in names))


@dataclass
class Version:
    row_id: str
    objversion: str


class RowIds:
    """The store's ROWID numbers: one counter for all tables, in the order rows are put."""

    def __init__(self) -> None:
        self._next = 1

    def __iter__(self) -> RowIds:
        return self

    def __next__(self) -> int:
        number = self._next
        self._next += 1
        return number

    def reserve(self, count: int) -> int:
        """The first of `count` numbers taken at once (generated rows number in order)."""
        first = self._next
        self._next += count
        return first


class EntityTable:
    """One entity set's rows, keyed by the entity's key tuple.

    `rows` reads as a dict of key -> row in insertion order: generated rows first, in their
    order (a changed one where it stands, a deleted one left out), then rows put since.
    """

    def __init__(
        self,
        projection: Projection,
        entity_set: EntitySet,
        rowids: Iterator[int],
        shape: Shaper | None = None,
    ) -> None:
        self.projection = projection
        self.entity_set = entity_set
        self.entity: EntityType = projection.entity_type(entity_set.entity_type)
        self.namespace = f"IfsApp.{projection.name}"
        self.projection_enums = {e.name: e for e in projection.enums}
        self.shape = shape  # a tenant variant's: default-tenant values -> this tenant's
        self.struct = msgspec.defstruct(
            self.entity.name,
            [(ETAG_FIELD, str), *((p.name, object, None) for p in self.entity.stored_props)],
            rename={ETAG_FIELD: "@odata.etag"},
        )
        self._own: dict[tuple, msgspec.Struct] = {}  # rows put (not shadowing a generated one)
        self.rows: Mapping[tuple, msgspec.Struct] = self._own
        self.encoded: dict[int, bytes] = {}  # id(row) -> its JSON, so pages are joined, not encoded
        self.versions: dict[tuple, Version] = {}
        self._rowids = rowids
        self._indexes: dict[tuple[object, Order], list] = {}
        self.has_company = self.entity.prop("Company") is not None
        self.field_names = self.entity.field_names
        self._keyref_names = tuple(f"{_db_name(k)}=" for k in self.entity.keys)
        self._select_cache: dict[tuple[str, ...], tuple[tuple[str, ...], bool]] = {}
        # generated rows, and what was done to them since
        self.generated: GeneratedRows | None = None
        self._replaced: dict[tuple, msgspec.Struct] = {}  # generated keys put again: the new row
        self._deleted: set[tuple] = set()  # generated keys deleted
        self._deleted_rows: list[int] = []  # their positions, sorted
        self._shadowed: dict[int, tuple] = {}  # position -> key of generated rows replaced/deleted
        self._views: dict[tuple[object, Order], _View] = {}

    def key_of(self, values: dict[str, object] | msgspec.Struct) -> tuple:
        if isinstance(values, dict):
            return tuple(values.get(k) for k in self.entity.keys)
        return tuple(getattr(values, k) for k in self.entity.keys)

    def keyref(self, key: tuple) -> str:
        return "".join(f"{n}{v}^" for n, v in zip(self._keyref_names, key, strict=True))

    # generated rows ------------------------------------------------------------------------------

    def can_generate(self) -> bool:
        """Whether this table can hold a VoucherPlan's rows (it has their keys and EntryDate)."""
        return self.entity.keys == GENERATED_KEYS and self.entity.prop("EntryDate") is not None

    def attach(self, plan: VoucherPlan) -> None:
        """Take a plan's rows as this table's, as if each had been put now, in order."""
        if self.generated is not None or not self.can_generate():
            raise ValueError(f"{self.entity_set.name} cannot take generated rows")
        self.generated = GeneratedRows(self, plan, self._rowids.reserve(plan.row_count))  # type: ignore[attr-defined]
        own = self._own
        self._own = {}
        self.rows = _RowsView(self)
        for key, row in own.items():  # rows put before: as if put after the generated ones
            self._own[key] = row
        self._changed()

    def _generated_position(self, key: tuple) -> int | None:
        """Where a live (not deleted) generated row with this key stands, if there is one."""
        if self.generated is None or key in self._deleted:
            return None
        try:
            return self.generated.plan.find(key)
        except (TypeError, ValueError):
            return None

    def get(self, key: tuple) -> msgspec.Struct | None:
        row = self._own.get(key)
        if row is not None or self.generated is None:
            return row
        row = self._replaced.get(key)
        if row is not None:
            return row
        position = self._generated_position(key)
        return None if position is None else self.generated.row(position)

    def key_at(self, position: int) -> tuple:
        """The key at this position of `rows` (dict order), as `list(rows)[position]`."""
        if self.generated is not None:
            live = self.generated.count - len(self._deleted_rows)
            if position < live:
                deleted = self._deleted_rows
                at = position
                while True:  # the smallest row with `position` live rows before it
                    following = position + bisect_right(deleted, at)
                    if following == at:
                        return self.generated.plan.key(at)
                    at = following
            position -= live
        if position < 0:
            raise IndexError(position)
        return list(self._own)[position]

    def _changed(self) -> None:
        self._indexes.clear()
        self._views.clear()

    # changes -------------------------------------------------------------------------------------

    def put(self, values: dict[str, object], changed_at: datetime) -> msgspec.Struct:
        """Insert or replace a row; its objversion moves forward."""
        if self.shape is not None:
            values = self.shape(values)
        key = self.key_of(values)
        version = self.versions.get(key)
        where = self._own
        if self.generated is not None and key not in self._own:
            position = self._generated_position(key)
            if position is not None:
                where = self._replaced
                self._shadowed[position] = key
                if version is None:
                    version = self.generated.version(position)
        if version is None:
            version = Version(
                etag.rowid(next(self._rowids)),
                etag.first_objversion(self.entity.objversion, changed_at),
            )
        else:
            version = Version(
                version.row_id,
                etag.next_objversion(self.entity.objversion, version.objversion, changed_at),
            )
        fields = {
            **values,
            "luname": self.entity.luname,
            "keyref": self.keyref(key),
            "Objgrants": None,
        }
        row = self.struct(etag.make_etag(version.row_id, version.objversion), **fields)
        previous = where.get(key)
        if previous is not None:
            self.encoded.pop(id(previous), None)
        where[key] = row
        self.encoded[id(row)] = ENCODER.encode(row)
        self.versions[key] = version
        self._changed()
        return row

    def delete(self, key: tuple) -> None:
        if key in self._own:
            self.encoded.pop(id(self._own.pop(key)), None)
            del self.versions[key]
        else:
            position = self._generated_position(key)
            if position is None:
                raise KeyError(key)
            replaced = self._replaced.pop(key, None)
            if replaced is not None:
                self.encoded.pop(id(replaced), None)
                del self.versions[key]
            self._deleted.add(key)
            insort(self._deleted_rows, position)
            self._shadowed[position] = key
        self._changed()

    # reads ---------------------------------------------------------------------------------------

    def to_json(self, rows: Sequence[object], select: tuple[str, ...] = ()) -> bytes:
        """The rows joined by commas (no brackets): whole rows, from the per-row cache where
        still current, or with the `$select`ed properties (keys and etag always)."""
        names, whole = self._selected(select)
        if not whole:
            out = {ETAG_FIELD: "@odata.etag"}
            value = ENCODER.encode(
                [{out.get(n, n): getattr(r, n) for n in names} for r in self._rows_of(rows)]
            )
            return value[1:-1]
        if self.generated is None:
            encoded = self.encoded
            return b",".join([encoded.get(id(r)) or ENCODER.encode(r) for r in rows])
        return self.generated.to_json(rows)

    def _selected(self, select: tuple[str, ...]) -> tuple[tuple[str, ...], bool]:
        """The properties a `$select` writes, etag and keys first, and whether that is all."""
        found = self._select_cache.get(select)
        if found is None:
            if not select:
                found = ((ETAG_FIELD, *self.field_names), True)
            else:
                names = (ETAG_FIELD, *dict.fromkeys((*self.entity.keys, *select)))
                found = (names, names == (ETAG_FIELD, *self.field_names))
            self._select_cache[select] = found
        return found

    def _rows_of(self, rows: Sequence[object]) -> Iterator[msgspec.Struct]:
        """Whole rows for light `Ref` rows, the rest as they are."""
        generated = self.generated
        for row in rows:
            yield generated.row(row.base_index) if isinstance(row, _RefBase) else row  # type: ignore[union-attr,attr-defined]

    def as_dict(self, row: msgspec.Struct) -> dict[str, object]:
        return {name: getattr(row, name) for name in self.field_names}

    def total_order(self, order: Order) -> Order:
        """The requested order made total by appending the keys, so paging is deterministic."""
        named = {name for name, _ in order}
        return order + tuple((k, False) for k in self.entity.keys if k not in named)

    def sorted_rows(self, company: object, order: Order) -> list[msgspec.Struct]:
        cache_key = (company, order)
        rows = self._indexes.get(cache_key)
        if rows is None:
            if self.generated is not None:
                rows = self.generated.refs(company, self._shadowed)
                rows.extend(
                    r
                    for r in self._changed_rows()
                    if company is None or r.Company == company  # type: ignore[attr-defined]
                )
            elif company is not None:
                rows = [r for r in self._own.values() if r.Company == company]  # type: ignore[attr-defined]
            else:
                rows = list(self._own.values())
            self._sort(rows, order)
            self._indexes[cache_key] = rows
        return rows

    def _changed_rows(self) -> list[msgspec.Struct]:
        return [*self._replaced.values(), *self._own.values()]

    @staticmethod
    def _sort(rows: list, order: Order) -> None:
        """Sort in place; nulls first. One C-level key when no nulls get in the way."""
        if not any(descending for _, descending in order):
            try:
                rows.sort(key=attrgetter(*(name for name, _ in order)))
                return
            except TypeError:  # a null among the values: fall back to null-safe keys
                pass
        for name, descending in reversed(order):
            rows.sort(key=lambda r, n=name: _null_first(getattr(r, n)), reverse=descending)

    def scan(self, flt: Filter | None, order: Order) -> tuple[Sequence, int]:
        """The sorted candidate rows for a query and the position where matches can begin."""
        company = partition_value(flt.ast, "Company") if flt and self.has_company else None
        if self.generated is not None:
            layout = self.generated.layout(order)
            if layout is not None:
                view = self._views.get((company, order))
                if view is None:
                    view = _View(self, layout, company, order)
                    self._views[(company, order)] = view
                return view.candidates(flt)
        rows = self.sorted_rows(company, order)
        lead, descending = order[0]
        start = 0
        if flt is not None and not descending:
            bound = lower_bound(flt.ast, lead)
            if bound is not None:
                start = bisect_left(
                    rows, (True, bound), key=lambda r: _null_first(getattr(r, lead))
                )
        return rows, start


def _db_name(name: str) -> str:
    """IFS keyrefs use database column names: VoucherNo -> VOUCHER_NO."""
    out = []
    for i, ch in enumerate(name):
        if ch.isupper() and i and not name[i - 1].isupper():
            out.append("_")
        out.append(ch.upper())
    return "".join(out)


class _RowsView(Mapping):
    """A table's rows as a dict, generated rows included (made on access)."""

    def __init__(self, table: EntityTable) -> None:
        self._table = table

    def __getitem__(self, key: tuple) -> msgspec.Struct:
        row = self._table.get(key)
        if row is None:
            raise KeyError(key)
        return row

    def get(self, key: tuple, default: object = None) -> object:  # type: ignore[override]
        row = self._table.get(key)
        return default if row is None else row

    def __contains__(self, key: object) -> bool:
        try:
            return self._table.get(key) is not None  # type: ignore[arg-type]
        except TypeError:  # unhashable
            return False

    def __len__(self) -> int:
        table = self._table
        generated = table.generated.count if table.generated else 0
        return generated - len(table._deleted_rows) + len(table._own)

    def __iter__(self) -> Iterator[tuple]:
        table = self._table
        if table.generated is not None:
            yield from table.generated.keys(table._deleted)
        yield from list(table._own)


# Generated rows ----------------------------------------------------------------------------------


class _RefBase(msgspec.Struct):
    """A generated row as a scan sees it: keys, EntryDate and where it stands in the plan.

    Any other property is looked up on the whole row, made on first use (`__getattr__` runs
    only for names the Ref lacks)."""

    def __getattr__(self, name: str) -> object:
        if name.startswith("__") or name == "source":
            raise AttributeError(name)
        return getattr(self.source.row(self.base_index), name)  # type: ignore[attr-defined]


@dataclass(frozen=True, eq=False)
class _Chunk:
    """A run of generated rows in one layout's order: whole vouchers, in order."""

    first: tuple  # null-first sort key of its first row
    constants: dict[str, object]  # property -> the value every row of the chunk has
    vouchers: Sequence[int] | None  # voucher positions in order; None: a block's, by type
    block: int  # for a block's chunk: the block
    rows: int


class _Layout:
    """The generated rows of one order (all companies) as chunks, and per company."""

    def __init__(self, kind: str, chunks: list[_Chunk]) -> None:
        chunks.sort(key=lambda c: c.first)
        self.kind = kind  # "entry": (EntryDate, keys) order; "keys": key order
        self.chunks = chunks
        self.firsts = [c.first for c in chunks]
        self.by_company: dict[object, list[int]] = {}  # company -> its chunks, in order
        self.block_chunk = [0] * len(chunks)  # "entry": block -> its chunk
        for index, chunk in enumerate(chunks):
            self.by_company.setdefault(chunk.constants["Company"], []).append(index)
            if chunk.block >= 0:
                self.block_chunk[chunk.block] = index


# Properties no generated row leaves null: `X eq null` rules a chunk of them out.
_NEVER_NULL = frozenset(
    (
        *GENERATED_KEYS,
        "EntryDate",
        "VoucherDate",
        "AccountingPeriod",
        "YearPeriodKey",
        "Account",
        "AccountDesc",
    )
)
_TYPE_RANK = tuple(sorted(range(len(VOUCHER_TYPES)), key=VOUCHER_TYPES.__getitem__))
_RANK_OF_TYPE = tuple(_TYPE_RANK.index(t) for t in range(len(VOUCHER_TYPES)))


class GeneratedRows:
    """A VoucherPlan's rows as rows of one table: made on demand, exactly as `put` makes them.

    Row i's ROWID number is `first_rowid + i` (the numbers `put` would have given them in
    order) and its objversion its entry day at 18:00, as when generated rows were put.
    """

    def __init__(self, table: EntityTable, plan: VoucherPlan, first_rowid: int) -> None:
        self.table = table
        self.plan = plan
        self.count = plan.row_count
        self.first_rowid = first_rowid
        self.ref = msgspec.defstruct(
            f"{table.entity.name}Ref",
            [
                *((k, object) for k in GENERATED_KEYS),
                ("EntryDate", object),
                ("base_index", int),
                ("voucher", int),
                ("block", int),
            ],
            bases=(_RefBase,),
            namespace={"source": self},
            gc=False,  # holds no containers: the cyclic GC need not track millions of them
        )
        self._last: tuple[int, msgspec.Struct | None] = (-1, None)
        self._layouts: dict[str, _Layout] = {}
        self._chunk_refs: OrderedDict[tuple[str, int], list] = OrderedDict()
        self._lock = threading.Lock()
        tail = ("Objgrants", "luname", "keyref")
        self._positional = table.shape is None and table.field_names == (*VOUCHER_COLUMNS, *tail)
        self._json = _VoucherJson(self) if self._positional else None

    # single rows ---------------------------------------------------------------------------------

    def version(self, i: int) -> Version:
        block = self.plan.block_of(self.plan.voucher_of(i))
        return Version(
            etag.rowid(self.first_rowid + i),
            etag.first_objversion(self.table.entity.objversion, block.changed_at),
        )

    def row(self, i: int) -> msgspec.Struct:
        """Generated row i as `put` would have made it."""
        last = self._last
        if last[0] == i:
            return last[1]  # type: ignore[return-value]
        table = self.table
        version = self.version(i)
        tag = etag.make_etag(version.row_id, version.objversion)
        values = self.plan.values(i)
        if self._positional:
            key = values[:5]
            row = table.struct(tag, *values, None, table.entity.luname, table.keyref(key))
        else:
            fields = dict(zip(VOUCHER_COLUMNS, values, strict=True))
            if table.shape is not None:
                fields = table.shape(fields)
            key = table.key_of(fields)
            fields.update(luname=table.entity.luname, keyref=table.keyref(key), Objgrants=None)
            row = table.struct(tag, **fields)
        self._last = (i, row)
        return row

    def keys(self, deleted: set[tuple]) -> Iterator[tuple]:
        """The live generated keys, in order."""
        plan = self.plan
        for block in plan.blocks:
            company, year = block.company, block.entry_date.year
            for v in range(block.first_voucher, block.first_voucher + block.voucher_count):
                packed = plan.voucher[v]
                voucher_type, number = VOUCHER_TYPES[packed & 3], plan.voucher_number[v]
                for row_no in range(1, (packed >> 8) + 1):
                    key = (company, voucher_type, year, number, row_no)
                    if key not in deleted:
                        yield key

    def refs(self, company: object, shadowed: Mapping[int, tuple]) -> list:
        """Ref rows of every live, unchanged generated row (of one company, if given)."""
        layout = self.layout((("EntryDate", False), *((k, False) for k in GENERATED_KEYS)))
        assert layout is not None
        ids = (
            layout.by_company.get(company, []) if company is not None else range(len(layout.chunks))
        )
        out: list = []
        for index in ids:
            out.extend(r for r in self.chunk_refs(layout, index) if r.base_index not in shadowed)
        return out

    # scans ---------------------------------------------------------------------------------------

    def layout(self, order: Order) -> _Layout | None:
        """The chunks of an order this table can walk without sorting, or None."""
        names = tuple(name for name, _ in order)
        if any(descending for _, descending in order):
            return None
        if names == ("EntryDate", *GENERATED_KEYS):
            kind = "entry"
        elif names == GENERATED_KEYS:
            kind = "keys"
        else:
            return None
        layout = self._layouts.get(kind)
        if layout is None:
            layout = self._entry_layout() if kind == "entry" else self._keys_layout()
            self._layouts[kind] = layout
        return layout

    def _entry_layout(self) -> _Layout:
        """One chunk per block (a company's entry day); its vouchers by type, then number."""
        plan = self.plan
        chunks = []
        for index, block in enumerate(plan.blocks):
            start, end = block.first_voucher, block.first_voucher + block.voucher_count
            year = block.entry_date.year
            first = start
            for t in _TYPE_RANK:  # the block's first voucher of the first type it has
                numbered = plan.by_number.get((block.company, t, year))
                at = bisect_left(numbered, start) if numbered is not None else 0
                if numbered is not None and at < len(numbered) and numbered[at] < end:
                    first = numbered[at]
                    break
            key = (
                block.entry_date,
                block.company,
                VOUCHER_TYPES[plan.voucher[first] & 3],
                year,
                plan.voucher_number[first],
                1,
            )
            chunks.append(
                _Chunk(
                    tuple((True, v) for v in key),
                    {
                        "EntryDate": block.entry_date,
                        "Company": block.company,
                        "AccountingYear": year,
                    },
                    None,
                    index,
                    block.row_count,
                )
            )
        return _Layout("entry", chunks)

    def _keys_layout(self) -> _Layout:
        """Per company, type and year: its vouchers by number, CHUNK_VOUCHERS at a time."""
        plan = self.plan
        chunks = []
        for (company, t, year), numbers in plan.by_number.items():
            voucher_type = VOUCHER_TYPES[t]
            for start in range(0, len(numbers), CHUNK_VOUCHERS):
                vouchers = numbers[start : start + CHUNK_VOUCHERS]
                rows = sum(map(rshift, map(plan.voucher.__getitem__, vouchers), repeat(8)))
                key = (company, voucher_type, year, plan.voucher_number[vouchers[0]], 1)
                chunks.append(
                    _Chunk(
                        tuple((True, v) for v in key),
                        {"Company": company, "VoucherType": voucher_type, "AccountingYear": year},
                        vouchers,
                        -1,
                        rows,
                    )
                )
        return _Layout("keys", chunks)

    def chunk_of(self, layout: _Layout, i: int) -> int:
        """The index of the chunk of `layout` that holds generated row i."""
        plan = self.plan
        v = plan.voucher_of(i)
        if layout.kind == "entry":
            return layout.block_chunk[bisect_right(plan.block_first_voucher, v) - 1]
        # a voucher lies wholly in one chunk: the last one starting at or before its first row
        key = tuple((True, value) for value in plan.key(plan.voucher_first_row[v]))
        return bisect_right(layout.firsts, key) - 1

    def chunk_refs(self, layout: _Layout, index: int) -> list:
        """The Ref rows of one chunk, in order (cached for a few chunks)."""
        cache_key = (layout.kind, index)
        with self._lock:
            refs = self._chunk_refs.get(cache_key)
            if refs is not None:
                self._chunk_refs.move_to_end(cache_key)
                return refs
        chunk = layout.chunks[index]
        plan = self.plan
        voucher, numbers, firsts = plan.voucher, plan.voucher_number, plan.voucher_first_row
        ref, blocks, block_starts = self.ref, plan.blocks, plan.block_first_voucher
        company, year = chunk.constants["Company"], chunk.constants["AccountingYear"]
        block_index = chunk.block
        if block_index >= 0:  # a block's chunk: its vouchers by type, then number
            block = blocks[block_index]
            start = block.first_voucher
            vouchers: Sequence[int] = sorted(
                range(start, start + block.voucher_count),
                key=lambda v: _RANK_OF_TYPE[voucher[v] & 3],
            )
            entry = block.entry_date
        else:
            vouchers = chunk.vouchers  # type: ignore[assignment]
        refs = []
        append = refs.append
        for v in vouchers:
            if chunk.block < 0:
                block_index = bisect_right(block_starts, v) - 1
                entry = blocks[block_index].entry_date
            packed = voucher[v]
            voucher_type, number, first = VOUCHER_TYPES[packed & 3], numbers[v], firsts[v]
            for r in range(packed >> 8):
                append(
                    ref(
                        company, voucher_type, year, number, r + 1, entry, first + r, v, block_index
                    )
                )
        with self._lock:
            self._chunk_refs[cache_key] = refs
            while len(self._chunk_refs) > CACHED_CHUNKS:
                self._chunk_refs.popitem(last=False)
        return refs

    # JSON ----------------------------------------------------------------------------------------

    def to_json(self, rows: Sequence[object]) -> bytes:
        """Whole rows, joined by commas: generated ones written from the plan."""
        encoded = self.table.encoded
        if self._json is None:
            return b",".join(
                [
                    ENCODER.encode(self.row(r.base_index))  # type: ignore[attr-defined]
                    if isinstance(r, _RefBase)
                    else encoded.get(id(r)) or ENCODER.encode(r)
                    for r in rows
                ]
            )
        return self._json.join(rows, encoded)


# What a filter says about a chunk ----------------------------------------------------------------


def may_match(node: object, known: Mapping[str, object]) -> bool | None:
    """Whether rows with the `known` values (and no null in _NEVER_NULL properties) match `node`:
    True (all do), False (none does) or None (it depends on other properties)."""
    if isinstance(node, Compare):
        left, right = node.left, node.right
        if not (
            isinstance(left, Property) and isinstance(right, Literal) and right.kind == "value"
        ):
            return None
        name, value = left.prop.name, right.value
        if name not in known:
            if value is None and name in _NEVER_NULL and node.op in ("eq", "ne"):
                return node.op == "ne"
            return None
        have = known[name]
        try:
            if node.op == "eq":
                return bool(have == value)
            if node.op == "ne":
                return bool(have != value)
            if have is None or value is None:
                return False
            return bool(
                {"gt": have > value, "ge": have >= value, "lt": have < value, "le": have <= value}[
                    node.op
                ]
            )
        except TypeError:
            return None
    if isinstance(node, BoolOp):
        unknown = False
        for operand in operands(node, node.op):
            found = may_match(operand, known)
            if found is None:
                unknown = True
            elif found is (node.op == "or"):
                return found
        return None if unknown else node.op == "and"
    if isinstance(node, Not):
        found = may_match(node.operand, known)
        return None if found is None else not found
    return None


def keyset_bound(node: object, names: tuple[str, ...]) -> tuple | None:
    """The key (values of `names`) a key-set filter asks rows to come after, or None.

    Recognises `(A gt a) or (A eq a and (<the same for the rest>))`, the last field
    `Z gt z` (what key-set paging sends, `tap_ifscloud.odata.after`), alone or as one
    operand of a top-level `and`. Matching rows all sort after the key, so a scan can
    start there. Null values are left to the filter (None).
    """
    for operand in operands(node, "and") if isinstance(node, BoolOp) else (node,):
        found = _after(operand, names)
        if found is not None and len(found) == len(names):
            return found
    return None


def _compared(node: object, op: str, name: str) -> object:
    """The non-null value of `name op value`, or None."""
    if (
        isinstance(node, Compare)
        and node.op == op
        and isinstance(node.left, Property)
        and node.left.prop.name == name
        and isinstance(node.right, Literal)
        and node.right.kind == "value"
    ):
        return node.right.value
    return None


def _after(node: object, names: tuple[str, ...]) -> tuple | None:
    if not names:
        return None
    name = names[0]
    if len(names) == 1:
        value = _compared(node, "gt", name)
        return None if value is None else (value,)
    if not isinstance(node, BoolOp) or node.op != "or":
        return None
    parts = operands(node, "or")
    if len(parts) != 2:
        return None
    greater = _compared(parts[0], "gt", name)
    equal = parts[1]
    if greater is None or not isinstance(equal, BoolOp) or equal.op != "and":
        return None
    same = operands(equal, "and")
    if len(same) != 2 or _compared(same[0], "eq", name) != greater:
        return None
    rest = _after(same[1], names[1:])
    return None if rest is None else (greater, *rest)


# A scan of generated and changed rows ------------------------------------------------------------


class _View:
    """One (company, order) of a table with generated rows: its chunks, with the changed rows
    merged into the chunk they sort into. Made again after every change."""

    def __init__(self, table: EntityTable, layout: _Layout, company: object, order: Order) -> None:
        generated = table.generated
        assert generated is not None
        self.table = table
        self.generated = generated
        self.layout = layout
        if company is None:
            self.ids: list[int] = list(range(len(layout.chunks)))
        else:
            self.ids = layout.by_company.get(company, [])
        self.firsts = [layout.chunks[i].first for i in self.ids]
        names = tuple(name for name, _ in order)
        self.names = names
        # changed rows by the chunk they sort into (-1: before the first)
        self.extra: dict[int, list] = {}
        for row in table._changed_rows():
            if company is not None and getattr(row, "Company", None) != company:
                continue
            key = _sort_key(row, names)
            try:
                at = bisect_right(self.firsts, key) - 1
            except TypeError:  # not comparable with the keys' values (PATCH types them): first
                at = -1
            self.extra.setdefault(at, []).append((key, row))
        for rows in self.extra.values():
            rows.sort(key=lambda pair: pair[0])
        # generated rows left out (replaced or deleted), by chunk
        self.shadowed: dict[int, set[int]] = {}
        if table._shadowed:
            position = {chunk: at for at, chunk in enumerate(self.ids)}
            for i in table._shadowed:
                at = position.get(generated.chunk_of(layout, i))
                if at is not None:
                    self.shadowed.setdefault(at, set()).add(i)
        self.sizes = [
            layout.chunks[chunk].rows - len(self.shadowed.get(at, ())) + len(self.extra.get(at, ()))
            for at, chunk in enumerate(self.ids)
        ]
        self.lead = names[0]

    def candidates(self, flt: Filter | None) -> tuple[_Rows, int]:
        """The rows that may match, in order (chunks the filter rules out left out), and the
        position where matches can begin."""
        start = -1  # the chunk where matches can begin (-1: changed rows before all chunks)
        ast = flt.ast if flt is not None else None
        after = None
        if ast is not None:
            after = keyset_bound(ast, self.names)
            bound = after[0] if after is not None else lower_bound(ast, self.lead)
            try:
                if after is not None:  # the chunk holding the first row after the key
                    after = tuple((v is not None, v) for v in after)
                    start = bisect_right(self.firsts, after) - 1
                elif bound is not None:
                    start = bisect_left(self.firsts, ((True, bound),)) - 1
            except TypeError:  # a value of another type than the property's: no shortcut
                after, start = None, -1
        # changed rows sorting before every chunk: wanted unless all come before the key
        picked: list[int] = [-1] if -1 in self.extra and start < 0 else []
        start = max(start, 0)
        chunks = self.layout.chunks
        ids = self.ids
        for at in range(start, len(ids)):
            pure = ast is not None and at not in self.extra  # only generated rows in it
            if pure and may_match(ast, chunks[ids[at]].constants) is False:
                continue
            picked.append(at)
        rows = _Rows(self, picked)
        if after is None or not picked:
            return rows, 0
        # the first row after the key, in the first chunk picked (or at the next one's start)
        first = rows.chunk(0)
        names = self.names
        try:
            return rows, bisect_right(first, after, key=lambda r: _sort_key(r, names))
        except TypeError:
            return rows, 0

    def size(self, at: int) -> int:
        return len(self.extra[-1]) if at == -1 else self.sizes[at]

    def rows(self, at: int) -> list:
        """The rows of one chunk (-1: changed rows before all chunks), in order."""
        if at == -1:
            return [row for _, row in self.extra[-1]]
        refs = self.generated.chunk_refs(self.layout, self.ids[at])
        shadowed = self.shadowed.get(at)
        if shadowed:
            refs = [r for r in refs if r.base_index not in shadowed]
        extra = self.extra.get(at)
        if not extra:
            return refs
        names = self.names
        merged = [(_sort_key(r, names), r) for r in refs]
        merged.extend(extra)
        merged.sort(key=lambda pair: pair[0])
        return [row for _, row in merged]


class _Rows(Sequence):
    """The candidate rows of one scan, made a chunk at a time as they are read."""

    def __init__(self, view: _View, picked: list[int]) -> None:
        self._view = view
        self._picked = picked
        self._offsets = [0]
        for at in picked:
            self._offsets.append(self._offsets[-1] + view.size(at))
        self._low = self._high = 0
        self._rows: list = []

    def __len__(self) -> int:
        return self._offsets[-1]

    def chunk(self, at: int) -> list:
        """The rows of the `at`-th chunk picked."""
        self._rows = self._view.rows(self._picked[at])
        self._low, self._high = self._offsets[at], self._offsets[at + 1]
        return self._rows

    def __getitem__(self, index: int) -> object:  # type: ignore[override]
        if self._low <= index < self._high:
            return self._rows[index - self._low]
        if not 0 <= index < self._offsets[-1]:
            raise IndexError(index)
        at = bisect_right(self._offsets, index) - 1
        self._rows = self._view.rows(self._picked[at])
        self._low, self._high = self._offsets[at], self._offsets[at + 1]
        return self._rows[index - self._low]


# JSON of generated rows, written from the plan ---------------------------------------------------


def _json(value: object) -> str:
    """JSON as msgspec writes it, its UTF-8 bytes as a latin-1 str (see _VoucherJson)."""
    return ENCODER.encode(value).decode("latin-1")


class _VoucherJson:
    """The JSON of generated rows of the built-in VoucherRow, as `ENCODER.encode(row)` writes it,
    from pieces made once (per account, code parts, block and voucher type, voucher).

    A row is one f-string of pieces, a page one str encoded once. The pieces hold UTF-8 bytes as
    latin-1 characters, so that encoding the page is a copy (its UTF-8 bytes are the result):
    joining many small bytes objects, or encoding non-ASCII text, is several times slower.
    """

    def __init__(self, generated: GeneratedRows) -> None:
        self.generated = generated
        self.plan = generated.plan
        table = generated.table
        self.luname = table.entity.luname
        self.keyref_names = table._keyref_names
        self.objversion = table.entity.objversion
        prefix = etag.rowid(0)[:-9]  # the ROWID before its 9 hex digits
        opening = f'W/"{prefix}'.encode()
        if len(opening) % 3 or len(etag.rowid(0)) != len(prefix) + 9:
            raise ValueError("unexpected ROWID shape")
        # base64 of W/"ROWID:objversion": the prefix's, then three digits of the hex number at a
        # time (3 bytes -> 4 characters), then the block's `:objversion"`
        self.etag_open = '{"@odata.etag":"W/\\"' + base64.b64encode(opening).decode()
        self.hex3 = [base64.b64encode(f"{n:03X}".encode()).decode() for n in range(4096)]
        self.accounts = [
            f'"Account":{_json(a.account)},"AccountDesc":{_json(a.description)},' for a in ACCOUNTS
        ]
        first_code = VOUCHER_COLUMNS.index("CodeB")
        high_names = VOUCHER_COLUMNS[first_code : first_code + 6]
        low_names = VOUCHER_COLUMNS[first_code + 6 : first_code + 18]
        self.codes_high = [
            "".join(f'"{n}":{_json(v)},' for n, v in zip(high_names, values, strict=True))
            for values in CODES_HIGH_VALUES
        ]
        self.codes_low = [
            "".join(f'"{n}":{_json(v)},' for n, v in zip(low_names, values, strict=True))
            for values in CODES_LOW_VALUES
        ]
        self.quantities = ["null", *(_json(Decimal(q)) for q in range(1, 512))]
        self.row_numbers = [_json(n) for n in range(16)]
        self.texts = [',"Text":' + _json(text)[:-1] for text in TEXTS]
        self._blocks: dict[int, tuple] = {}

    def _block(self, index: int) -> tuple:
        """Pieces of one block: the etag's end, and per voucher type, days back and currency."""
        found = self._blocks.get(index)
        if found is not None:
            return found
        block = self.plan.blocks[index]
        company, entry, year = block.company, block.entry_date, block.entry_date.year
        objversion = etag.first_objversion(self.objversion, block.changed_at)
        etag_tail = base64.b64encode(f':{objversion}"'.encode()).decode() + '\\""'
        by_type = []
        for voucher_type in VOUCHER_TYPES:
            keyref = "".join(
                f"{n}{k}^"
                for n, k in zip(self.keyref_names, (company, voucher_type, year), strict=False)
            )
            trans_code = "MANUAL" if voucher_type == "GL" else "AUTO"
            details = "".join(
                f'"{name}":{_json(value)},'
                for name, value in zip(
                    DETAIL_COLUMNS, voucher_details(company, voucher_type), strict=True
                )
            )
            by_type.append(
                (
                    f',"Company":{_json(company)},"VoucherType":{_json(voucher_type)},'
                    f'"AccountingYear":{_json(year)},"VoucherNo":',
                    f'","TransCode":{_json(trans_code)},{details}'
                    f'"Objgrants":null,"luname":{_json(self.luname)},'
                    f'"keyref":{_json(keyref + self.keyref_names[3])[:-1]}',
                    f" {voucher_type}-",
                )
            )
        dates = []
        for back in range(4):
            voucher_date = entry - _DAYS[back]
            dates.append(
                f',"VoucherDate":{_json(voucher_date)},"EntryDate":{_json(entry)},'
                f'"AccountingPeriod":{_json(voucher_date.month)},'
                f'"YearPeriodKey":{_json(year_period_key(year, voucher_date.month))},'
            )
        currencies = [
            f',"CurrencyCode":{_json(code)},"CurrencyRate":{_json(rate)},"Quantity":'
            for code, rate in ((company_currency(company), ONE), ("GBP", FOREIGN_RATES["GBP"]))
        ]
        found = (etag_tail, by_type, dates, currencies)
        self._blocks[index] = found
        return found

    def join(self, rows: Sequence[object], encoded: Mapping[int, bytes]) -> bytes:
        plan = self.plan
        voucher, voucher_number = plan.voucher, plan.voucher_number
        row_bits, mantissas, big = plan.row_bits, plan.mantissa, plan.big_mantissa
        hex3, accounts, high, low = self.hex3, self.accounts, self.codes_high, self.codes_low
        quantities, numbers, texts = self.quantities, self.row_numbers, self.texts
        etag_open, first_rowid = self.etag_open, self.generated.first_rowid
        ref, formats, powers = self.generated.ref, _AMOUNT_FORMATS, _POWERS
        gbp = FOREIGN_RATES["GBP"]
        last_voucher = last_block = last_high = -1
        etag_high = etag_tail = head = dates = currency = text = tail = ""
        by_type: list = []
        block_dates: list = []
        currencies: list = []
        foreign = 0
        out: list[str] = []
        append = out.append
        for row in rows:
            if type(row) is not ref:
                append((encoded.get(id(row)) or ENCODER.encode(row)).decode("latin-1"))
                continue
            i = row.base_index  # type: ignore[attr-defined]
            v = row.voucher  # type: ignore[attr-defined]
            if v != last_voucher:  # rows of a voucher come together, vouchers of a block too
                last_voucher = v
                if row.block != last_block:  # type: ignore[attr-defined]
                    last_block = row.block  # type: ignore[attr-defined]
                    etag_tail, by_type, block_dates, currencies = self._block(last_block)
                packed = voucher[v]
                head, tail, type_dash = by_type[packed & 3]
                number = str(voucher_number[v])
                head = f'{head}{number},"RowNo":'
                text = f"{texts[packed >> 5 & 7]}{type_dash}{number}/"
                tail = f"{tail}{number}^ROW_NO="
                dates = block_dates[packed >> 2 & 3]
                foreign = packed >> 4 & 1
                currency = currencies[foreign]
            rowid = first_rowid + i
            if rowid >> 12 != last_high:
                last_high = rowid >> 12
                etag_high = etag_open + hex3[rowid >> 24 & 4095] + hex3[last_high & 4095]
            bits = row_bits[i]
            scale = bits >> 5 & 7
            mantissa = mantissas[i] or big[i]
            row_no = numbers[row.RowNo]  # type: ignore[attr-defined]
            # amounts as str(Decimal(mantissa).scaleb(-scale)) writes them: plain notation, as
            # the adjusted exponent is never below -6 (mantissa >= 100, scale <= 6)
            if mantissa > 0:
                amount = formats[scale] % divmod(mantissa, powers[scale])
                converted = amount
                if foreign:
                    value = Decimal(mantissa) * SCALE_FACTORS[scale]
                    converted = str((value / gbp).quantize(MICRO))
                append(  # at most 30 parts: CPython joins longer f-strings through a list
                    f"{etag_high}{hex3[rowid & 4095]}{etag_tail}{head}{row_no}{dates}"
                    f"{accounts[bits & 31]}{high[bits >> 17 & 255]}{low[bits >> 25]}"
                    f'"DebetAmount":{amount},"CreditAmount":0,"Amount":{amount},'
                    f'"CurrencyDebetAmount":{converted},"CurrencyCreditAmount":0,'
                    f'"CurrencyAmount":{converted}{currency}{quantities[bits >> 8 & 511]}{text}'
                    f'{row_no}{tail}{row_no}^"}}'
                )
            else:
                positive = formats[scale] % divmod(-mantissa, powers[scale])
                converted = positive
                if foreign:
                    value = Decimal(-mantissa) * SCALE_FACTORS[scale]
                    converted = str((value / gbp).quantize(MICRO))
                append(
                    f"{etag_high}{hex3[rowid & 4095]}{etag_tail}{head}{row_no}{dates}"
                    f"{accounts[bits & 31]}{high[bits >> 17 & 255]}{low[bits >> 25]}"
                    f'"DebetAmount":0,"CreditAmount":{positive},"Amount":-{positive},'
                    f'"CurrencyDebetAmount":0,"CurrencyCreditAmount":{converted},'
                    f'"CurrencyAmount":-{converted}{currency}{quantities[bits >> 8 & 511]}{text}'
                    f'{row_no}{tail}{row_no}^"}}'
                )
        return ",".join(out).encode("latin-1")


_DAYS = tuple(timedelta(days=d) for d in range(4))


_POWERS = tuple(10**n for n in range(7))
_AMOUNT_FORMATS = tuple(f"%d.%0{n}d" if n else "%d" for n in range(7))
_DAYS = tuple(timedelta(days=d) for d in range(4))


class Store:
    """All entity tables of all projections, guarded by one lock."""

    def __init__(
        self,
        projections: tuple[Projection, ...] = PROJECTIONS,
        shapers: dict[str, Shaper] | None = None,
    ) -> None:
        self.lock = threading.RLock()
        self.rowids = RowIds()
        shapers = shapers or {}
        self.tables: dict[tuple[str, str], EntityTable] = {
            (p.name, s.name): EntityTable(p, s, self.rowids, shapers.get(s.name))
            for p in projections
            for s in p.entity_sets
        }

    def table(self, projection: str, entity_set: str) -> EntityTable:
        return self.tables[(projection, entity_set)]

    def table_for_set(self, entity_set: str) -> EntityTable:
        return next(t for (_, s), t in self.tables.items() if s == entity_set)

"""The in-memory entity tables behind the sandbox, with sorted scan indexes.

Rows are msgspec Structs (compact, and encoded to JSON without building dicts).
A row is never changed in place: an update swaps in a new Struct, so a page
being encoded outside the lock never sees a half-written row. Sorted indexes
are built lazily per (company partition, order) and dropped on any change.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from operator import attrgetter

import msgspec

from . import etag
from .entities import PROJECTIONS, EntitySet, EntityType, Projection
from .query import Filter, lower_bound, partition_value
from .tenants import Shaper

ETAG_FIELD = "odata_etag"
ENCODER = msgspec.json.Encoder(decimal_format="number")
DECODER = msgspec.json.Decoder(float_hook=Decimal)  # JSON numbers with a fraction -> exact Decimal
Order = tuple[tuple[str, bool], ...]


def _null_first(value: object) -> tuple[bool, object]:
    return (value is not None, value)


@dataclass
class Version:
    row_id: str
    objversion: str


class EntityTable:
    """One entity set's rows, keyed by the entity's key tuple."""

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
        self.rows: dict[tuple, msgspec.Struct] = {}
        self.encoded: dict[int, bytes] = {}  # id(row) -> its JSON, so pages are joined, not encoded
        self.versions: dict[tuple, Version] = {}
        self._rowids = rowids
        self._indexes: dict[tuple[object, Order], list] = {}
        self.has_company = self.entity.prop("Company") is not None
        self.field_names = self.entity.field_names
        self._keyref_names = tuple(f"{_db_name(k)}=" for k in self.entity.keys)

    def key_of(self, values: dict[str, object] | msgspec.Struct) -> tuple:
        if isinstance(values, dict):
            return tuple(values.get(k) for k in self.entity.keys)
        return tuple(getattr(values, k) for k in self.entity.keys)

    def keyref(self, key: tuple) -> str:
        return "".join(f"{n}{v}^" for n, v in zip(self._keyref_names, key, strict=True))

    def put(self, values: dict[str, object], changed_at: datetime) -> msgspec.Struct:
        """Insert or replace a row; its objversion moves forward."""
        if self.shape is not None:
            values = self.shape(values)
        key = self.key_of(values)
        version = self.versions.get(key)
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
        previous = self.rows.get(key)
        if previous is not None:
            self.encoded.pop(id(previous), None)
        self.rows[key] = row
        self.encoded[id(row)] = ENCODER.encode(row)
        self.versions[key] = version
        self._indexes.clear()
        return row

    def delete(self, key: tuple) -> None:
        self.encoded.pop(id(self.rows.pop(key)), None)
        del self.versions[key]
        self._indexes.clear()

    def to_json(self, rows: list[msgspec.Struct]) -> bytes:
        """The rows joined by commas (no brackets), from the per-row cache where still current."""
        encoded = self.encoded
        return b",".join([encoded.get(id(r)) or ENCODER.encode(r) for r in rows])

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
            if company is not None:
                rows = [r for r in self.rows.values() if r.Company == company]  # type: ignore[attr-defined]
            else:
                rows = list(self.rows.values())
            self._sort(rows, order)
            self._indexes[cache_key] = rows
        return rows

    @staticmethod
    def _sort(rows: list[msgspec.Struct], order: Order) -> None:
        """Sort in place; nulls first. One C-level key when no nulls get in the way."""
        if not any(descending for _, descending in order):
            try:
                rows.sort(key=attrgetter(*(name for name, _ in order)))
                return
            except TypeError:  # a null among the values: fall back to null-safe keys
                pass
        for name, descending in reversed(order):
            rows.sort(key=lambda r, n=name: _null_first(getattr(r, n)), reverse=descending)

    def scan(self, flt: Filter | None, order: Order) -> tuple[list[msgspec.Struct], int]:
        """The sorted candidate rows for a query and the position where matches can begin."""
        company = partition_value(flt.ast, "Company") if flt and self.has_company else None
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


class Store:
    """All entity tables of all projections, guarded by one lock."""

    def __init__(
        self,
        projections: tuple[Projection, ...] = PROJECTIONS,
        shapers: dict[str, Shaper] | None = None,
    ) -> None:
        self.lock = threading.RLock()
        counter = iter(range(1, 1 << 60))
        shapers = shapers or {}
        self.tables: dict[tuple[str, str], EntityTable] = {
            (p.name, s.name): EntityTable(p, s, counter, shapers.get(s.name))
            for p in projections
            for s in p.entity_sets
        }

    def table(self, projection: str, entity_set: str) -> EntityTable:
        return self.tables[(projection, entity_set)]

    def table_for_set(self, entity_set: str) -> EntityTable:
        return next(t for (_, s), t in self.tables.items() if s == entity_set)

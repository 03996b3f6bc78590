"""Pages of IFS rows decoded straight into typed rows, for records the writer takes as read.

IFS rows are typed by `$metadata`. When a page's records go straight to the writer
(no stream map, flattening or batch file: `sdk_adapter.PagedStream.page_writer`) and
need nothing but their etag columns (no renamed, dropped or filled columns), each row is
decoded in C into a msgspec Struct made for the read's `$select`, and the writer encodes
it back in C:

- `Edm.Decimal` and the float types are kept as their JSON number text
  (`msgspec.Raw`): exact to the last digit, never a float, and no Decimal object made
  and formatted per value. The text is written as IFS sent it, so a number can differ
  in form from the Decimal path's (`1e-7` rather than `1E-7`) but never in value, sign,
  digits or exponent: a reader's `Decimal` of either is the same.
- the ordering fields (key-set paging and the bookmark read them) and everything else
  are decoded as for a dict: Decimal for a non-integer number, str, int, bool, None.
- `as_records` turns `@odata.etag` into the `_ifs_etag` and `_ifs_objversion`
  columns; a property a row lacks stays absent, as in a dict.

The number texts point into the page they were read from, so a page is decoded from a
private anonymous memory map: it is returned to the system as soon as its last row is
gone. (Decoded from the response's bytes, each page's buffer would live until the
writer is done with the page, interleaved with the next page's, and glibc's heap keeps
growing around such buffers: about 70 MB more for every million rows.)

A page this cannot take exactly (a property that was not asked for, such as another
annotation; a row that is not an object; a `value` that is not a list; malformed JSON)
is decoded as dicts instead, and so is the rest of the read: the stream's dict path then
applies, warnings and errors included. Rows read this way answer `get`, `in` and item
assignment by property name, as much of a dict as paging and the stream use.
"""

from __future__ import annotations

import decimal
import mmap
import typing as t
from collections.abc import Mapping, Sequence
from operator import attrgetter
from types import MappingProxyType

import msgspec

from tap_ifscloud.etag import ETAG_ANNOTATION, ETAG_COLUMN, OBJVERSION_COLUMN, decode_objversion
from tap_ifscloud.paging import NEXT_LINK

NUMBER_EDM_TYPES = frozenset(("Edm.Decimal", "Edm.Double", "Edm.Single"))

_DICTS = msgspec.json.Decoder(float_hook=decimal.Decimal)
_UNSET = msgspec.UNSET
# private, and filled in one go (Linux) rather than a page fault at a time
_MAP_FLAGS = getattr(mmap, "MAP_PRIVATE", 0) | getattr(mmap, "MAP_POPULATE", 0)


def _page_buffer(content: bytes) -> t.Any:
    """`content` in memory of its own (see the module doc), where the system has it."""
    if not content or not hasattr(mmap, "MAP_PRIVATE"):
        return content
    buffer = mmap.mmap(-1, len(content), flags=_MAP_FLAGS)
    buffer.write(content)
    return buffer


class TypedRow(msgspec.Struct):
    """A row decoded by a `RowDecoder`: fields by position, real names in `_attrs`."""

    _attrs = MappingProxyType({})  # property name -> attribute name, set per row type

    def get(self, name: str, default: t.Any = None) -> t.Any:
        value = getattr(self, self._attrs.get(name, ""), _UNSET)
        return default if value is _UNSET else value

    def __contains__(self, name: object) -> bool:
        attr = self._attrs.get(name) if isinstance(name, str) else None
        return attr is not None and getattr(self, attr) is not _UNSET

    def __setitem__(self, name: str, value: t.Any) -> None:
        setattr(self, self._attrs[name], value)

    @classmethod
    def fill_missing(cls, rows: Sequence[TypedRow], name: str, value: t.Any) -> None:
        """`row[name] = value` for each row lacking `name`: one look per row, in C."""
        attr = cls._attrs[name]
        present = list(map(attrgetter(attr), rows))
        if present.count(_UNSET):
            for row, current in zip(rows, present, strict=True):
                if current is _UNSET:
                    setattr(row, attr, value)


def as_records(rows: list[t.Any]) -> list[t.Any]:
    """`rows` (decoded by a `RowDecoder`) as records, in place: `@odata.etag` moved to the
    `_ifs_etag` column (null when a row has none) and decoded into `_ifs_objversion`."""
    for row in rows:
        etag = row.etag_in
        if etag is _UNSET:
            etag = None
        else:
            row.etag_in = _UNSET  # left out when encoded
        row.etag = etag
        row.objversion = decode_objversion(etag)
    return rows


class RowDecoder:
    """Decodes the pages of one read (its `$select`) into `TypedRow`s, or into dicts
    once a page does not fit (see the module doc)."""

    def __init__(self, row_type: type[TypedRow]) -> None:
        page = msgspec.defstruct(
            "IFSPage",
            [("value", list[row_type]), ("next_link", t.Any, None)],
            rename={"next_link": NEXT_LINK},
        )
        self._decoder = msgspec.json.Decoder(page, float_hook=decimal.Decimal)
        self.typed = True

    @classmethod
    def for_select(
        cls, select: Sequence[str], edm_types: Mapping[str, str], exact_fields: Sequence[str]
    ) -> RowDecoder | None:
        """A decoder for rows of `select` (typed by `edm_types`; `exact_fields`, which
        paging and the bookmark read, decoded to values), or None when the names do not
        allow one (a property named like an etag column)."""
        names = [*select, ETAG_ANNOTATION, ETAG_COLUMN, OBJVERSION_COLUMN]
        if len(set(names)) != len(names):
            return None
        fields: list[tuple[str, t.Any, t.Any]] = []
        rename: dict[str, str] = {}
        for index, name in enumerate(select):
            attr = f"p{index}"
            raw = edm_types.get(name) in NUMBER_EDM_TYPES and name not in exact_fields
            fields.append((attr, msgspec.Raw if raw else t.Any, _UNSET))
            rename[attr] = name
        # the etag as read (never written: `as_records` unsets it), then the etag columns
        fields += [("etag_in", t.Any, _UNSET), ("etag", t.Any, None), ("objversion", t.Any, None)]
        rename.update(etag_in=ETAG_ANNOTATION, etag=ETAG_COLUMN, objversion=OBJVERSION_COLUMN)
        row_type = msgspec.defstruct(
            "IFSRow",
            fields,
            bases=(TypedRow,),
            rename=rename,
            namespace={"_attrs": MappingProxyType({name: attr for attr, name in rename.items()})},
            kw_only=True,
            forbid_unknown_fields=True,
            gc=False,  # flat rows of atomic values: no reference cycles to collect
        )
        return cls(row_type)

    def decode(self, content: bytes) -> dict[str, t.Any]:
        """An OData page: `{"value": rows}` (and the next link, if any)."""
        if self.typed:
            try:
                page = self._decoder.decode(_page_buffer(content))
            except msgspec.DecodeError:
                self.typed = False
            else:
                body: dict[str, t.Any] = {"value": page.value}
                if page.next_link is not None:
                    body[NEXT_LINK] = page.next_link
                return body
        return _DICTS.decode(content)

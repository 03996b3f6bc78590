"""Column model: JSON Schema properties -> warehouse types and a typed record decoder.

The per-record JSON Schema validation of the SDK costs more than the whole database
load, so validation happens while decoding: each stream gets a msgspec Struct whose
field types *are* the checks (Decimal for numbers, dates, bounded strings, ...). A
record that decodes is valid; one that does not is rejected with msgspec's message.
"""

from __future__ import annotations

import datetime
import decimal
import typing as t
from dataclasses import dataclass

import msgspec

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


@dataclass(frozen=True)
class SqlType:
    """A dialect-neutral column type; each warehouse renders and parses it."""

    kind: str  # text | varchar | bigint | numeric | date | timestamptz | time | boolean | json
    length: int | None = None  # varchar
    scale: int | None = None  # numeric: digits after the point the schema asks for

    def describe(self) -> str:
        if self.kind == "varchar" and self.length:
            return f"VARCHAR({self.length})"
        if self.kind == "numeric" and self.scale is not None:
            return f"NUMERIC(scale {self.scale})"
        return self.kind.upper()


TEXT = SqlType("text")
BIGINT = SqlType("bigint")
NUMERIC = SqlType("numeric")
BOOLEAN = SqlType("boolean")
TIMESTAMPTZ = SqlType("timestamptz")
JSON = SqlType("json")

_STRING_FORMATS: dict[str, tuple[SqlType, type]] = {
    "date-time": (TIMESTAMPTZ, datetime.datetime),
    "date": (SqlType("date"), datetime.date),
    "time": (SqlType("time"), datetime.time),
}


@dataclass(frozen=True)
class Column:
    """One warehouse column and where its value comes from."""

    name: str  # warehouse name
    sql_type: SqlType
    source: str | None = None  # property name in the record; None for target metadata
    nullable: bool = True


def _scale_of(schema: dict) -> int | None:
    """Digits after the decimal point asked for by `multipleOf` (0.000001 -> 6)."""
    multiple = schema.get("multipleOf")
    if multiple is None:
        return None
    exponent = decimal.Decimal(str(multiple)).normalize().as_tuple().exponent
    return max(0, -int(exponent))


def _non_null_branches(schema: dict) -> list[dict]:
    branches = schema.get("anyOf") or schema.get("oneOf")
    if not branches:
        return [schema]
    return [b for b in branches if _types(b) != ["null"]]


def _types(schema: dict) -> list[str]:
    declared = schema.get("type", [])
    return [declared] if isinstance(declared, str) else list(declared)


def property_type(schema: dict) -> tuple[SqlType, t.Any]:
    """The warehouse type and the msgspec decode type of one property (without null)."""
    branches = _non_null_branches(schema)
    if len(branches) > 1:
        # anyOf [date-time string, plain string]: the SDK's convention is the richer type.
        formatted = [b for b in branches if b.get("format") in _STRING_FORMATS]
        branches = formatted[:1] or branches
    if len(branches) != 1:
        return JSON, t.Any
    branch = branches[0]
    types = [x for x in _types(branch) if x != "null"]
    if set(types) == {"integer", "number"}:
        types = ["number"]
    if len(types) != 1:
        return JSON, t.Any
    kind = types[0]
    if kind == "string":
        return _string_type(branch)
    if kind == "integer":
        return BIGINT, t.Annotated[int, msgspec.Meta(ge=INT64_MIN, le=INT64_MAX)]
    if kind == "number":
        scale = _scale_of(branch)
        return (NUMERIC if scale is None else SqlType("numeric", scale=scale)), decimal.Decimal
    if kind == "boolean":
        return BOOLEAN, bool
    if kind == "object":
        return JSON, dict[str, t.Any]
    if kind == "array":
        return JSON, list
    return JSON, t.Any


def _string_type(schema: dict) -> tuple[SqlType, t.Any]:
    fmt = schema.get("format")
    if fmt in _STRING_FORMATS:
        return _STRING_FORMATS[fmt]
    members = [v for v in schema.get("enum") or () if v is not None]  # null: nullability
    if members and all(isinstance(v, str) for v in members):
        return TEXT, t.Literal[tuple(members)]
    max_length = schema.get("maxLength")
    if isinstance(max_length, int) and max_length > 0:
        # Plain `str`: an over-long value is a reject made by the sink from the decoded
        # row, reason and all; `length_checked` gives the decode a quick look first.
        return SqlType("varchar", length=max_length), str
    return TEXT, str


def length_checked(sql_type: SqlType, decode_type: t.Any) -> t.Any:
    """`decode_type`, refusing a string longer than a VARCHAR column holds.

    The stream's first decode uses these types so that a batch with no over-long value
    (nearly all) needs no pass over its strings: msgspec checks the length while it
    builds the string (code points, as `len` counts), at no measurable cost. A record
    that fails is decoded again with the plain types, and its batch checked value by
    value (sinks.LookerSink), so what is rejected, and why, does not change.
    """
    if sql_type.kind == "varchar" and sql_type.length and decode_type is str:
        return t.Annotated[str, msgspec.Meta(max_length=sql_type.length)]
    return decode_type


def needs_renaming(name: str) -> bool:
    """msgspec cannot use `"`, `\\` or control characters in a field's JSON name."""
    return any(c in name for c in '"\\') or any(ord(c) < 32 for c in name)


def record_struct(
    stream: str,
    fields: list[tuple[str, t.Any, bool]],
) -> type[msgspec.Struct]:
    """A Struct type decoding one stream's records: (property, type, required) in order.

    Field attribute names are positional (`f0`, `f1`, ...) and the JSON name is the
    property, so spaces, keywords and unicode work. Names msgspec cannot take (quotes,
    backslashes) are decoded as `~<position>`: see `sinks.LookerSink._decode_renamed`.
    """
    spec = []
    for i, (prop, decode_type, required) in enumerate(fields):
        default = msgspec.NODEFAULT if required else None
        json_name = f"~{i}" if needs_renaming(prop) else prop
        spec.append((f"f{i}", decode_type, msgspec.field(name=json_name, default=default)))
    return msgspec.defstruct(
        f"Record_{abs(hash(stream))}",
        spec,
        kw_only=True,
        forbid_unknown_fields=True,
        array_like=False,
    )

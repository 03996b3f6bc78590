"""OData v4 query text for IFS Cloud: literals, filters, ordering and key-set paging.

Every value that goes into a `$filter` passes through `literal`, so a company
code or a key value with a quote in it cannot change the meaning of a query,
and every property name passes through `identifier`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import quote, urlencode

STRING = "string"
DATE = "date"
TIMESTAMP = "timestamp"
NUMBER = "number"
BOOLEAN = "boolean"

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class ODataValueError(ValueError):
    """A value or name that cannot be written safely into an OData query."""


def identifier(name: str) -> str:
    """A property name, checked to be a plain OData identifier."""
    if not isinstance(name, str) or not _IDENTIFIER.match(name):
        raise ODataValueError(f"{name!r} is not a valid OData property name")
    return name


def kind_of(json_schema: Mapping[str, Any]) -> str:
    """The literal kind of a property from its JSON Schema (see metadata.py)."""
    types = json_schema.get("type", "string")
    types = [types] if isinstance(types, str) else list(types)
    fmt = json_schema.get("format")
    if "string" in types:
        if fmt == "date":
            return DATE
        if fmt == "date-time":
            return TIMESTAMP
        return STRING
    if "integer" in types or "number" in types:
        return NUMBER
    if "boolean" in types:
        return BOOLEAN
    return STRING


def literal(value: Any, kind: str) -> str:
    """An OData literal: strings single-quoted with quotes doubled, dates and
    timestamps unquoted and validated, numbers without exponent."""
    if value is None:
        return "null"
    if kind == STRING:
        return "'" + str(value).replace("'", "''") + "'"
    if kind == DATE:
        return _as_date(value).isoformat()
    if kind == TIMESTAMP:
        return format_timestamp(parse_timestamp(value))
    if kind == NUMBER:
        if isinstance(value, bool):
            raise ODataValueError(f"{value!r} is not a number")
        try:
            number = Decimal(str(value))
        except InvalidOperation as exc:
            raise ODataValueError(f"{value!r} is not a number") from exc
        if not number.is_finite():
            raise ODataValueError(f"{value!r} is not a finite number")
        return format(number, "f")
    if kind == BOOLEAN:
        if isinstance(value, bool):
            return "true" if value else "false"
        if str(value).lower() in ("true", "false"):
            return str(value).lower()
        raise ODataValueError(f"{value!r} is not a boolean")
    raise ODataValueError(f"unknown literal kind {kind!r}")


def parse_timestamp(value: Any) -> datetime:
    """A timezone-aware UTC datetime from an ISO string or datetime (naive means UTC)."""
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, date):
        parsed = datetime(value.year, value.month, value.day)
    else:
        text = str(value).strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError as exc:
            raise ODataValueError(f"{value!r} is not an ISO 8601 timestamp") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc)


def format_timestamp(value: datetime) -> str:
    """`2026-01-01T00:00:00Z` (fractional seconds only when present)."""
    value = value.astimezone(timezone.utc)
    text = value.strftime("%Y-%m-%dT%H:%M:%S")
    if value.microsecond:
        text += f".{value.microsecond:06d}".rstrip("0")
    return text + "Z"


def _as_date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    text = str(value).strip()
    try:
        return date.fromisoformat(text[:10])
    except ValueError as exc:
        raise ODataValueError(f"{value!r} is not an ISO 8601 date") from exc


def as_date(value: Any) -> date:
    """A date from a date, datetime or ISO string (the date part of a timestamp)."""
    if isinstance(value, str) and len(value) > 10:
        return parse_timestamp(value).date()
    return _as_date(value)


def eq(name: str, value: Any, kind: str) -> str:
    return f"{identifier(name)} eq {literal(value, kind)}"


def ge(name: str, value: Any, kind: str) -> str:
    return f"{identifier(name)} ge {literal(value, kind)}"


def le(name: str, value: Any, kind: str) -> str:
    return f"{identifier(name)} le {literal(value, kind)}"


def and_all(clauses: Iterable[str | None]) -> str:
    """Clauses joined with `and`, each parenthesised; empty clauses are dropped."""
    parts = [c for c in clauses if c]
    if len(parts) == 1:
        return parts[0]
    return " and ".join(f"({c})" for c in parts)


def check_filter(text: str) -> None:
    """Refuse a user's `$filter` text that could escape the parentheses it is put in.

    `and_all` puts every clause in parentheses, so a filter is confined to its own
    group only if its parentheses balance outside string literals (`'...'`, with
    `''` for a quote inside one) and every literal is closed:
    `Company eq 'US01') or (Company ne 'US01'` would otherwise turn
    `(company) and (filter) and (date bound)` into an `or` that reads every company
    without the bound. Raises ODataValueError saying what is wrong and where.
    """
    if not isinstance(text, str) or not text.strip():
        raise ODataValueError("must be a non-empty OData $filter expression")
    depth = 0
    quote_at: int | None = None
    i = 0
    while i < len(text):
        char = text[i]
        if quote_at is not None:
            if char == "'":
                if text[i + 1 : i + 2] == "'":  # '' is a quote inside the literal
                    i += 1
                else:
                    quote_at = None
        elif char == "'":
            quote_at = i
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth < 0:
                raise ODataValueError(
                    f"has a ')' without its '(' at character {i + 1}: the filter would "
                    "close the parentheses it is put in"
                )
        i += 1
    if quote_at is not None:
        raise ODataValueError(
            f"has a string literal opened at character {quote_at + 1} that is never closed "
            "(write a quote inside a literal as '')"
        )
    if depth:
        raise ODataValueError(f"has {depth} '(' without a matching ')'")


def order_by(fields: Sequence[str]) -> str:
    return ",".join(f"{identifier(f)} asc" for f in fields)


def after(fields: Sequence[tuple[str, str]], values: Sequence[Any]) -> str:
    """Rows strictly after `values` in ascending order of `fields` (key-set paging).

    `fields` are (name, kind) pairs. Nulls sort first, as IFS orders them.
    Produces `(F gt v) or (F eq v and (<after the rest>))`.
    """
    if not fields or len(fields) != len(values):
        raise ODataValueError("key-set paging needs one value per ordering field")
    (name, kind), value = fields[0], values[0]
    name = identifier(name)
    if value is None:
        greater, equal = f"{name} ne null", f"{name} eq null"
    else:
        lit = literal(value, kind)
        greater, equal = f"{name} gt {lit}", f"{name} eq {lit}"
    if len(fields) == 1:
        return greater
    return f"({greater}) or ({equal} and ({after(fields[1:], values[1:])}))"


def encode_query(params: Mapping[str, Any]) -> str:
    """Query string with spaces as %20 (not `+`), as OData servers expect."""
    pairs = [(k, v) for k, v in params.items() if v is not None]
    return urlencode(pairs, quote_via=quote, safe="$,()':")

"""PostgreSQL's single-row upsert (`INSERT ... ON CONFLICT DO UPDATE`) for warehouses
that lack it (BigQuery, Snowflake): parsed, and rewritten as one MERGE.

The audit code writes its rows in PostgreSQL's form; a warehouse without `ON CONFLICT`
runs the rewritten statement instead (`portable_upsert`).
"""

# SQL here is built from identifiers passed through `quote` and the statement's own
# fragments; every value stays a bound parameter.
# ruff: noqa: S608

from __future__ import annotations

import re
import typing as t
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from target_looker.columns import SqlType
from target_looker.warehouse.base import TableRef, WarehouseError

_PARAM = re.compile(r"\$(\d+)")

_ON_CONFLICT = re.compile(
    r"^\s*INSERT\s+INTO\s+(?P<table>.+?)\s*(?:\((?P<columns>[^()]*)\)\s*)?VALUES\s*"
    r"\((?P<values>.*)\)\s*ON\s+CONFLICT\s*\((?P<keys>[^()]*)\)\s*DO\s+UPDATE\s+SET\s+"
    r"(?P<sets>.+?)\s*$",
    re.IGNORECASE | re.DOTALL,
)
_EXCLUDED = re.compile(r"\bEXCLUDED\.", re.IGNORECASE)


def split_top_level(text: str, separator: str = ",") -> list[str]:
    """`text` split at `separator`s outside parentheses and quotes, each part stripped."""
    parts, depth, quote, start = [], 0, "", 0
    for i, char in enumerate(text):
        if quote:
            if char == quote:
                quote = ""
        elif char in "'\"`":
            quote = char
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == separator and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
    parts.append(text[start:].strip())
    return [p for p in parts if p]


def unquote_identifier(text: str) -> str:
    """A quoted ("x" or `x`) or bare identifier's name."""
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return text[1:-1].replace('""', '"')
    if len(text) >= 2 and text[0] == text[-1] == "`":
        return text[1:-1].replace("\\`", "`").replace("\\\\", "\\")
    return text


@dataclass(frozen=True)
class OnConflict:
    """A parsed `INSERT INTO t [(cols)] VALUES (...) ON CONFLICT (keys) DO UPDATE SET ...`."""

    table: str  # as written (qualified, quoted)
    columns: list[str] | None  # None: all of the table's, in order
    values: list[str]
    keys: list[str]
    sets: list[tuple[str, str]]  # (column, expression with EXCLUDED.)


def parse_on_conflict(sql: str) -> OnConflict | None:
    """The parts of PostgreSQL's single-row upsert, or None when `sql` is not one."""
    match = _ON_CONFLICT.match(sql)
    if not match:
        return None
    sets = []
    for assignment in split_top_level(match.group("sets")):
        column, equals, expression = assignment.partition("=")
        if not equals:
            return None
        sets.append((unquote_identifier(column), expression.strip()))
    columns = match.group("columns")
    return OnConflict(
        table=match.group("table"),
        columns=[unquote_identifier(c) for c in split_top_level(columns)] if columns else None,
        values=split_top_level(match.group("values")),
        keys=[unquote_identifier(k) for k in split_top_level(match.group("keys"))],
        sets=sets,
    )


def on_conflict_as_merge(
    upsert: OnConflict,
    columns: Sequence[tuple[str, str]],
    params: Sequence[t.Any],
    quote: t.Callable[[str], str],
) -> str:
    """PostgreSQL's `INSERT ... ON CONFLICT DO UPDATE` of one row as a MERGE (BigQuery,
    Snowflake). `columns`: (name, SQL type) of the row's columns in VALUES order; a NULL
    parameter is cast to its column's type (a bare NULL would be typed INT64 or NUMBER)."""
    if len(columns) != len(upsert.values):
        raise WarehouseError(
            f"upsert into {upsert.table}: {len(upsert.values)} values for {len(columns)} columns"
        )
    select = []
    for (name, sql_type), value in zip(columns, upsert.values, strict=True):
        found = _PARAM.fullmatch(value.strip())
        if value.strip().upper() == "NULL" or (
            found
            and 0 < int(found.group(1)) <= len(params)
            and params[int(found.group(1)) - 1] is None
        ):
            value = f"CAST(NULL AS {sql_type})"
        select.append(f"{value} AS {quote(name)}")
    match = " AND ".join(f"t.{quote(k)} = s.{quote(k)}" for k in upsert.keys)
    updates = ", ".join(f"{quote(c)} = {_EXCLUDED.sub('s.', e)}" for c, e in upsert.sets)
    names = ", ".join(quote(name) for name, _ in columns)
    values = ", ".join(f"s.{quote(name)}" for name, _ in columns)
    return (
        f"MERGE INTO {upsert.table} AS t USING (SELECT {', '.join(select)}) AS s ON {match} "
        + (f"WHEN MATCHED THEN UPDATE SET {updates} " if updates else "")
        + f"WHEN NOT MATCHED THEN INSERT ({names}) VALUES ({values})"
    )


def portable_upsert(
    sql: str,
    params: Sequence[t.Any],
    existing_columns: Callable[[TableRef], Mapping[str, SqlType] | None],
    render_type: Callable[[SqlType], str],
    quote: Callable[[str], str],
) -> str:
    """`sql` with an `ON CONFLICT` upsert rewritten as a MERGE, or `sql` as it is.

    The MERGE casts a NULL parameter to its column's type, so the table's columns are
    read (`existing_columns`) and rendered in the warehouse's types (`render_type`).
    """
    upsert = parse_on_conflict(sql)
    if upsert is None:
        return sql
    parts = [unquote_identifier(p) for p in split_top_level(upsert.table, ".")]
    existing = existing_columns(TableRef(parts[-2], parts[-1])) or {}
    names = upsert.columns or list(existing)
    columns = [(n, render_type(existing.get(n, SqlType("text")))) for n in names]
    return on_conflict_as_merge(upsert, columns, params, quote)

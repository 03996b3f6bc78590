"""Rows of a batch as one Arrow table for a cloud warehouse's bulk load (Parquet).

BigQuery and Snowflake stage a batch the same way: numeric and JSON columns are
checked against what the warehouse holds exactly (a value that does not fit is a
reject, never rounded), then every column becomes an Arrow array, JSON as text,
and the batch's constant columns are repeated. Each dialect brings its own rules
(`decimal_problem`, `json_number_problem`) and its own staging columns.
"""

from __future__ import annotations

import dataclasses
import decimal
import typing as t
from collections.abc import Callable, Mapping, Sequence

import pyarrow as pa

from target_looker.audit import AUDIT_TABLES
from target_looker.columns import Column, SqlType
from target_looker.warehouse.base import Batch, Prepared, encode_json

# The audit tables: their JSON columns are loaded as text, not parsed (both cloud warehouses).
AUDIT_NAMES = frozenset(spec.name for spec in AUDIT_TABLES)


# Arrow types of the staged non-numeric columns (numbers: each warehouse's own decimals).
ARROW_TYPES = {
    "text": pa.string(),
    "varchar": pa.string(),
    "bigint": pa.int64(),
    "date": pa.date32(),
    "timestamptz": pa.timestamp("us", tz="UTC"),
    "time": pa.time64("us"),
    "boolean": pa.bool_(),
    "json": pa.string(),  # JSON text, parsed by the merge
}


@dataclasses.dataclass(frozen=True)
class StageColumn:
    """One column of a staging table, and the table column it fills."""

    name: str  # in the staging table: c0, c1, ...
    sql_type: str  # its type in the staging table
    arrow_type: pa.DataType
    target: Column  # the table column it fills


def stage_columns(
    batch: Batch, stage_type: Callable[[SqlType], tuple[str, pa.DataType]]
) -> list[StageColumn]:
    """The staging table's columns: the batch's columns, then its constants.

    `stage_type` gives a column's (staging SQL type, Arrow type): the only part that
    differs between warehouses; the names (c0, c1, ...) keep any column name loadable.
    """
    columns = [*batch.columns, *(c for c, _ in batch.constants)]
    return [
        StageColumn(f"c{i}", *stage_type(column.sql_type), column)
        for i, column in enumerate(columns)
    ]


def plain_stage_type(kind: str, types: Mapping[str, str]) -> tuple[str, pa.DataType]:
    """A non-numeric column's staging (SQL type, Arrow type), `types` the warehouse's
    names of the kinds: JSON travels as text (the merge parses it), the rest as is."""
    return types["text" if kind == "json" else kind], ARROW_TYPES[kind]


def stage_batch(
    batch: Batch,
    staged: Sequence[StageColumn],
    *,
    decimal_problem: Callable[[t.Any, int], str | None],
    json_number_problem: Callable[[t.Any], str | None],
    integer_limit: decimal.Decimal | None = None,
) -> Prepared:
    """An Arrow table of the rows the warehouse can hold exactly; the others are rejects.

    `staged` has one entry per batch column, then one per constant. A numeric column
    is checked value by value only when Arrow refuses it or (with `integer_limit`) a
    value reaches that magnitude, so a clean batch costs one C-level pass per column.
    """
    rows = batch.rows
    rejects: dict[int, str] = {}
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in batch.columns]
    for position, column in enumerate(batch.columns):
        kind = column.sql_type.kind
        values = columns[position]
        if kind == "numeric":
            arrow_type = staged[position].arrow_type
            try:
                pa.array(values, type=arrow_type)
                if (
                    integer_limit is not None
                    and max(map(abs, filter(None, values)), default=0) >= integer_limit
                ):
                    raise decimal.InvalidOperation
            except (pa.ArrowInvalid, pa.ArrowTypeError, decimal.InvalidOperation, TypeError):
                _note_problems(
                    rejects,
                    column.name,
                    values,
                    lambda v, s=arrow_type.scale: decimal_problem(v, s),
                )
        elif kind == "json":
            _note_problems(rejects, column.name, values, json_number_problem)
    if rejects:
        rows = [row for i, row in enumerate(rows) if i not in rejects]
        columns = list(zip(*rows, strict=True)) if rows else [() for _ in batch.columns]
    arrays = []
    for position, column in enumerate(batch.columns):
        values = columns[position]
        if column.sql_type.kind == "json":
            values = [None if v is None else encode_json(v).decode() for v in values]
        arrays.append(pa.array(values, type=staged[position].arrow_type))
    count = len(rows)
    for offset, (_, value) in enumerate(batch.constants):
        stage = staged[len(batch.columns) + offset]
        if isinstance(value, dict | list):
            value = encode_json(value).decode()
        arrays.append(pa.array([value] * count, type=stage.arrow_type))
    table = pa.Table.from_arrays(arrays, names=[s.name for s in staged])
    prepared_batch = batch if rows is batch.rows else dataclasses.replace(batch, rows=rows)
    return Prepared(prepared_batch, table, sorted(rejects.items()))


def _note_problems(
    rejects: dict[int, str],
    column: str,
    values: Sequence[t.Any],
    problem_of: Callable[[t.Any], str | None],
) -> None:
    """Record the first problem of each row (a row already rejected keeps its reason)."""
    for i, value in enumerate(values):
        if value is not None and i not in rejects:
            problem = problem_of(value)
            if problem:
                rejects[i] = f"column {column!r}: {problem}"

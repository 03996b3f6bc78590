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
from collections.abc import Callable, Sequence

import msgspec
import pyarrow as pa

from target_looker.audit import AUDIT_TABLES
from target_looker.warehouse.base import Batch, Prepared

# The audit tables: their JSON columns are loaded as text, not parsed (both cloud warehouses).
AUDIT_NAMES = frozenset(spec.name for spec in AUDIT_TABLES)

_json_encode = msgspec.json.Encoder(decimal_format="number").encode


class StagedColumn(t.Protocol):
    name: str
    arrow_type: pa.DataType


def stage_batch(
    batch: Batch,
    staged: Sequence[StagedColumn],
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
            values = [None if v is None else _json_encode(v).decode() for v in values]
        arrays.append(pa.array(values, type=staged[position].arrow_type))
    count = len(rows)
    for offset, (_, value) in enumerate(batch.constants):
        stage = staged[len(batch.columns) + offset]
        if isinstance(value, dict | list):
            value = _json_encode(value).decode()
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

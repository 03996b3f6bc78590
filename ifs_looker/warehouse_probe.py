"""`ifs-looker check`'s deeper warehouse probe: one batch through the target's own bulk path.

The plain probe (check.py) creates a table and INSERTs a row. This one proves, on the
real service, what a local emulator cannot: the dialect's staging (BigQuery load job,
Snowflake PUT + COPY INTO, PostgreSQL COPY, ...), the versioned merge inside a
transaction, and exact types read back unchanged (a NUMERIC(38, 9) amount with 29
digits before the point, a wide-scale amount: BIGNUMERIC on BigQuery, NUMBER(38, 12) on
Snowflake; a date, a UTC timestamp with microseconds, a boolean, a JSON object); then
that an older `_ifs_objversion` is skipped. The probe table is dropped at the end.
"""

from __future__ import annotations

import datetime
import decimal
import json
import typing as t
import uuid

import msgspec

from target_looker.columns import BIGINT, BOOLEAN, JSON, TEXT, TIMESTAMPTZ, Column, SqlType
from target_looker.warehouse.base import Batch, TableRef, Warehouse

D = decimal.Decimal
_encode = msgspec.json.Encoder(decimal_format="number").encode
UTC = datetime.timezone.utc
AMOUNT = D("12345678901234567890123456789.123456789")
WIDE = D("0.123456789012")
BOOKED = datetime.date(2024, 2, 29)
AT = datetime.datetime(2024, 3, 30, 23, 30, 0, 123456, tzinfo=UTC)
DOC = {"cost_center": "CC-1", "share": D("0.25")}
VERSION, OLDER = "20260101000000", "20251231235959"


class ProbeFailed(RuntimeError):
    """The bulk path loaded something other than what it was given."""


def probe_columns(wide: bool) -> list[Column]:
    columns = [
        Column("id", BIGINT, nullable=False),
        Column("amount", SqlType("numeric")),
        Column("booked", SqlType("date")),
        Column("at", TIMESTAMPTZ),
        Column("flag", BOOLEAN),
        Column("doc", JSON),
        Column("_ifs_objversion", TEXT),
    ]
    if wide:
        columns.insert(2, Column("wide", SqlType("numeric", scale=12)))
    return columns


def _json(value: t.Any) -> t.Any:
    """A JSON value read back (text, or decoded by the driver) with exact numbers."""
    if isinstance(value, str):
        return json.loads(value, parse_float=D)
    return json.loads(_encode(value), parse_float=D)


def probe_bulk_path(warehouse: Warehouse, schema: str, *, wide: bool = True) -> str:
    """Load, read back and re-merge one row through `warehouse`'s bulk path; drop the table.

    `warehouse` is connected and `schema` exists. Raises `ProbeFailed` (or the
    warehouse's error) when anything differs; returns what was proven.
    """
    table = TableRef(schema, f"_ifs_looker_bulk_{uuid.uuid4().hex[:10]}")
    columns = probe_columns(wide)
    names = [c.name for c in columns]
    row = {
        "id": 1,
        "amount": AMOUNT,
        "wide": WIDE,
        "booked": BOOKED,
        "at": AT,
        "flag": True,
        "doc": DOC,
        "_ifs_objversion": VERSION,
    }
    warehouse.create_table(table, columns, ["id"])
    try:
        first = _merge(warehouse, table, columns, tuple(row[n] for n in names))
        if (first.inserted, first.updated, first.skipped) != (1, 0, 0):
            raise ProbeFailed(f"the first merge counted {first}, not 1 inserted")
        older = {**row, "amount": D("1"), "_ifs_objversion": OLDER}
        second = _merge(warehouse, table, columns, tuple(older[n] for n in names))
        if (second.inserted, second.updated, second.skipped) != (0, 0, 1):
            raise ProbeFailed(f"an older version was not skipped: {second}")
        select = ", ".join(warehouse.quote(n) for n in names)
        rows = warehouse.fetchall(f"SELECT {select} FROM {warehouse.qualified(table)}")  # noqa: S608
        if len(rows) != 1:
            raise ProbeFailed(f"{len(rows)} rows read back, not 1")
        found = dict(zip(names, rows[0], strict=True))
        for name in names:
            want, got = row[name], found[name]
            if name == "doc":
                want, got = _json(want), _json(got)
            elif name == "at" and isinstance(got, datetime.datetime) and got.tzinfo is None:
                got = got.replace(tzinfo=UTC)  # a driver that returns UTC as naive
            if want != got:
                raise ProbeFailed(f"column {name!r} read back as {got!r}, loaded {want!r}")
    finally:
        warehouse.drop_table(table)
    types = ", ".join(warehouse.render_type(c.sql_type) for c in columns if c.name != "id")
    return (
        f"bulk path: staged and merged a row in a transaction, read it back exactly "
        f"({types}), an older version was skipped"
    )


def _merge(warehouse: Warehouse, table: TableRef, columns: list[Column], values: tuple) -> t.Any:
    batch = Batch(table, columns, [values], ["id"], "upsert")
    prepared = warehouse.prepare(batch)
    if prepared.rejects:
        raise ProbeFailed(f"the probe row was rejected: {prepared.rejects[0][1]}")
    return warehouse.run_transaction(lambda: warehouse.merge(prepared), what="bulk probe")


__all__ = ["ProbeFailed", "probe_bulk_path"]

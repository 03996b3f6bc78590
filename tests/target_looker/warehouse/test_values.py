"""Values a warehouse must refuse or normalise, the same in DuckDB and PostgreSQL.

NaN and Infinity in a number column are rejects (one would make `SUM(amount)` NaN);
a timestamp with a valid RFC 3339 offset PostgreSQL refuses (16:00 to 23:59) is the
same instant in UTC; numbers inside JSON columns keep every digit they were sent with.
"""

# Test SQL names the tests' own tables.
# ruff: noqa: S608

from __future__ import annotations

import datetime
import json
import uuid
from decimal import Decimal

from target_looker.columns import BIGINT, JSON, NUMERIC, TIMESTAMPTZ, Column
from target_looker.warehouse import open_warehouse
from target_looker.warehouse.base import Batch, TableRef, non_finite_numbers
from target_looker.warehouse.postgres import utc_where_offsets_out_of_range

from ..singer_io import lines, query, record, run, schema

D = Decimal
UTC = datetime.timezone.utc
NOT_FINITE = ["NaN", "sNaN", "-NaN", "Infinity", "-Infinity", "Inf"]


def stamp(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text)


# NaN and Infinity --------------------------------------------------------------------------------


def test_nan_and_infinity_are_rejects_and_the_rest_of_the_batch_loads(config: dict) -> None:
    amounts = schema(
        "amounts", {"Id": {"type": "integer"}, "Amount": {"type": ["number", "null"]}}, ["Id"]
    )
    messages: list[dict | str] = [amounts, record("amounts", {"Id": 1, "Amount": 1.5})]
    for offset, value in enumerate(NOT_FINITE, start=2):
        messages.append(record("amounts", {"Id": offset, "Amount": value}))
    messages.append(record("amounts", {"Id": 99, "Amount": None}))
    messages.append(
        '{"type": "RECORD", "stream": "amounts", "record": {"Id": 100, "Amount": 2.25}}'
    )
    run(config, lines(*messages))
    assert query(config, "SELECT id, amount FROM {s}.amounts ORDER BY id") == [
        (1, D("1.5")),
        (99, None),
        (100, D("2.25")),
    ]
    assert query(config, "SELECT SUM(amount) FROM {s}.amounts") == [(D("3.75"),)]
    rejects = query(config, "SELECT reason, record FROM {s}._load_rejects")
    assert sorted(json.loads(r)["Id"] for _, r in rejects) == list(range(2, 2 + len(NOT_FINITE)))
    for reason, _ in rejects:
        assert "column 'amount'" in reason
        assert "not a finite number" in reason
    [(rows_rejected,)] = query(config, "SELECT rows_rejected FROM {s}._load_runs")
    assert rows_rejected == len(NOT_FINITE)


def test_prepare_turns_non_finite_numbers_into_rejects_by_position(warehouse_url: str) -> None:
    warehouse = open_warehouse(warehouse_url)
    columns = [Column("id", BIGINT), Column("amount", NUMERIC), Column("fee", NUMERIC)]
    rows = [
        (1, D("1"), D("0")),
        (2, D("NaN"), D("1")),
        (3, D("2"), D("-Infinity")),
        (4, None, None),
        (5, D("sNaN"), D("Infinity")),
    ]
    batch = Batch(TableRef("s", "t"), columns, rows, ["id"], "upsert")
    prepared = warehouse.prepare(batch)
    assert [position for position, _ in prepared.rejects] == [1, 2, 4]
    assert "column 'amount': NaN is not a finite number" in prepared.rejects[0][1]
    assert "column 'fee': -Infinity is not a finite number" in prepared.rejects[1][1]
    assert [row[0] for row in prepared.batch.rows] == [1, 4]


def test_the_finiteness_check_copes_with_floats_and_zeros() -> None:
    columns = [Column("amount", NUMERIC)]
    rows = [(D("0"),), (0.5,), (float("nan"),), (None,), (float("-inf"),), (D("1"),)]
    rejects = non_finite_numbers(Batch(TableRef("s", "t"), columns, rows, [], "append-only"))
    assert sorted(rejects) == [2, 4]


# timestamps with UTC offsets PostgreSQL refuses --------------------------------------------------

FAR_OFFSETS = [
    "2026-01-01T00:30:00+16:00",
    "2026-01-01T00:30:00+23:59",
    "2026-01-01T00:30:00-16:00",
    "2026-01-01T00:30:00.123456-23:59",
    "2026-01-01T00:30:00+15:59",  # PostgreSQL's largest
    "2026-01-01T00:30:00Z",
]


def test_timestamps_with_any_valid_rfc3339_offset_load_as_the_same_instant(config: dict) -> None:
    events = schema(
        "events",
        {"Id": {"type": "integer"}, "HappenedAt": {"type": "string", "format": "date-time"}},
        ["Id"],
    )
    messages: list[dict | str] = [events]
    for i, text in enumerate(FAR_OFFSETS):
        messages.append(record("events", {"Id": i, "HappenedAt": text}, time_extracted=text))
    run(config, lines(*messages))
    got = query(config, "SELECT id, happened_at, _sdc_extracted_at FROM {s}.events ORDER BY id")
    assert [(i, at, extracted) for i, at, extracted in got] == [
        (i, stamp(text), stamp(text)) for i, text in enumerate(FAR_OFFSETS)
    ]
    assert query(config, "SELECT count(*) FROM {s}._load_rejects") == [(0,)]


def test_only_values_beyond_postgres_limit_are_moved_to_utc() -> None:
    columns = [Column("id", BIGINT), Column("at", TIMESTAMPTZ)]
    near, far = stamp("2026-01-01T00:30:00+15:59"), stamp("2026-01-01T00:30:00+16:00")
    rows = [(1, near), (2, None), (3, far)]
    converted = utc_where_offsets_out_of_range(columns, rows)
    assert converted[0] is rows[0] and converted[1] is rows[1]
    assert converted[2] == (3, far) and converted[2][1].utcoffset() == datetime.timedelta(0)
    plain = [(1, near), (2, stamp("2026-01-01T00:00:00Z"))]
    assert utc_where_offsets_out_of_range(columns, plain) is plain


# numbers inside JSON -----------------------------------------------------------------------------

EXACT_JSON = {
    "amt": D("1234567890123456789.123456"),
    "tiny": D("0.000000000000000000000000000001"),
    "big": 123456789012345678901234567890,
    "list": [D("0.1"), D("-99999999999999999999.99"), {"deep": D("3.14159265358979323846264338")}],
}


def exact(text: str) -> object:
    """A JSON column's text (read back as text: drivers parse JSON numbers as floats)."""
    return json.loads(text, parse_float=Decimal)


def test_json_columns_keep_numbers_exactly_as_sent(warehouse_url: str) -> None:
    warehouse = open_warehouse(warehouse_url)
    warehouse.connect()
    try:
        table = TableRef(f"j_{uuid.uuid4().hex[:8]}", "docs")
        columns = [Column("id", BIGINT), Column("doc", JSON)]
        warehouse.ensure_schema(table.schema)
        warehouse.create_table(table, columns, ["id"])
        rows = [(1, EXACT_JSON), (2, [EXACT_JSON["amt"]]), (3, None)]
        batch = Batch(table, columns, rows, ["id"], "append-only")
        with warehouse.transaction():
            warehouse.merge(warehouse.prepare(batch))
        got = warehouse.fetchall(
            f"SELECT id, CAST(doc AS VARCHAR) FROM {warehouse.qualified(table)} ORDER BY id"
        )
    finally:
        warehouse.close()
    assert got[0][0] == 1 and exact(got[0][1]) == EXACT_JSON
    assert exact(got[1][1]) == [D("1234567890123456789.123456")]
    assert got[2] == (3, None)


def test_json_properties_keep_numbers_exactly_end_to_end(config: dict) -> None:
    docs = schema(
        "docs",
        {"Id": {"type": "integer"}, "Doc": {"type": "object"}, "Items": {"type": "array"}},
        ["Id"],
    )
    text = lines(docs) + (
        '{"type": "RECORD", "stream": "docs", "record": {"Id": 1, '
        '"Doc": {"amt": 1234567890123456789.123456, "n": 0.1}, '
        '"Items": [1234567890123456789.123456, 1e400]}}\n'
    )
    run(config, text)
    [(doc, items)] = query(
        config, "SELECT CAST(doc AS VARCHAR), CAST(items AS VARCHAR) FROM {s}.docs"
    )
    assert exact(doc) == {
        "amt": D("1234567890123456789.123456"),
        "n": D("0.1"),
    }
    assert exact(items) == [D("1234567890123456789.123456"), D("1E+400")]

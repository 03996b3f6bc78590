"""Choosing the dialect from warehouse_url, and what each dialect refuses to store."""

from __future__ import annotations

import decimal
from pathlib import Path

import pytest

from target_looker.warehouse import WarehouseError, default_url, open_warehouse, parse_url
from target_looker.warehouse.duckdb import DuckDBWarehouse, decimal_problem
from target_looker.warehouse.postgres import PostgresWarehouse

from ..singer_io import lines, query, record, run, schema

D = decimal.Decimal


def test_plain_postgresql_urls_use_psycopg_3() -> None:
    url = parse_url("postgresql://looker:s3cret@db.example.com:5432/dw")
    assert url.drivername == "postgresql+psycopg"
    warehouse = open_warehouse("postgresql://looker:s3cret@db.example.com:5432/dw")
    assert isinstance(warehouse, PostgresWarehouse)
    assert "s3cret" not in warehouse.safe_url and "***" in warehouse.safe_url


def test_the_default_is_a_duckdb_file_in_the_working_directory() -> None:
    warehouse = open_warehouse(None)
    assert isinstance(warehouse, DuckDBWarehouse)
    assert Path(warehouse.path) == Path("output") / "warehouse.duckdb"
    assert default_url() == "duckdb:///output/warehouse.duckdb"


def test_unsupported_and_malformed_urls_are_clear_errors() -> None:
    with pytest.raises(WarehouseError, match="'mysql' is not supported"):
        open_warehouse("mysql://u@h/db")
    with pytest.raises(WarehouseError, match="not a valid SQLAlchemy URL"):
        open_warehouse("not a url")


def test_a_wrong_password_error_does_not_show_it(pg_database: str) -> None:
    warehouse = open_warehouse(pg_database.replace("postgres@", "nobody:hunter2@"))
    with pytest.raises(ConnectionError) as caught:
        warehouse.connect()
    assert "hunter2" not in str(caught.value)


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (D("12345678901234567890123456789.123456789"), None),
        (D("1.1234567891"), "more than 9 decimal places"),
        (D("1.1000000000"), None),  # trailing zeros lose nothing
        (D("123456789012345678901234567890"), "digits before the decimal point"),
        (D("NaN"), "not a finite number"),
    ],
)
def test_duckdb_decimal_fit(value: decimal.Decimal, problem: str | None) -> None:
    found = decimal_problem(value, 9)
    assert found is None if problem is None else problem in found


def test_duckdb_rejects_a_value_it_would_have_to_round(tmp_path: Path) -> None:
    config = {"warehouse_url": f"duckdb:///{tmp_path / 'w.duckdb'}", "default_target_schema": "s"}
    amounts = schema("amounts", {"Id": {"type": "integer"}, "Amount": {"type": "number"}}, ["Id"])
    text = lines(amounts, record("amounts", {"Id": 1, "Amount": 1.5}))
    text += '{"type": "RECORD", "stream": "amounts", "record": {"Id": 2, "Amount": 0.1234567891}}\n'
    run(config, text)
    assert query(config, "SELECT id, amount FROM {s}.amounts") == [(1, D("1.5"))]
    [(reason,)] = query(config, "SELECT reason FROM {s}._load_rejects")
    assert "more than 9 decimal places" in reason


def test_duckdb_keeps_more_scale_when_the_schema_asks(tmp_path: Path) -> None:
    config = {"warehouse_url": f"duckdb:///{tmp_path / 'w.duckdb'}", "default_target_schema": "s"}
    props = {"Id": {"type": "integer"}, "Rate": {"type": "number", "multipleOf": 1e-12}}
    text = lines(schema("rates", props, ["Id"]))
    text += '{"type": "RECORD", "stream": "rates", "record": {"Id": 1, "Rate": 0.123456789012}}\n'
    run(config, text)
    assert query(config, "SELECT rate FROM {s}.rates") == [(D("0.123456789012"),)]


def test_postgresql_rejects_nul_characters_instead_of_failing_the_batch(pg_database: str) -> None:
    config = {"warehouse_url": pg_database, "default_target_schema": "nul_test"}
    notes = schema("notes", {"Id": {"type": "integer"}, "Text": {"type": "string"}}, ["Id"])
    text = lines(
        notes,
        record("notes", {"Id": 1, "Text": "fine \\u0000 (an escaped backslash, not NUL)"}),
        record("notes", {"Id": 2, "Text": "bad \u0000 NUL"}),
    )
    run(config, text)
    assert query(config, "SELECT id FROM {s}.notes") == [(1,)]
    [(reason,)] = query(config, "SELECT reason FROM {s}._load_rejects")
    assert "NUL" in reason

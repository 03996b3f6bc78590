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


# every libpq URL form ----------------------------------------------------------------------------


def libpq_forms(pg_database: str) -> list[str]:
    name = pg_database.rsplit("/", 1)[1]
    return [
        pg_database,
        f"postgresql://postgres@/{name}?host=127.0.0.1",
        f"postgresql://postgres@/{name}?host=127.0.0.1&port=5432&password=hunter2",
        f"postgresql://postgres:hunter2@127.0.0.1/{name}?password=hunter2",
        f"postgresql:///{name}?host=127.0.0.1&user=postgres&connect_timeout=5",
        f"postgresql:///?dbname={name}&host=127.0.0.1&user=postgres",
        f"postgres://postgres@127.0.0.1:5432/{name}?sslmode=disable",
        f"postgresql+psycopg://postgres@127.0.0.1/{name}?application_name=target-looker",
        f"postgresql://postgres@127.0.0.1:5432,localhost:5432/{name}",
        f"postgresql://postgres@[::1]:5432,127.0.0.1:5432/{name}?target_session_attrs=any",
        f"postgresql://postgres@/{name}?host=127.0.0.1&host=localhost&port=5432&port=5432",
    ]


def test_every_libpq_url_form_connects(pg_database: str) -> None:
    for url in libpq_forms(pg_database):
        warehouse = open_warehouse(url)
        try:
            warehouse.connect()
            assert warehouse.fetchall("SELECT current_database()") == [
                (pg_database.rsplit("/", 1)[1],)
            ], url
        finally:
            warehouse.close()
        assert "hunter2" not in warehouse.safe_url, url


def test_a_password_in_the_query_is_hidden_like_one_in_the_user_part() -> None:
    warehouse = open_warehouse("postgresql://looker@db/dw?host=db&password=s3cret&sslmode=require")
    assert "s3cret" not in warehouse.safe_url
    assert "password=***" in warehouse.safe_url and "sslmode=require" in warehouse.safe_url


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://looker:s3cret@db.example.com:notaport/dw",
        "postgresql://looker:s3cret@db.example.com:99999/dw",
        "postgresql://looker:s3cret@db1:5432,db2:x/dw",
        "postgresql://looker@/dw?host=db&port=abc&password=s3cret",
    ],
)
def test_a_bad_port_is_an_error_naming_the_setting_not_the_password(url: str) -> None:
    with pytest.raises(WarehouseError) as caught:
        open_warehouse(url)
    message = str(caught.value)
    assert "warehouse_url" in message and "port" in message
    assert "s3cret" not in message and "invalid literal" not in message


def test_an_unknown_libpq_option_is_an_error_naming_the_setting() -> None:
    warehouse = open_warehouse("postgresql://looker:s3cret@db/dw?no_such_option=1")
    with pytest.raises(WarehouseError, match=r"warehouse_url.*no_such_option") as caught:
        warehouse.connect()
    assert "s3cret" not in str(caught.value)


@pytest.mark.parametrize(
    ("query_string", "memory_limit", "checkpoint_threshold"),
    [("", "128MB", "256MB"), ("?memory_limit=64MB&checkpoint_threshold=1GB", "64MB", "1GB")],
)
def test_duckdb_buffer_and_checkpoint_sizes_come_from_the_url(
    tmp_path: Path, query_string: str, memory_limit: str, checkpoint_threshold: str
) -> None:
    """Bounded memory, and a WAL that takes several batches before DuckDB checkpoints."""
    warehouse = open_warehouse(f"duckdb:///{tmp_path / 'w.duckdb'}{query_string}")
    settings = dict(
        warehouse.fetchall(
            "SELECT name, value FROM duckdb_settings() "
            "WHERE name IN ('memory_limit', 'checkpoint_threshold')"
        )
    )
    warehouse.close()
    as_bytes = {"64MB": "61.0 MiB", "128MB": "122.0 MiB", "256MB": "244.1 MiB", "1GB": "953.6 MiB"}
    assert settings == {
        "memory_limit": as_bytes[memory_limit],
        "checkpoint_threshold": as_bytes[checkpoint_threshold],
    }

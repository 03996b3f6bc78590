"""`write_path: looker_sql_runner`: the PostgreSQL warehouse's SQL, sent through SQL Runner.

Literals are quoted by a tested function (and round-trip through real PostgreSQL),
each batch is one all-or-nothing SQL Runner call, and the same Singer input loads
the same tables as the direct PostgreSQL path, through 401s, token expiry and 429s.
"""

# Test SQL names generated schemas; values are literals of the tests' own.
# ruff: noqa: S608

from __future__ import annotations

import contextlib
import datetime
import io
import json
import uuid
from collections.abc import Iterator
from decimal import Decimal

import msgspec
import psycopg
import pytest

from ifs_looker_sandboxes.looker import LookerConfig, LookerSandbox
from target_looker.columns import BIGINT, JSON, TEXT, TIMESTAMPTZ, Column
from target_looker.looker_api import LookerSqlError
from target_looker.refresh import LookerSettings
from target_looker.target import TargetLooker
from target_looker.warehouse.base import Batch, Prepared, TableRef, WarehouseError
from target_looker.warehouse.looker_sql_runner import (
    LEDGER_TABLE,
    LookerSqlRunnerWarehouse,
    bind,
    sql_literal,
)
from tests.sandboxes import running_looker

from ..singer_io import record, schema, state

_encode = msgspec.json.Encoder(decimal_format="number").encode

NASTY = [
    "",
    "plain",
    "O'Brien",
    "''",
    "back\\slash",
    "\\'",
    "ends with backslash\\",
    "new\nline\r\ttab",
    "ÅÄÖ 你好 🙂 \u200b",
    "'); DROP TABLE x; --",
    "$1 and $$ dollar $q$",
    'double "quotes"',
    "E'not an escape'",
]


# quoting -----------------------------------------------------------------------------------------


def test_literals_of_each_type() -> None:
    assert sql_literal(None) == "NULL"
    assert sql_literal(True) == "TRUE"
    assert sql_literal(False) == "FALSE"
    assert sql_literal(-42) == "-42"
    assert (
        sql_literal(Decimal("12345678901234567890.123456789")) == "12345678901234567890.123456789"
    )
    assert sql_literal(Decimal("1E+3")) == "1000"
    assert sql_literal(Decimal("-0.000001")) == "-0.000001"
    assert sql_literal(1.5) == "1.5"
    assert sql_literal(datetime.date(2026, 1, 31)) == "E'2026-01-31'"
    assert sql_literal("O'Brien") == "E'O''Brien'"
    assert sql_literal("a\\b") == "E'a\\\\b'"


@pytest.mark.parametrize("value", [Decimal("NaN"), Decimal("Infinity"), float("inf"), float("nan")])
def test_non_finite_numbers_are_refused(value: object) -> None:
    with pytest.raises(ValueError, match="non-finite"):
        sql_literal(value)


def test_nul_is_refused_and_unknown_types_too() -> None:
    with pytest.raises(ValueError, match="NUL"):
        sql_literal("a\x00b")
    with pytest.raises(TypeError, match="bytes"):
        sql_literal(b"raw")


@pytest.mark.parametrize("standard_conforming", ["on", "off"])
def test_quoted_strings_round_trip_through_postgres(standard_conforming: str) -> None:
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
        conn.execute(f"SET standard_conforming_strings = {standard_conforming}")
        for text in NASTY:
            [(back,)] = conn.execute(f"SELECT {sql_literal(text)}::text".encode()).fetchall()
            assert back == text
        stamp = datetime.datetime(2026, 3, 1, 12, 30, 15, 123456, tzinfo=datetime.timezone.utc)
        [(value,)] = conn.execute(f"SELECT {sql_literal(stamp)}::timestamptz".encode()).fetchall()
        assert value == stamp


def test_bind_replaces_parameters_only_outside_quotes() -> None:
    sql = "SELECT $1, '$1', \"$2\" FROM t WHERE a = $2 AND b ~ '^[0-9]+$'"
    assert bind(sql, ("x'y", 7)) == (
        "SELECT E'x''y', '$1', \"$2\" FROM t WHERE a = 7 AND b ~ '^[0-9]+$'"
    )
    with pytest.raises(WarehouseError, match=r"\$3 but 2 value"):
        bind("SELECT $3", (1, 2))


# fixtures ----------------------------------------------------------------------------------------


@pytest.fixture
def looker(pg_database: str) -> Iterator[LookerSandbox]:
    with running_looker(LookerConfig(connections={"warehouse": pg_database})) as sandbox:
        yield sandbox


def runner_config(looker: LookerSandbox, schema_name: str, **extra: object) -> dict:
    return {
        "default_target_schema": schema_name,
        "looker_base_url": looker.base_url,
        "looker_client_id": "looker-sandbox",
        "looker_client_secret": "looker-sandbox-secret",
        "looker_connection_name": "warehouse",
        "looker_max_retries": 40,
        "looker_max_backoff_seconds": 0.02,
        "write_path": "looker_sql_runner",
        **extra,
    }


def load(target_class: type[TargetLooker], config: dict, text: str) -> list[dict]:
    out = io.StringIO()
    target = target_class(config=config)
    with contextlib.redirect_stdout(out):
        target.listen(io.StringIO(text))
    return [json.loads(line) for line in out.getvalue().splitlines() if line.strip()]


PROPERTIES = {
    "Company": {"type": "string"},
    "VoucherNo": {"type": "integer"},
    "RowNo": {"type": "integer"},
    "Text": {"type": ["string", "null"]},
    "Amount": {"type": ["number", "null"]},
    "VoucherDate": {"type": ["string", "null"], "format": "date"},
    "Posted": {"type": ["boolean", "null"]},
    "ChangedAt": {"type": ["string", "null"], "format": "date-time"},
    "Extra": {"type": ["object", "null"]},
    "_ifs_objversion": {"type": ["string", "null"]},
}
KEYS = ["Company", "VoucherNo", "RowNo"]


def voucher(no: int, row: int, version: str, text: str, amount: str | None) -> dict:
    return record(
        "voucher_rows",
        {
            "Company": "US01",
            "VoucherNo": no,
            "RowNo": row,
            "Text": text,
            "Amount": None if amount is None else Decimal(amount),
            "VoucherDate": f"2026-0{1 + no % 9}-1{row % 10}",
            "Posted": row % 2 == 0,
            "ChangedAt": "2026-02-03T04:05:06.789+01:00",
            "Extra": {"note": text, "n": no},
            "_ifs_objversion": version,
        },
        time_extracted="2026-05-06T07:08:09+00:00",
    )


def singer_input(rows: int = 14) -> str:
    messages: list[dict] = [schema("voucher_rows", PROPERTIES, KEYS)]
    for i in range(rows):
        messages.append(voucher(i // 3, i % 3, "20260101000000", NASTY[i % len(NASTY)], f"{i}.05"))
        if i % 5 == 4:
            messages.append(state({"bookmarks": {"voucher_rows": {"i": i}}}))
    # a newer version of an early row, an older one that must not win, and a NULL amount
    messages.append(voucher(0, 1, "20260202000000", "updated", "-12345678901234.123456"))
    messages.append(voucher(0, 2, "20251231000000", "stale", "999"))
    messages.append(voucher(9, 9, "20260101000000", "no amount", None))
    messages.append(state({"bookmarks": {"voucher_rows": {"i": "end"}}}))
    return "".join(_encode(m).decode() + "\n" for m in messages)


COMPARED = (
    "company, voucher_no, row_no, text, amount, voucher_date, posted, changed_at, extra, "
    "_ifs_objversion, _sdc_extracted_at, _sdc_deleted_at"
)


def table_rows(url: str, schema_name: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            f'SELECT {COMPARED} FROM "{schema_name}".voucher_rows ORDER BY 1, 2, 3'.encode()
        ).fetchall()


def table_shape(url: str, schema_name: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT table_name, column_name, data_type, is_nullable "
            "FROM information_schema.columns "
            "WHERE table_schema = %s AND table_name <> %s ORDER BY table_name, ordinal_position",
            (schema_name, LEDGER_TABLE),
        ).fetchall()


def batch_counts(url: str, schema_name: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT records_in, rows_inserted, rows_updated, rows_skipped, rows_rejected "
            f'FROM "{schema_name}"._load_batches ORDER BY committed_at'.encode()
        ).fetchall()


# the load ----------------------------------------------------------------------------------------


def test_sql_runner_and_direct_postgres_load_identical_tables(
    looker: LookerSandbox, pg_database: str
) -> None:
    direct, runner = f"d_{uuid.uuid4().hex[:8]}", f"r_{uuid.uuid4().hex[:8]}"
    text = singer_input()
    direct_states = load(
        TargetLooker,
        {"warehouse_url": pg_database, "default_target_schema": direct, "batch_size_rows": 4},
        text,
    )
    runner_states = load(TargetLooker, runner_config(looker, runner, batch_size_rows=4), text)
    assert runner_states == direct_states
    rows = table_rows(pg_database, runner)
    assert rows == table_rows(pg_database, direct)
    assert len(rows) == 15
    texts = {r[3] for r in rows}
    assert set(NASTY) - {"plain"} <= texts  # row (0, 1) "plain" was updated
    assert ("US01", 0, 1, "updated", Decimal("-12345678901234.123456")) == rows[1][:5]
    assert rows[2][3] == NASTY[2]  # the older version did not win
    assert table_shape(pg_database, runner) == table_shape(pg_database, direct)
    assert batch_counts(pg_database, runner) == batch_counts(pg_database, direct)
    # one SQL Runner call per batch transaction: 5 batches, each one BEGIN...COMMIT script
    scripts = [run.sql for run in looker.sql_log if "target_looker_stage" in run.sql]
    assert len(scripts) == 5
    assert all(s.startswith("BEGIN;") and s.endswith("COMMIT;") for s in scripts)


def test_a_401_in_the_middle_of_a_batch_is_retried_once_and_nothing_is_written_twice(
    looker: LookerSandbox, pg_database: str
) -> None:
    runner = f"r_{uuid.uuid4().hex[:8]}"
    text = singer_input()
    load(TargetLooker, runner_config(looker, runner, batch_size_rows=4), text)
    clean = table_rows(pg_database, runner)
    counts = batch_counts(pg_database, runner)

    again = f"r_{uuid.uuid4().hex[:8]}"
    looker.sql_log.clear()
    looker.request_log.clear()
    # every batch transaction meets an expired session when it is about to run
    looker.expire_tokens_before_sql = lambda sql: "target_looker_stage" in sql
    load(TargetLooker, runner_config(looker, again, batch_size_rows=4), text)
    runs = looker.requests("POST", "/run/json")
    refused = [i for i, r in enumerate(runs) if r.status == 401]
    assert len(refused) == 5  # one per batch
    for index in refused:
        assert (runs[index + 1].path, runs[index + 1].status) == (runs[index].path, 200)
    scripts = [run.sql for run in looker.sql_log if run.sql.startswith("BEGIN;")]
    assert len(scripts) == len(set(scripts))  # no transaction ran twice
    assert sum("target_looker_stage" in s for s in scripts) == 5
    assert len(looker.requests("POST", "/login")) == 6
    assert table_rows(pg_database, again) == clean
    assert batch_counts(pg_database, again) == counts


def test_a_batch_whose_answer_is_lost_is_not_written_twice(
    looker: LookerSandbox, pg_database: str, caplog: pytest.LogCaptureFixture
) -> None:
    clean_schema, lossy = f"r_{uuid.uuid4().hex[:8]}", f"r_{uuid.uuid4().hex[:8]}"
    text = singer_input()
    load(TargetLooker, runner_config(looker, clean_schema, batch_size_rows=4), text)
    looker.sql_log.clear()
    # every batch commits, then its HTTP answer is lost; the client's retry sends it again
    looker.lose_answer_to_sql = lambda sql: "target_looker_stage" in sql
    load(TargetLooker, runner_config(looker, lossy, batch_size_rows=4), text)
    batches = [run for run in looker.sql_log if "target_looker_stage" in run.sql]
    assert len(batches) == 10  # 5 batches, each sent twice
    second_tries = batches[1::2]
    assert all(
        "_looker_sql_runner_txns_pkey" in run.result[0]["looker_error"] for run in second_tries
    )
    assert "committed but its answer was lost" in caplog.text
    assert table_rows(pg_database, lossy) == table_rows(pg_database, clean_schema)
    assert batch_counts(pg_database, lossy) == batch_counts(pg_database, clean_schema)


def test_tokens_expiring_every_2_seconds_mid_load(looker: LookerSandbox, pg_database: str) -> None:
    looker.update_config(token_lifetime=2, latency_ms=40)
    runner = f"r_{uuid.uuid4().hex[:8]}"
    load(TargetLooker, runner_config(looker, runner, batch_size_rows=2), singer_input(10))
    logins = looker.requests("POST", "/login")
    assert len(logins) >= 2
    assert len(table_rows(pg_database, runner)) == 11


def test_a_429_storm_is_ridden_out(looker: LookerSandbox, pg_database: str) -> None:
    looker.update_config(rate_429=0.5)
    runner = f"r_{uuid.uuid4().hex[:8]}"
    load(TargetLooker, runner_config(looker, runner, batch_size_rows=5), singer_input(10))
    assert sum(r.status == 429 for r in looker.request_log) >= 10
    assert len(table_rows(pg_database, runner)) == 11


# one batch, one transaction ----------------------------------------------------------------------


def test_a_batch_is_all_or_nothing_when_another_writer_interferes(
    looker: LookerSandbox, pg_database: str
) -> None:
    settings = LookerSettings.from_config(runner_config(looker, "unused"))
    warehouse = LookerSqlRunnerWarehouse(settings)
    warehouse.connect()
    schema_name = f"a_{uuid.uuid4().hex[:8]}"
    table = TableRef(schema_name, "t")
    columns = [Column("id", BIGINT), Column("note", TEXT), Column("_ifs_objversion", TEXT)]
    warehouse.ensure_schema(schema_name)
    warehouse.create_table(table, columns, ["id"])
    batch = Batch(table, columns, [(1, "one", "1"), (2, "two", "1")], ["id"], "upsert")

    def load_while_another_writer_inserts_key_2() -> None:
        with warehouse.transaction():
            counts = warehouse.merge(Prepared(batch, batch.rows))
            assert (counts.inserted, counts.updated) == (2, 0)
            with psycopg.connect(pg_database, autocommit=True) as conn:
                conn.execute(f"INSERT INTO \"{schema_name}\".t VALUES (2, 'theirs', '1')".encode())

    with pytest.raises(LookerSqlError, match="the table changed while this batch was prepared"):
        load_while_another_writer_inserts_key_2()
    assert warehouse.fetchall(f'SELECT id, note FROM "{schema_name}".t') == [(2, "theirs")]
    with warehouse.transaction():
        counts = warehouse.merge(Prepared(batch, batch.rows))
    assert (counts.inserted, counts.updated, counts.skipped) == (1, 1, 0)
    rows = warehouse.fetchall(f'SELECT id, note FROM "{schema_name}".t ORDER BY id')
    assert rows == [(1, "one"), (2, "two")]
    warehouse.close()


def test_a_batch_another_writer_got_in_between_is_predicted_and_sent_again(
    looker: LookerSandbox, pg_database: str
) -> None:
    """`run_transaction` runs the whole batch again (a new prediction, a new script) when
    its script failed because the table changed; DDL scripts take the advisory lock."""
    settings = LookerSettings.from_config(runner_config(looker, "unused"))
    warehouse = LookerSqlRunnerWarehouse(settings)
    warehouse.connect()
    schema_name = f"r_{uuid.uuid4().hex[:8]}"
    table = TableRef(schema_name, "t")
    columns = [Column("id", BIGINT), Column("note", TEXT), Column("_ifs_objversion", TEXT)]
    warehouse.ensure_schema(schema_name)
    warehouse.create_table(table, columns, ["id"])
    warehouse.add_column(table, Column("extra", TEXT))
    ddl = [
        run.sql
        for run in looker.sql_log
        if schema_name in run.sql and ("CREATE" in run.sql or "ADD COLUMN" in run.sql)
    ]
    assert len(ddl) == 4  # the schema, the ledger, the table, the column
    assert all("pg_advisory_xact_lock" in sql for sql in ddl)
    batch = Batch(table, columns, [(1, "one", "1"), (2, "two", "1")], ["id"], "upsert")
    attempts = []

    def load_batch():
        attempts.append(len(attempts) + 1)
        counts = warehouse.merge(Prepared(batch, batch.rows))
        if len(attempts) == 1:  # another writer inserts key 2 before the script runs
            with psycopg.connect(pg_database, autocommit=True) as conn:
                conn.execute(f"INSERT INTO \"{schema_name}\".t VALUES (2, 'theirs', '1')".encode())
        return counts

    counts = warehouse.run_transaction(load_batch)
    assert attempts == [1, 2]
    assert (counts.inserted, counts.updated, counts.skipped) == (1, 1, 0)
    rows = warehouse.fetchall(f'SELECT id, note FROM "{schema_name}".t ORDER BY id')
    assert rows == [(1, "one"), (2, "two")]
    warehouse.close()


def test_retiring_old_versions_reports_how_many_rows_it_changed(looker: LookerSandbox) -> None:
    settings = LookerSettings.from_config(runner_config(looker, "unused"))
    warehouse = LookerSqlRunnerWarehouse(settings)
    warehouse.connect()
    schema_name = f"v_{uuid.uuid4().hex[:8]}"
    table = TableRef(schema_name, "t")
    columns = [
        Column("id", BIGINT),
        Column("_sdc_table_version", BIGINT),
        Column("_sdc_deleted_at", TIMESTAMPTZ),
    ]
    warehouse.ensure_schema(schema_name)
    warehouse.create_table(table, columns, ["id"])
    rows = [(1, 1, None), (2, 1, None), (3, 2, None), (4, None, None)]
    with warehouse.transaction():
        warehouse.merge(Prepared(Batch(table, columns, rows, ["id"], "append-only"), rows))
    when = datetime.datetime(2026, 3, 1, tzinfo=datetime.timezone.utc)
    with warehouse.transaction():  # the target retires inside a transaction; the count is real
        assert warehouse.retire_old_versions(table, 2, hard_delete=False, deleted_at=when) == 3
    assert warehouse.retire_old_versions(table, 2, hard_delete=False, deleted_at=when) == 0
    assert warehouse.retire_old_versions(table, 2, hard_delete=True, deleted_at=None) == 3
    assert warehouse.fetchall(f'SELECT id, _sdc_deleted_at FROM "{schema_name}".t') == [(3, None)]
    warehouse.close()


def test_a_wrong_connection_name_fails_at_connect(looker: LookerSandbox) -> None:
    settings = LookerSettings.from_config(
        {**runner_config(looker, "s"), "looker_connection_name": "nope"}
    )
    warehouse = LookerSqlRunnerWarehouse(settings)
    with pytest.raises(Exception, match=r"GET /connections/nope failed: HTTP 404"):
        warehouse.connect()
    assert "looker-sandbox-secret" not in warehouse.safe_url
    # the caller gets no warehouse to close: connect itself ended the session
    assert [(r.path, r.status) for r in looker.requests("DELETE")] == [("/api/4.0/logout", 204)]


def test_a_load_logs_out_at_the_end_like_the_direct_path(looker: LookerSandbox) -> None:
    runner = f"r_{uuid.uuid4().hex[:8]}"
    load(TargetLooker, runner_config(looker, runner, batch_size_rows=4), singer_input(6))
    last = looker.request_log[-1]
    assert (last.method, last.path, last.status) == ("DELETE", "/api/4.0/logout", 204)
    assert len(looker.requests("DELETE", "/logout")) == len(looker.requests("POST", "/login"))


def test_closing_twice_logs_out_once(looker: LookerSandbox) -> None:
    warehouse = LookerSqlRunnerWarehouse(LookerSettings.from_config(runner_config(looker, "s")))
    warehouse.connect()
    warehouse.close()
    warehouse.close()
    assert len(looker.requests("DELETE", "/logout")) == 1


# values SQL Runner cannot write as they are ------------------------------------------------------


def test_far_utc_offsets_are_written_as_the_same_instant_in_utc() -> None:
    far = datetime.datetime.fromisoformat("2026-01-01T00:30:00.5+23:59")
    assert sql_literal(far) == "E'2025-12-31T00:31:00.500000+00:00'"
    near = datetime.datetime.fromisoformat("2026-01-01T00:30:00+15:59")
    assert sql_literal(near) == "E'2026-01-01T00:30:00+15:59'"
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
        for value in (far, near):
            [(back,)] = conn.execute(
                f"SELECT {sql_literal(value)}::timestamptz".encode()
            ).fetchall()
            assert back == value


def test_nan_infinity_and_far_offsets_are_rejects_or_utc_not_a_failed_batch(
    looker: LookerSandbox, pg_database: str
) -> None:
    runner = f"r_{uuid.uuid4().hex[:8]}"
    messages: list[dict] = [schema("voucher_rows", PROPERTIES, KEYS)]
    for row, amount in enumerate(["1.25", "NaN", "-Infinity", "sNaN", "2.5"]):
        message = voucher(1, row, "20260101000000", f"row {row}", None)
        message["record"]["Amount"] = amount
        message["record"]["ChangedAt"] = "2026-02-03T04:05:06+16:00"
        message["time_extracted"] = "2026-05-06T07:08:09-23:59"
        messages.append(message)
    text = "".join(_encode(m).decode() + "\n" for m in messages)
    load(TargetLooker, runner_config(looker, runner), text)
    rows = table_rows(pg_database, runner)
    assert [(r[2], r[4]) for r in rows] == [(0, Decimal("1.25")), (4, Decimal("2.5"))]
    changed = datetime.datetime.fromisoformat("2026-02-03T04:05:06+16:00")
    extracted = datetime.datetime.fromisoformat("2026-05-06T07:08:09-23:59")
    assert all(r[7] == changed and r[10] == extracted for r in rows)
    assert batch_counts(pg_database, runner) == [(5, 2, 0, 0, 3)]
    with psycopg.connect(pg_database) as conn:
        reasons = conn.execute(
            f'SELECT reason FROM "{runner}"._load_rejects ORDER BY reason'.encode()
        ).fetchall()
    assert len(reasons) == 3 and all("not a finite number" in r for (r,) in reasons)


def test_json_numbers_are_written_exactly(looker: LookerSandbox) -> None:
    settings = LookerSettings.from_config(runner_config(looker, "unused"))
    warehouse = LookerSqlRunnerWarehouse(settings)
    warehouse.connect()
    schema_name = f"j_{uuid.uuid4().hex[:8]}"
    table = TableRef(schema_name, "t")
    columns = [Column("id", BIGINT), Column("doc", JSON)]
    warehouse.ensure_schema(schema_name)
    warehouse.create_table(table, columns, ["id"])
    doc = {"amt": Decimal("1234567890123456789.123456"), "n": [Decimal("0.1"), 10**30]}
    batch = Batch(table, columns, [(1, doc)], ["id"], "append-only")
    with warehouse.transaction():
        warehouse.merge(warehouse.prepare(batch))
    [(text,)] = warehouse.fetchall(f'SELECT doc::text AS doc FROM "{schema_name}".t')
    warehouse.close()
    assert json.loads(text, parse_float=Decimal) == doc

"""PostgreSQL's bulk path and statements.

Rows are encoded once per batch for COPY and read back exactly; the dialect hands out
the merge's statements as text, which the psycopg and SQL Runner transports both run.
"""

# Test SQL names the tests' own tables; expected statements are compared, never run.
# ruff: noqa: S608

from __future__ import annotations

import csv
import datetime
import decimal
import io
import uuid

import psycopg
import pytest
from sqlalchemy.engine import make_url

from target_looker.columns import BIGINT, TEXT, Column
from target_looker.warehouse import postgres
from target_looker.warehouse.base import Batch, TableRef
from target_looker.warehouse.postgres import COPY_CSV_OPTIONS, PostgresWarehouse, copy_csv

D = decimal.Decimal
UTC = datetime.timezone.utc
PLUS_ONE = datetime.timezone(datetime.timedelta(hours=1))
COLUMNS = (
    "t TEXT, n NUMERIC, i BIGINT, d DATE, ts TIMESTAMPTZ, tm TIME, b BOOLEAN, j JSONB, run TEXT"
)
NAMES = "t, n, i, d, ts, tm, b, j, run"

TRICKY_TEXT = [
    'W/"a65eb74d0fb1"',
    "back\\slash",
    "ends with a backslash\\",
    '\\"',
    "comma, and 'quotes'",
    "null",
    "\\N",
    "",
    "Größe \u2028 \x7f",
    "\\.",
]
EXACT_NUMBERS = [
    D("123456789012345678901234567890.123456789012345678901234567890"),
    D("-0.000001"),
    D("1.50"),
    D("1E+3"),
    D("0"),
]


@pytest.fixture
def table(pg_database: str):
    """A fresh table with one column of each type the target writes."""
    name = f"copy_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_database, autocommit=True) as conn:
        conn.execute("SET TIME ZONE 'UTC'")
        conn.execute(f"CREATE TABLE {name} ({COLUMNS})")
        yield conn, name


def load(conn: psycopg.Connection, name: str, payload: bytes) -> list[tuple]:
    with (
        conn.cursor() as cur,
        cur.copy(f"COPY {name} ({NAMES}) FROM STDIN {COPY_CSV_OPTIONS}") as c,
    ):
        c.write(payload)
    return conn.execute(f"SELECT {NAMES} FROM {name} ORDER BY i").fetchall()


def test_text_decimals_and_nulls_survive_copy_exactly(table) -> None:
    conn, name = table
    rows = [
        (text, EXACT_NUMBERS[i % len(EXACT_NUMBERS)], i, None, None, None, None, None)
        for i, text in enumerate(TRICKY_TEXT)
    ]
    rows.append((None, None, 99, None, None, None, None, None))
    payload = copy_csv(rows, tail=("run-1",))
    assert payload is not None
    loaded = load(conn, name, payload)
    assert [r[0] for r in loaded] == [*TRICKY_TEXT, None]  # "" stays "", "null" stays text
    for row, got in zip(rows, loaded, strict=True):
        assert got[1] == row[1]  # Decimal equality is exact
        assert got[-1] == "run-1"
    assert str(loaded[0][1]) == str(EXACT_NUMBERS[0])  # every digit, never via float
    assert str(loaded[2][1]) == "1.50"  # the scale is kept


def test_dates_times_booleans_and_json_text(table) -> None:
    conn, name = table
    when = datetime.datetime(2026, 1, 31, 10, 0, 0, 123456, tzinfo=PLUS_ONE)
    rows = [
        (
            "x",
            D("1"),
            1,
            datetime.date(2026, 1, 31),
            when,
            datetime.time(23, 59, 58),
            True,
            '{"a": "say \\"hi\\"\\nbye", "n": 1.10}',
        ),
        ("y", D("2"), 2, None, datetime.datetime(2026, 2, 1, tzinfo=UTC), None, False, None),
    ]
    payload = copy_csv(rows, tail=(None,))
    assert payload is not None
    first, second = load(conn, name, payload)
    assert first[3:7] == (datetime.date(2026, 1, 31), when, datetime.time(23, 59, 58), True)
    json_text = conn.execute(f"SELECT j->>'a', j->>'n' FROM {name} WHERE i = 1").fetchone()
    assert json_text == ('say "hi"\nbye', "1.10")
    assert second[4] == datetime.datetime(2026, 2, 1, tzinfo=UTC)
    assert second[6] is False and second[8] is None


@pytest.mark.parametrize(
    "value",
    [
        "new\nline",
        "tab\there",
        "carriage\rreturn",
        "bell\x07",
        "backspace\x08",
        "form feed\x0c",
        "escape\x1b",
        'quote then newline "\n',
        "backslash then newline \\\n",
        D("NaN"),
        D("Infinity"),
    ],
)
def test_values_csv_cannot_carry_send_the_batch_down_the_per_value_path(value) -> None:
    assert copy_csv([("plain", D("1"))]) is not None
    assert copy_csv([("plain", D("1")), (value, D("1"))]) is None


@pytest.mark.parametrize("value", ["back\\n", "back\\u0041", "\\\\t", 'quoted "\\r"'])
def test_a_backslash_before_a_letter_is_no_control_character_and_stays_csv(value) -> None:
    """Text that reads like an escape once encoded (`\\\\n`) is looked at exactly."""
    payload = copy_csv([(value, D("1"))])
    assert payload is not None
    assert list(csv.reader(io.StringIO(payload.decode()), escapechar="\\", doublequote=False)) == [
        [value, "1"]
    ]


def test_the_per_value_path_loads_what_csv_cannot(table, pg_database: str) -> None:
    conn, name = table
    warehouse = PostgresWarehouse(make_url(pg_database))
    # (NaN, which CSV cannot carry either, never gets here: `prepare` makes it a reject)
    rows = [("new\nline\ttab\\", D("-0.000001"), 1, None, None, None, None, None)]
    try:
        with warehouse.conn.cursor() as cur:
            warehouse._copy(cur, name, NAMES, rows, ("run-2",))
    finally:
        warehouse.close()
    (got,) = conn.execute(f"SELECT t, n::text, run FROM {name}").fetchall()
    assert got == ("new\nline\ttab\\", "-0.000001", "run-2")


def test_a_batch_switches_to_the_per_value_path_at_the_chunk_that_needs_it(
    table, pg_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn, name = table
    monkeypatch.setattr(postgres, "COPY_CHUNK_ROWS", 2)
    texts = ["a", "b", "c\\", "tab\there", "e", "f", 'g"']
    rows = [(text, D(i) / 100, i, None, None, None, None, None) for i, text in enumerate(texts)]
    warehouse = PostgresWarehouse(make_url(pg_database))
    try:
        with warehouse.conn.cursor() as cur:
            warehouse._copy(cur, name, NAMES, rows, ("run-3",))
    finally:
        warehouse.close()
    got = conn.execute(f"SELECT t, n, i, run FROM {name} ORDER BY i").fetchall()
    assert got == [(text, D(i) / 100, i, "run-3") for i, text in enumerate(texts)]


# the dialect's statements ------------------------------------------------------------------------


def merge_batch(load_method: str, columns: list[Column], keys: list[str]) -> Batch:
    run = Column("_load_run_id", TEXT)
    table = TableRef('odd "schema"', "t")
    return Batch(table, columns, [], keys, load_method, constants=[(run, "run-1")])


def test_an_upsert_is_staged_then_guarded_and_reports_inserted_per_row() -> None:
    dialect = PostgresWarehouse(make_url("postgresql://nobody@127.0.0.1/none"))  # never connects
    columns = [Column("id", BIGINT), Column("_ifs_objversion", TEXT)]
    columns.append(Column("_sdc_table_version", BIGINT))
    batch = merge_batch("upsert", columns, ["id"])
    batch.rows = [(1, "20250101000000", None), (2, "20250101000000", 7)]  # a full-table sync
    statements = dialect.staged_merge(batch)
    assert statements.upsert
    assert statements.target == '"odd ""schema"""."t"'
    assert statements.stage_columns == '"id", "_ifs_objversion", "_sdc_table_version"'
    assert statements.create_stage[-1].startswith('CREATE TEMP TABLE "target_looker_stage"')
    assert statements.write.startswith(f"INSERT INTO {statements.target} AS t (")
    # In key order: two loaders lock overlapping rows in the same order (no deadlock).
    assert (
        'CAST($1 AS TEXT) FROM "target_looker_stage" ORDER BY "id" ON CONFLICT ("id") DO UPDATE'
        in statements.write
    )
    assert statements.write.endswith("RETURNING (t.xmax = 0) AS inserted")
    assert statements.params == ("run-1",)
    assert statements.confirm_presence is not None
    assert statements.confirm_presence.startswith(f"UPDATE {statements.target} AS t SET")
    counted = postgres.select_from_upsert(statements.write, postgres.MERGED_INSERTED)
    assert counted == (
        f"WITH merged AS ({statements.write}) SELECT count(*) FILTER (WHERE inserted) FROM merged"
    )


def test_an_upsert_takes_rows_in_key_order_text_by_code_point() -> None:
    """The staged upsert and the initial COPY order rows the same way (Python compares
    strings by code point, PostgreSQL's "C" collation too), so loaders on either path
    lock overlapping keys in one order."""
    dialect = PostgresWarehouse(make_url("postgresql://nobody@127.0.0.1/none"))
    columns = [Column("company", TEXT), Column("no", BIGINT), Column("_ifs_objversion", TEXT)]
    batch = merge_batch("upsert", columns, ["company", "no"])
    write = dialect.staged_merge(batch).write
    assert ' ORDER BY "company" COLLATE "C", "no" ON CONFLICT ("company", "no")' in write
    batch.rows = [("b", 2, "1"), ("a", 10, "1"), ("é", 1, "1"), ("a", 9, "1"), ("Z", 5, "1")]
    assert [r[:2] for r in dialect._in_key_order(batch, batch.rows)] == [
        ("Z", 5),
        ("a", 9),
        ("a", 10),
        ("b", 2),
        ("é", 1),
    ]
    batch.load_method = "append-only"
    assert dialect._in_key_order(batch, batch.rows) is batch.rows


def test_appends_and_keyless_tables_are_one_insert_select() -> None:
    dialect = PostgresWarehouse(make_url("postgresql://nobody@127.0.0.1/none"))
    for method, keys in (("append-only", ["id"]), ("upsert", [])):
        statements = dialect.staged_merge(merge_batch(method, [Column("id", BIGINT)], keys))
        assert not statements.upsert
        assert statements.write == (
            f'INSERT INTO {statements.target} ("id", "_load_run_id") '
            'SELECT "id", CAST($1 AS TEXT) FROM "target_looker_stage"'
        )
        assert statements.confirm_presence is None


def test_only_a_full_table_sync_confirms_stored_rows_in_its_version() -> None:
    """An incremental sync's rows have no table version: the UPDATE that would confirm
    stored rows in theirs could match nothing, and on a big table only scans it."""
    dialect = PostgresWarehouse(make_url("postgresql://nobody@127.0.0.1/none"))
    columns = [Column("id", BIGINT), Column("_ifs_objversion", TEXT)]
    columns.append(Column("_sdc_table_version", BIGINT))
    batch = merge_batch("upsert", columns, ["id"])
    batch.rows = [(1, "20250101000000", None), (2, "20250101000000", None)]
    assert dialect.staged_merge(batch).confirm_presence is None
    batch.rows.append((3, "20250101000000", 1700000000000))
    assert dialect.staged_merge(batch).confirm_presence is not None


def test_a_table_loaded_in_bulk_gets_fresh_planner_statistics(pg_database: str) -> None:
    """With autovacuum off (as on this machine) a bulk-loaded table keeps the empty
    table's statistics, and the next run's merge joins row by row; the run ANALYZEs
    each table it wrote STATISTICS_AFTER_ROWS rows into, once."""
    name = f"bulk_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_database, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {name} (id BIGINT PRIMARY KEY, n NUMERIC)")
        warehouse = PostgresWarehouse(make_url(pg_database))
        table = TableRef("public", name)
        columns = [Column("id", BIGINT), Column("n", TEXT)]

        def write(first: int, count: int) -> None:
            rows = [(i, str(i)) for i in range(first, first + count)]
            batch = Batch(table, columns, rows, [], "append-only")
            with warehouse.transaction():
                warehouse.merge(warehouse.prepare(batch))

        def analyzed() -> int:
            return conn.execute(
                "SELECT analyze_count FROM pg_stat_user_tables WHERE relname = %s", (name,)
            ).fetchone()[0]

        try:
            write(0, postgres.STATISTICS_AFTER_ROWS - 1)
            assert warehouse.refresh_statistics() == []
            write(100_000, 1)
            write(200_000, postgres.STATISTICS_AFTER_ROWS - 1)  # counted since the last look
            assert warehouse.refresh_statistics() == [table]
            assert warehouse.refresh_statistics() == []
        finally:
            warehouse.close()
        (reltuples,) = conn.execute(
            "SELECT reltuples FROM pg_class WHERE relname = %s", (name,)
        ).fetchone()
        assert reltuples == 2 * postgres.STATISTICS_AFTER_ROWS - 1
        conn.execute("SELECT pg_stat_force_next_flush()")
        assert analyzed() == 1

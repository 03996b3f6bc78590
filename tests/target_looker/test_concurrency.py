"""Two or more loaders writing one warehouse at the same time.

Each loader here is a thread with a connection of its own (a separate PostgreSQL
session, as a separate target process has). A barrier starts them together and each
scenario repeats a few times, so a race that exists shows up on every run, in a few
seconds. What must hold: no loader fails, every key is stored exactly once, and the
version guard holds (the newest `_ifs_objversion` wins, whoever commits last).

- Simultaneous first loads create the schema, the audit tables and the data table
  at once, then grow the table with a new column at once (PostgreSQL's `IF NOT EXISTS`
  is not race-free: the catalogs' unique indexes fail the loser).
- Loaders merging overlapping keys in opposite orders lock rows in the same (key)
  order, so they queue instead of deadlocking; a deadlock or serialization failure
  that still happens rolls the whole transaction back and runs it again.
- A DuckDB file has one writing process: a second one gets a one-line error naming
  the file.
"""

# Test SQL names the tests' own tables.
# ruff: noqa: S608

from __future__ import annotations

import contextlib
import datetime
import json
import random
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest

from target_looker.audit import AUDIT_TABLES, AuditLog
from target_looker.columns import BIGINT, TEXT, Column, SqlType
from target_looker.sinks import TablePlan, ensure_table, plan_table
from target_looker.warehouse import open_warehouse
from target_looker.warehouse.base import Batch, TableRef, Warehouse, WarehouseError
from target_looker.warehouse.postgres import PostgresWarehouse

UTC = datetime.timezone.utc
LOADERS = 4
BARRIER_TIMEOUT = 60


def voucher_schema(*extra: str) -> dict:
    properties = {
        "Id": {"type": "integer"},
        "Amount": {"type": ["number", "null"]},
        "Note": {"type": ["string", "null"], "maxLength": 20},
        "_ifs_objversion": {"type": ["string", "null"]},
    }
    properties.update({name: {"type": ["string", "null"]} for name in extra})
    return {"type": "object", "properties": properties}


def version(number: int) -> str:
    """An IFS-style objversion: digits, compared as numbers."""
    return f"{20260101000000 + number}"


def plan_for(warehouse: Warehouse, schema_name: str, *extra: str) -> TablePlan:
    return plan_table(
        "voucher_rows",
        voucher_schema(*extra),
        ["Id"],
        target_schema=schema_name,
        column_naming="snake_case",
        warehouse=warehouse,
    )


def batch_for(plan: TablePlan, rows: list[dict], run_id: str) -> Batch:
    """A batch as the sink builds it: record columns, per-record and per-batch metadata."""
    now = datetime.datetime.now(tz=UTC)
    per_record = {"_sdc_extracted_at": now, "_sdc_sequence": 0, "_sdc_table_version": None}
    tuples = [tuple({**per_record, **row}.get(c.name) for c in plan.columns) for row in rows]
    per_batch = {
        "_sdc_received_at": now,
        "_sdc_batched_at": now,
        "_load_run_id": run_id,
        "_load_batch_id": uuid.uuid4().hex,
    }
    constants = [(c, per_batch.get(c.name)) for c in plan.constant_columns]
    return Batch(plan.table, plan.columns, tuples, plan.keys, "upsert", constants=constants)


@contextlib.contextmanager
def connected(url: str) -> Iterator[Warehouse]:
    warehouse = open_warehouse(url)
    warehouse.connect()
    try:
        yield warehouse
    finally:
        warehouse.close()


def in_threads(count: int, work: Callable[[int], object], barrier: threading.Barrier) -> None:
    """Run `work(0..count-1)` in threads at once. A failure breaks `barrier` (the others
    stop waiting at once) and is raised, the first real one rather than a broken barrier."""

    def guarded(index: int) -> object:
        try:
            return work(index)
        except BaseException:
            barrier.abort()
            raise

    with ThreadPoolExecutor(max_workers=count) as pool:
        futures = [pool.submit(guarded, i) for i in range(count)]
        failures = [f.exception() for f in futures if f.exception() is not None]
    failures.sort(key=lambda exc: isinstance(exc, threading.BrokenBarrierError))
    if failures:
        raise failures[0]


@pytest.fixture
def no_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Transactions run once: what is tested must work without a deadlock to retry."""
    monkeypatch.setattr(Warehouse, "transaction_attempts", 1)


def merge(warehouse: Warehouse, batch: Batch) -> None:
    """What `BatchWork.load` does with a batch: prepare, then merge in one transaction."""
    prepared = warehouse.prepare(batch)
    warehouse.run_transaction(lambda: warehouse.merge(prepared))


# PostgreSQL: first loads at once ----------------------------------------------------------------


@pytest.mark.usefixtures("no_retries")
def test_simultaneous_first_loads_create_and_grow_one_table(pg_database: str) -> None:
    """Four loaders start on an empty warehouse together, each with the same keys in
    another order: schema, audit tables, table, initial COPY, then a new column.
    Each step starts in all of them at once."""
    keys = list(range(300))
    for attempt in range(3):
        schema_name = f"race_{attempt}_{uuid.uuid4().hex[:8]}"
        barrier = threading.Barrier(LOADERS, timeout=BARRIER_TIMEOUT)

        def loader(index: int, schema_name: str = schema_name, barrier=barrier) -> None:
            with connected(pg_database) as warehouse:
                run_id = f"run-{index}"
                barrier.wait()
                warehouse.ensure_schema(schema_name)
                barrier.wait()
                AuditLog(warehouse, schema_name, run_id).ensure_tables()
                plan = plan_for(warehouse, schema_name)
                ensure_table(warehouse, plan, "upsert")
                warehouse.note_table_state(plan.table)  # empty: the batch tries a plain COPY
                order = keys[:]
                random.Random(index).shuffle(order)
                rows = [
                    {
                        "id": key,
                        "amount": Decimal(index),
                        "note": f"loader {index}",
                        "_ifs_objversion": version(index),
                    }
                    for key in order
                ]
                barrier.wait()
                merge(warehouse, batch_for(plan, rows, run_id))
                barrier.wait()  # the schema grows, in every loader at once
                grown = plan_for(warehouse, schema_name, "Extra")
                ensure_table(warehouse, grown, "upsert")

        in_threads(LOADERS, loader, barrier)

        with connected(pg_database) as warehouse:
            table = f'"{schema_name}".voucher_rows'
            rows = warehouse.fetchall(
                f"SELECT id, amount, note, _ifs_objversion FROM {table} ORDER BY id"
            )
            newest = LOADERS - 1
            assert rows == [
                (key, Decimal(newest), f"loader {newest}", version(newest)) for key in keys
            ]
            columns = warehouse.existing_columns(TableRef(schema_name, "voucher_rows"))
            assert columns is not None and columns["extra"] == SqlType("text")
            assert warehouse.primary_key(TableRef(schema_name, "voucher_rows")) == ["id"]
            for spec in AUDIT_TABLES:
                existing = warehouse.existing_columns(TableRef(schema_name, spec.name))
                assert existing is not None and list(existing) == [c.name for c in spec.columns]


# PostgreSQL: overlapping merges -----------------------------------------------------------------


@pytest.mark.usefixtures("no_retries")
def test_loaders_merging_overlapping_keys_in_opposite_orders_neither_fail_nor_regress(
    pg_database: str,
) -> None:
    """Two loaders merge the same keys at once, one ascending, one descending, round
    after round; for even keys one loader sends the newer version, for odd keys the
    other. After every round each key holds the newer of the two, exactly once. No
    retries: the merge locks rows in key order, so the loaders never deadlock."""
    keys = list(range(2000))
    rounds = 6
    schema_name = f"overlap_{uuid.uuid4().hex[:8]}"
    with connected(pg_database) as warehouse:
        plan = plan_for(warehouse, schema_name)
        warehouse.ensure_schema(schema_name)
        ensure_table(warehouse, plan, "upsert")
        first = [{"id": key, "note": "seed", "_ifs_objversion": version(0)} for key in keys]
        merge(warehouse, batch_for(plan, first, "seed"))
    barrier = threading.Barrier(2, timeout=BARRIER_TIMEOUT)
    problems: list[str] = []

    def expected(round_number: int, key: int) -> tuple[str, str]:
        winner = 0 if key % 2 == 0 else 1
        return f"loader {winner} round {round_number}", version(10 * round_number + 2)

    def loader(index: int) -> None:
        with connected(pg_database) as warehouse:
            plan = plan_for(warehouse, schema_name)
            order = keys if index == 0 else keys[::-1]
            for round_number in range(1, rounds + 1):
                rows = []
                for key in order:
                    newer = (key % 2 == 0) == (index == 0)
                    rows.append(
                        {
                            "id": key,
                            "note": f"loader {index} round {round_number}",
                            "_ifs_objversion": version(10 * round_number + (2 if newer else 1)),
                        }
                    )
                barrier.wait()
                merge(warehouse, batch_for(plan, rows, f"run-{index}"))
                barrier.wait()
                if index == 0:  # both have committed this round: check it
                    stored = warehouse.fetchall(
                        f'SELECT id, note, _ifs_objversion FROM "{schema_name}".voucher_rows '
                        "ORDER BY id"
                    )
                    want = [(key, *expected(round_number, key)) for key in keys]
                    if stored != want:
                        wrong = [s for s, w in zip(stored, want, strict=False) if s != w]
                        problems.append(
                            f"round {round_number}: {len(stored)} rows, {len(wrong)} wrong, "
                            f"e.g. {wrong[:3]}"
                        )

    in_threads(2, loader, barrier)
    assert problems == []


def test_a_deadlock_rolls_the_whole_transaction_back_and_runs_it_again(pg_database: str) -> None:
    """Two transactions that lock two rows in opposite orders deadlock for sure; the one
    PostgreSQL cancels is run again from its start (its first writes rolled back)."""
    schema_name = f"deadlock_{uuid.uuid4().hex[:8]}"
    table = TableRef(schema_name, "pair")
    log = TableRef(schema_name, "log")
    with connected(pg_database) as warehouse:
        warehouse.ensure_schema(schema_name)
        warehouse.create_table(table, [Column("id", BIGINT), Column("note", TEXT)], ["id"])
        warehouse.create_table(log, [Column("loader", BIGINT), Column("attempt", BIGINT)], [])
        warehouse.execute(f"INSERT INTO {warehouse.qualified(table)} VALUES (1, ''), (2, '')")
    barrier = threading.Barrier(2, timeout=BARRIER_TIMEOUT)
    attempts = [0, 0]

    def loader(index: int) -> None:
        with connected(pg_database) as warehouse:
            first, second = (1, 2) if index == 0 else (2, 1)
            pair, log_table = warehouse.qualified(table), warehouse.qualified(log)

            def work() -> None:
                attempts[index] += 1
                warehouse.execute(
                    f"INSERT INTO {log_table} VALUES ($1, $2)", (index, attempts[index])
                )
                warehouse.execute(f"UPDATE {pair} SET note = $1 WHERE id = $2", (index, first))
                if attempts[index] == 1:
                    barrier.wait()  # both hold their first row: each now waits for the other
                warehouse.execute(f"UPDATE {pair} SET note = $1 WHERE id = $2", (index, second))

            warehouse.run_transaction(work)

    in_threads(2, loader, barrier)
    assert sorted(attempts) == [1, 2]  # one ran once, the deadlock victim twice
    with connected(pg_database) as warehouse:
        logged = warehouse.fetchall(
            f"SELECT loader, attempt FROM {warehouse.qualified(log)} ORDER BY loader"
        )
        notes = warehouse.fetchall(f"SELECT DISTINCT note FROM {warehouse.qualified(table)}")
    # Only the committed attempt of each left a row; both rows end with the later writer's.
    assert logged == [(0, attempts[0]), (1, attempts[1])]
    assert len(notes) == 1


def test_retries_are_bounded_and_only_for_retryable_errors(
    pg_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(PostgresWarehouse, "retry_base_delay", 0.001)
    with connected(pg_database) as warehouse:
        calls: list[str] = []

        def always_deadlocks() -> None:
            calls.append("deadlock")
            raise psycopg.errors.DeadlockDetected("deadlock detected")

        with pytest.raises(psycopg.errors.DeadlockDetected):
            warehouse.run_transaction(always_deadlocks)
        assert len(calls) == warehouse.transaction_attempts

        calls.clear()

        def fails() -> None:
            calls.append("unique")
            raise psycopg.errors.UniqueViolation("duplicate key")

        with pytest.raises(psycopg.errors.UniqueViolation):
            warehouse.run_transaction(fails)
        assert calls == ["unique"]

        calls.clear()

        def serialization_failure_once() -> str:
            calls.append("serialization")
            if len(calls) == 1:
                raise psycopg.errors.SerializationFailure("could not serialize access")
            return "done"

        assert warehouse.run_transaction(serialization_failure_once) == "done"
        assert len(calls) == 2


# Creating and evolving when another loader got there first ---------------------------------------


def test_create_table_on_a_table_another_loader_created_adds_what_is_missing(
    warehouse_url: str,
) -> None:
    """`create_table` re-reads the table once it may change it: created meanwhile by
    another loader (with fewer or narrower columns), it is evolved, not failed."""
    table = TableRef(f"again_{uuid.uuid4().hex[:8]}", "t")
    narrow = [Column("id", BIGINT, nullable=False), Column("note", SqlType("varchar", 5))]
    wide = [
        Column("id", BIGINT, nullable=False),
        Column("note", SqlType("varchar", 50)),
        Column("extra", TEXT),
    ]
    with connected(warehouse_url) as warehouse:
        warehouse.ensure_schema(table.schema)
        warehouse.ensure_schema(table.schema)
        warehouse.create_table(table, narrow, ["id"])
        warehouse.create_table(table, wide, ["id"])  # as if it lost the race to create
        warehouse.add_column(table, Column("extra", TEXT))  # added meanwhile: nothing to do
        columns = warehouse.existing_columns(table)
        assert columns is not None
        assert list(columns) == ["id", "note", "extra"]
        assert warehouse.widened(columns["note"], SqlType("varchar", 50)) == columns["note"]
        with pytest.raises(WarehouseError, match="primary key"):
            warehouse.create_table(table, wide, ["note"])


def test_a_second_duckdb_process_gets_a_one_line_error_naming_the_file(tmp_path) -> None:
    path = tmp_path / "busy.duckdb"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys; c = duckdb.connect(sys.argv[1]); print('ready', flush=True); "
            "sys.stdin.read()",
            str(path),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        warehouse = open_warehouse(f"duckdb:///{path}")
        with pytest.raises(WarehouseError) as caught:
            warehouse.connect()
        config = tmp_path / "target.json"
        config.write_text(json.dumps({"warehouse_url": f"duckdb:///{path}"}))
        schema_line = json.dumps(
            {
                "type": "SCHEMA",
                "stream": "s",
                "schema": {"properties": {"id": {"type": "integer"}}},
                "key_properties": ["id"],
            }
        )
        cli = subprocess.run(
            [str(Path(sys.executable).parent / "target-looker"), "--config", str(config)],
            input=schema_line + "\n",
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        holder.communicate("", timeout=30)
    assert cli.returncode != 0
    assert "Traceback" not in cli.stderr
    assert "another process" in cli.stderr
    message = str(caught.value)
    assert str(path) in message
    assert "\n" not in message
    assert "another process" in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__

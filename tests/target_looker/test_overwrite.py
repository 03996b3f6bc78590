"""`load_method: overwrite` is atomic: the old table stays readable and unchanged until
the new one is complete, then one transaction swaps it in (target_looker/overwrite.py).

STATE never vouches for a record that is not in the table users read: while a stream's
shadow table is pending, STATE after its first record waits for the swap. A run that
fails or is killed part-way leaves the old table as it was, and the next run completes
the overwrite.

Every test taking `config` runs once per warehouse (DuckDB, PostgreSQL); one test goes
through Looker's SQL Runner.
"""

# Test SQL names the tests' own schemas and tables.
# ruff: noqa: S608

from __future__ import annotations

import contextlib
import io
import json
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from ifs_looker_sandboxes.looker import LookerConfig, LookerSandbox
from target_looker import sinks
from target_looker.target import TargetLooker
from target_looker.warehouse import base, open_warehouse
from target_looker.warehouse.base import WarehouseError
from tests.sandboxes import running_looker

from .singer_io import lines, query, record, run, schema, state

CLI = "from target_looker.target import TargetLooker; TargetLooker.cli()"
PROPS = {
    "id": {"type": "integer"},
    "text": {"type": ["string", "null"]},
    "amount": {"type": ["number", "null"]},
    "_ifs_objversion": {"type": ["string", "null"]},
}
ITEMS = schema("items", PROPS, ["id"])
OLD_IDS = range(1, 11)  # 10 rows loaded before the overwrite
NEW_IDS = [6, 7, 8, 9, 13, 10, 11, 12, 14, 15]  # 10 records; 13 lands in batch 3 (of 2 rows)
OLD_ROWS = [(i, "old", "1") for i in OLD_IDS]
NEW_ROWS = sorted((i, "new", "2") for i in NEW_IDS)


def item(id_: int, text: str = "new", version: str = "2", **values: object) -> dict:
    return record("items", {"id": id_, "text": text, "_ifs_objversion": version, **values})


def old_input() -> str:
    return lines(ITEMS, *(item(i, "old", "1") for i in OLD_IDS))


def overwrite_input() -> str:
    """The new contents, a STATE before them and one after each record."""
    messages: list[dict] = [ITEMS, state({"n": 0})]
    for n, id_ in enumerate(NEW_IDS, 1):
        messages += [item(id_), state({"n": n})]
    return lines(*messages)


def overwrite(config: dict, **extra: object) -> dict:
    return {**config, "load_method": "overwrite", "batch_size_rows": 2, **extra}


def is_postgres(config: dict) -> bool:
    return config["warehouse_url"].startswith("postgresql")


def items(config: dict) -> list[tuple]:
    return query(config, "SELECT id, text, _ifs_objversion FROM {s}.items ORDER BY id")


def execute(config: dict, sql: str) -> None:
    """Run a statement; `{s}` in the text is the quoted target schema."""
    warehouse = open_warehouse(config["warehouse_url"])
    warehouse.connect()
    try:
        warehouse.execute(sql.format(s=warehouse.quote(config["default_target_schema"])))
    finally:
        warehouse.close()


def helper_tables(config: dict) -> list[str]:
    """The target's own tables beside the data: shadows and retired tables."""
    rows = query(
        config,
        "SELECT table_name FROM information_schema.tables WHERE table_schema = $1",
        (config["default_target_schema"],),
    )
    return sorted(name for (name,) in rows if name.startswith("_tl_"))


def run_failing(config: dict, text: str) -> tuple[list[dict], BaseException]:
    """Run the target on `text`, which must fail; the STATEs it emitted, and the error."""
    out = io.StringIO()
    target = TargetLooker(config=config)
    with contextlib.redirect_stdout(out), pytest.raises(Exception) as failure:  # noqa: PT011
        target.listen(io.StringIO(text))
    return [json.loads(line) for line in out.getvalue().splitlines() if line.strip()], failure.value


def fail_in_batch(monkeypatch: pytest.MonkeyPatch, number: int, before=None) -> None:
    """Batch `number` of the run fails inside its transaction, after its merge.

    `before(number)`: called inside each batch's transaction first (to look around).
    """
    real = sinks.confirm_rejected_keys
    calls = []

    def confirm(*args, **kwargs):
        calls.append(1)
        if before is not None:
            before(len(calls))
        if len(calls) == number:
            raise RuntimeError("disk full")
        return real(*args, **kwargs)

    monkeypatch.setattr(sinks, "confirm_rejected_keys", confirm)


# A failed or killed run leaves the old table --------------------------------------------------


def test_a_failure_in_batch_3_leaves_the_old_table_and_emits_no_state_for_it(
    config: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    run(config, old_input())
    with monkeypatch.context() as patch:
        fail_in_batch(patch, 3)
        emitted, error = run_failing(overwrite(config), overwrite_input())
    assert "disk full" in str(error)
    assert items(config) == OLD_ROWS  # all old rows, unchanged; none of the new
    assert emitted == [{"n": 0}]  # the STATE before the new records, nothing after
    assert helper_tables(config) == []  # the failed run dropped its shadow
    [(status, last_state, records_in)] = query(
        config,
        "SELECT status, CAST(last_state AS VARCHAR), records_in FROM {s}._load_runs "
        "WHERE status <> 'succeeded'",
    )
    assert (status, json.loads(last_state), records_in) == ("failed", {"n": 0}, 4)
    batches = query(
        config,
        "SELECT b.table_name, b.loaded_into, b.records_in FROM {s}._load_batches AS b "
        "JOIN {s}._load_runs AS r ON r.run_id = b.run_id WHERE r.status = 'failed'",
    )
    assert len(batches) == 2  # batches 1 and 2 committed, into the shadow
    assert all(t == "items" and into.startswith("_tl_new_") and n == 2 for t, into, n in batches)

    emitted = run(overwrite(config), overwrite_input())  # the next run completes it
    assert items(config) == NEW_ROWS
    assert emitted == [{"n": 0}, {"n": len(NEW_IDS)}]
    assert helper_tables(config) == []


def test_a_killed_overwrite_leaves_the_old_table_and_the_next_run_completes_it(
    config: dict, tmp_path: Path
) -> None:
    run(config, old_input())
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(overwrite(config)))
    proc = subprocess.Popen(
        [sys.executable, "-c", CLI, "--config", str(config_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    messages = overwrite_input().splitlines(keepends=True)
    # SCHEMA, STATE 0, then records 1-5 (each with its STATE): batches 1 and 2 commit,
    # record 5 waits in batch 3 when the process is killed.
    proc.stdin.write("".join(messages[: 2 + 2 * 5]).encode())
    proc.stdin.flush()
    committed = 0
    while committed < 2:
        line = proc.stderr.readline()
        assert line, "the target ended before committing two batches"
        committed += b"Committed items batch" in line
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    emitted = [json.loads(line) for line in proc.stdout.read().splitlines() if line.strip()]

    assert emitted == [{"n": 0}]
    assert items(config) == OLD_ROWS
    [shadow] = helper_tables(config)  # the dead run's shadow, with its 2 batches
    assert shadow.startswith("_tl_new_")
    assert query(config, f'SELECT count(*) FROM {{s}}."{shadow}"') == [(4,)]

    emitted = run(overwrite(config), overwrite_input())
    assert items(config) == NEW_ROWS
    assert emitted[-1] == {"n": len(NEW_IDS)}
    assert helper_tables(config) == []  # the stale shadow was dropped
    statuses = query(config, "SELECT status FROM {s}._load_runs ORDER BY started_at")
    assert statuses == [("succeeded",), ("interrupted",), ("succeeded",)]


def test_readers_see_the_old_table_until_the_swap(
    config: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Mid-run (inside batch 3's transaction) a reader sees exactly the old rows; after
    the run, the new ones. PostgreSQL: the new table keeps the old one's grants (Looker's
    user can still read it) and the indexes a DBA added."""
    run(config, old_input())
    reader = f"tl_reader_{uuid.uuid4().hex[:8]}"
    table = f'"{config["default_target_schema"]}".items'
    if is_postgres(config):
        with psycopg.connect(config["warehouse_url"], autocommit=True) as conn:
            conn.execute(f'CREATE ROLE "{reader}" NOLOGIN'.encode())
            conn.execute(
                f'GRANT USAGE ON SCHEMA "{config["default_target_schema"]}" TO "{reader}"'.encode()
            )
            conn.execute(f'GRANT SELECT ON {table} TO "{reader}"'.encode())
            conn.execute(f"CREATE INDEX ON {table} (text)".encode())
    seen: list[list[tuple]] = []

    def read(sql: str) -> list[tuple]:
        if not is_postgres(config):
            return query(config, sql)
        with psycopg.connect(config["warehouse_url"], autocommit=True) as conn:
            conn.execute(f'SET ROLE "{reader}"'.encode())
            return conn.execute(
                sql.format(s=f'"{config["default_target_schema"]}"').encode()
            ).fetchall()

    def look(batch: int) -> None:
        if batch == 3:
            seen.append(read("SELECT id, text, _ifs_objversion FROM {s}.items ORDER BY id"))

    try:
        with monkeypatch.context() as patch:
            fail_in_batch(patch, 0, before=look)  # batch 0: never fails
            run(overwrite(config), overwrite_input())
        assert seen == [OLD_ROWS]
        assert read("SELECT id, text, _ifs_objversion FROM {s}.items ORDER BY id") == NEW_ROWS
        if is_postgres(config):
            indexes = query(
                config,
                "SELECT indexdef FROM pg_indexes WHERE schemaname = $1 AND tablename = 'items'",
                (config["default_target_schema"],),
            )
            assert any("(text)" in definition for (definition,) in indexes)
            assert any("UNIQUE" in definition for (definition,) in indexes)  # the primary key
    finally:
        if is_postgres(config):
            with psycopg.connect(config["warehouse_url"], autocommit=True) as conn:
                conn.execute(f'DROP OWNED BY "{reader}"'.encode())
                conn.execute(f'DROP ROLE "{reader}"'.encode())


# The swap ----------------------------------------------------------------------------------------


def test_a_view_on_the_table(config: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    """Mid-run the view shows the old rows. PostgreSQL: a view on the table blocks dropping
    the old one; the run fails saying so, with the old table intact (and the view
    working). DuckDB binds a view by name: after the swap it reads the new table."""
    run(config, old_input())
    view = f'"{config["default_target_schema"]}".items_view'
    execute(config, f"CREATE VIEW {view} AS SELECT id, text FROM {{s}}.items")
    seen: list[list[tuple]] = []

    def look(batch: int) -> None:
        if batch == 3:
            seen.append(query(config, f"SELECT id, text FROM {view} ORDER BY id"))

    fail_in_batch(monkeypatch, 0, before=look)
    old_view = [(i, "old") for i in OLD_IDS]
    if not is_postgres(config):
        run(overwrite(config), overwrite_input())
        assert seen == [old_view]
        assert query(config, f"SELECT id, text FROM {view} ORDER BY id") == [
            (i, "new") for i, _, _ in NEW_ROWS
        ]
        return
    emitted, error = run_failing(overwrite(config), overwrite_input())
    assert seen == [old_view]
    assert isinstance(error, WarehouseError)
    message = str(error)
    assert "items" in message and "could not be replaced" in message
    assert "view" in message and "items_view depends on table" in message  # PostgreSQL's DETAIL
    assert "_tl_" not in message  # the table's own name, not the one it had mid-swap
    assert "unchanged" in message and "drop them" in message
    assert emitted == [{"n": 0}]
    assert items(config) == OLD_ROWS
    assert query(config, f"SELECT count(*) FROM {view}") == [(len(OLD_ROWS),)]
    assert helper_tables(config) == []

    execute(config, f"DROP VIEW {view}")
    run(overwrite(config), overwrite_input())
    assert items(config) == NEW_ROWS


def test_a_failed_swap_leaves_the_old_table_and_activate_version_never_touches_it(
    config: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ACTIVATE_VERSION retires rows inside the shadow, never in the table users read:
    when the swap then fails, the old rows are neither deleted nor marked deleted."""
    activate = {"type": "ACTIVATE_VERSION", "stream": "items", "version": 2}
    run(config, old_input())

    def broken_swap(self, table, shadow, retired) -> None:
        raise RuntimeError("connection lost")

    with monkeypatch.context() as patch:
        patch.setattr(base.Warehouse, "swap_in", broken_swap, raising=False)
        emitted, error = run_failing(
            overwrite(config, hard_delete=True),
            lines(
                ITEMS, state({"n": 0}), activate, item(6, version="2"), state({"n": 1}), activate
            ),
        )
    assert isinstance(error, WarehouseError)
    assert "could not be replaced" in str(error) and "connection lost" in str(error)
    assert emitted == [{"n": 0}]
    rows = query(config, "SELECT id, text, _sdc_deleted_at IS NULL FROM {s}.items ORDER BY id")
    assert rows == [(i, "old", True) for i in OLD_IDS]


# ACTIVATE_VERSION --------------------------------------------------------------------------------


def _accounts(version: int, *numbers: str) -> list[dict]:
    return [record("accounts", {"Account": n}, version=version) for n in numbers]


def _activate(version: int) -> dict:
    return {"type": "ACTIVATE_VERSION", "stream": "accounts", "version": version}


def test_activate_version_swaps_the_complete_version_in(config: dict) -> None:
    """The swap removes the rows a full sync did not send (nothing is left soft-deleted);
    a new version mid-run swaps the previous one in and starts a new shadow, and the
    STATE after the previous version's records is emitted once that swap committed."""
    config = {**config, "load_method": "overwrite", "batch_size_rows": 2}
    accounts = schema("accounts", {"Account": {"type": "string"}}, ["Account"])
    run(config, lines(accounts, _activate(1), *_accounts(1, "1", "2", "3"), _activate(1)))
    table = "SELECT account, _sdc_table_version, _sdc_deleted_at IS NULL FROM {s}.accounts "
    assert query(config, table + "ORDER BY 1") == [("1", 1, True), ("2", 1, True), ("3", 1, True)]

    emitted = run(
        config,
        lines(
            accounts,
            _activate(2),
            *_accounts(2, "1", "3"),
            state({"v": 2}),
            _activate(2),
        ),
    )
    assert query(config, table + "ORDER BY 1") == [("1", 2, True), ("3", 2, True)]
    assert emitted == [{"v": 2}]

    emitted = run(
        config,
        lines(
            accounts,
            _activate(3),
            *_accounts(3, "1", "2", "5"),
            state({"v": 3}),
            _activate(4),  # version 3 is complete: it is swapped in
            *_accounts(4, "2", "4"),
            state({"v": 4}),
            _activate(4),
        ),
    )
    assert query(config, table + "ORDER BY 1") == [("2", 4, True), ("4", 4, True)]
    assert emitted == [{"v": 3}, {"v": 4}]
    assert helper_tables(config) == []


# Batches, rejects, audit, schema changes ----------------------------------------------------------


def test_duplicates_rejects_and_audit_counts_in_an_overwrite(config: dict) -> None:
    """Batches merge into the shadow by key (the newest version wins); a rejected record's
    key keeps its stored row (carried into the new table); every batch is audited."""
    old = [item(i, "old", "1", amount=i) for i in range(1, 6)]
    run(config, lines(ITEMS, *old))
    text = lines(
        ITEMS,
        item(1, "v3", "3", amount=3),  # batch 1
        item(1, "v2", "2", amount=2),  # older, same batch: superseded
        item(2, "bad", "2", amount="not a number"),  # batch 2: rejected
        item(3, "v2", "2", amount=3),
        item(3, "v1", "1", amount=9),  # batch 3: older than the shadow's row: skipped
        item(6, "v1", "1", amount=6),
        # 4 and 5 are no longer in the source
    )
    run(overwrite(config), text)
    rows = query(config, "SELECT id, text, amount, _ifs_objversion FROM {s}.items ORDER BY id")
    assert [(i, text, int(amount), v) for i, text, amount, v in rows] == [
        (1, "v3", 3, "3"),
        (2, "old", 2, "1"),  # the stored row of the rejected record's key
        (3, "v2", 3, "2"),
        (6, "v1", 6, "1"),
    ]
    [(run_id, records_in, inserted, updated, skipped, rejected)] = query(
        config,
        "SELECT run_id, records_in, rows_inserted, rows_updated, rows_skipped, rows_rejected "
        "FROM {s}._load_runs ORDER BY started_at DESC LIMIT 1",
    )
    assert (records_in, inserted, updated, skipped, rejected) == (6, 3, 0, 2, 1)
    batches = query(
        config,
        "SELECT table_name, loaded_into, records_in, rows_inserted, rows_skipped, rows_rejected "
        "FROM {s}._load_batches WHERE run_id = $1 ORDER BY committed_at",
        (run_id,),
    )
    assert [row[2:] for row in batches] == [(2, 1, 1, 0), (2, 1, 0, 1), (2, 1, 1, 0)]
    assert {row[:2] for row in batches} == {("items", batches[0][1])}
    assert batches[0][1].startswith("_tl_new_")
    [(reason,)] = query(config, "SELECT reason FROM {s}._load_rejects WHERE run_id = $1", (run_id,))
    assert "fails schema" in reason


def test_a_new_schema_mid_overwrite_grows_the_shadow_not_the_old_table(
    config: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Records before and after a changed SCHEMA all end up in the new table; until the
    swap the old table does not even gain the new column; STATE waits for the swap."""
    run(config, old_input())
    grown = schema("items", {**PROPS, "extra": {"type": ["string", "null"]}}, ["id"])
    columns_seen: list[list[tuple]] = []

    def look(batch: int) -> None:
        if batch == 3:
            columns_seen.append(
                query(
                    config,
                    "SELECT column_name FROM information_schema.columns "
                    "WHERE table_schema = $1 AND table_name = 'items' AND column_name = 'extra'",
                    (config["default_target_schema"],),
                )
            )

    text = lines(
        ITEMS,
        state({"n": 0}),
        item(1),
        item(2),
        item(3),
        state({"n": 3}),
        grown,
        item(4, extra="x"),
        state({"n": 4}),
        item(5, extra="y"),
        state({"n": 5}),
    )
    with monkeypatch.context() as patch:
        fail_in_batch(patch, 0, before=look)
        emitted = run(overwrite(config), text)
    assert columns_seen == [[]]
    assert emitted == [{"n": 0}, {"n": 5}]
    rows = query(config, "SELECT id, text, extra FROM {s}.items ORDER BY id")
    assert rows == [
        (1, "new", None),
        (2, "new", None),
        (3, "new", None),
        (4, "new", "x"),
        (5, "new", "y"),
    ]


def test_a_stale_shadow_is_dropped_and_a_live_runs_shadow_left_alone(config: dict) -> None:
    from target_looker.overwrite import RETIRED_PREFIX, SHADOW_PREFIX, overwrite_table_name
    from target_looker.warehouse.base import TableRef

    run(config, old_input())
    live = TargetLooker(config=config)
    live.session.idle_connection()  # a live run: its `_load_runs` row is `running`
    try:
        table = TableRef(config["default_target_schema"], "items")
        live_shadow = overwrite_table_name(SHADOW_PREFIX, table, live.session.run_id)
        dead = [
            overwrite_table_name(SHADOW_PREFIX, table, "a run that died"),
            overwrite_table_name(RETIRED_PREFIX, table, "a run that died"),
        ]
        other = overwrite_table_name(SHADOW_PREFIX, TableRef(table.schema, "other"), "x")
        for name in [live_shadow, *dead, other]:
            execute(config, f'CREATE TABLE {{s}}."{name}" (id BIGINT)')
        run(overwrite(config), overwrite_input())
        assert items(config) == NEW_ROWS
        assert helper_tables(config) == sorted([live_shadow, other])
    finally:
        live.session.close()


# Through Looker's SQL Runner ----------------------------------------------------------------------


@pytest.fixture
def looker(pg_database: str) -> Iterator[LookerSandbox]:
    with running_looker(LookerConfig(connections={"warehouse": pg_database})) as sandbox:
        yield sandbox


def test_an_overwrite_through_sql_runner_is_atomic(looker: LookerSandbox, pg_database: str) -> None:
    """Batch 3 fails in the database (a CHECK constraint the shadow copied): the old table
    is intact; without it the next run swaps the new table in with one SQL Runner call."""
    schema_name = f"o_{uuid.uuid4().hex[:8]}"
    direct = {"warehouse_url": pg_database, "default_target_schema": schema_name}
    runner = {
        "default_target_schema": schema_name,
        "looker_base_url": looker.base_url,
        "looker_client_id": "looker-sandbox",
        "looker_client_secret": "looker-sandbox-secret",
        "looker_connection_name": "warehouse",
        "looker_max_retries": 40,
        "looker_max_backoff_seconds": 0.02,
        "write_path": "looker_sql_runner",
    }
    run(direct, old_input())
    with psycopg.connect(pg_database, autocommit=True) as conn:
        conn.execute(
            f'ALTER TABLE "{schema_name}".items ADD CONSTRAINT no_13 CHECK (id <> 13)'.encode()
        )
    emitted, error = run_failing(overwrite(runner), overwrite_input())
    assert "no_13" in str(error)
    assert emitted == [{"n": 0}]
    assert items(direct) == OLD_ROWS
    assert helper_tables(direct) == []

    with psycopg.connect(pg_database, autocommit=True) as conn:
        conn.execute(f'ALTER TABLE "{schema_name}".items DROP CONSTRAINT no_13'.encode())
    looker.sql_log.clear()
    emitted = run(overwrite(runner), overwrite_input())
    assert items(direct) == NEW_ROWS
    assert emitted == [{"n": 0}, {"n": len(NEW_IDS)}]
    assert helper_tables(direct) == []
    [swap] = [r.sql for r in looker.sql_log if "RENAME TO" in r.sql]
    assert swap.startswith("BEGIN;") and swap.endswith("COMMIT;")
    assert swap.count("RENAME TO") == 2 and "DROP TABLE" in swap
    assert '"last_state"' in swap or "last_state" in swap  # the STATE is recorded with it

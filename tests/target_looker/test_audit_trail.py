"""The audit trail tells the truth (SPEC 5.3): a dead run does not stay `running`, a live
one is left alone, and `last_state` is the last STATE actually emitted.

Every test runs once per warehouse (the `config` fixture).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from pathlib import Path

from target_looker.audit import now
from target_looker.committer import Committer, Job
from target_looker.load_session import STALE_RUN_AFTER
from target_looker.target import TargetLooker
from target_looker.warehouse import open_warehouse
from target_looker.warehouse.base import TableRef

from .singer_io import lines, query, record, run, schema, state

CLI = "from target_looker.target import TargetLooker; TargetLooker.cli()"
ITEMS = schema("items", {"id": {"type": "integer"}}, ["id"])
ROUNDS = 30


def start_target(config: dict, tmp_path: Path) -> subprocess.Popen:
    config_path = tmp_path / f"config-{len(list(tmp_path.iterdir()))}.json"
    config_path.write_text(json.dumps(config))
    return subprocess.Popen(
        [sys.executable, "-c", CLI, "--config", str(config_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )


def read_states_until(proc: subprocess.Popen, last: dict) -> list[dict]:
    assert proc.stdout is not None
    emitted: list[dict] = []
    while not emitted or emitted[-1] != last:
        line = proc.stdout.readline()
        assert line, "the target ended before emitting the last STATE"
        emitted.append(json.loads(line))
    return emitted


def kill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def runs(config: dict) -> list[tuple]:
    return query(
        config,
        "SELECT status, finished_at IS NOT NULL, error, CAST(last_state AS VARCHAR) "
        "FROM {s}._load_runs ORDER BY started_at",
    )


def test_a_killed_run_is_marked_interrupted_by_the_next_run(config: dict, tmp_path: Path) -> None:
    proc = start_target({**config, "batch_size_rows": 1}, tmp_path)
    assert proc.stdin is not None
    proc.stdin.write(lines(ITEMS, record("items", {"id": 1}), state({"n": 1})).encode())
    proc.stdin.flush()
    read_states_until(proc, {"n": 1})
    kill(proc)
    assert [r[0] for r in runs(config)] == ["running"]  # nobody knows yet

    run(config, lines(ITEMS, record("items", {"id": 2})))
    (dead, finished, error, last_state), after = runs(config)
    assert (dead, finished) == ("interrupted", True)
    assert "ended without finishing" in error
    assert json.loads(last_state) == {"n": 1}
    assert after[0] == "succeeded"


def test_a_live_concurrent_run_is_left_running(config: dict) -> None:
    live = TargetLooker(config=config)
    live.session.idle_connection()  # the run has started: its `_load_runs` row exists
    try:
        run(config, lines(ITEMS, record("items", {"id": 1})))
        assert sorted(r[0] for r in runs(config)) == ["running", "succeeded"]
    finally:
        live.session.close()


def test_runs_known_only_by_their_heartbeat_die_when_it_is_stale(config: dict) -> None:
    """The SQL Runner path holds no session: its runs show they live by `heartbeat_at`."""
    run(config, lines(ITEMS))  # creates the audit tables
    warehouse = open_warehouse(config["warehouse_url"])
    warehouse.connect()
    try:
        table = warehouse.qualified(TableRef(config["default_target_schema"], "_load_runs"))
        for run_id, silent_for in (("quiet", STALE_RUN_AFTER * 2), ("busy", STALE_RUN_AFTER / 2)):
            warehouse.execute(
                f"INSERT INTO {table} (run_id, started_at, status, heartbeat_at, liveness) "  # noqa: S608
                "VALUES ($1, $2, 'running', $2, 'heartbeat')",
                (run_id, now() - silent_for),
            )
    finally:
        warehouse.close()
    run(config, lines(ITEMS))
    statuses = dict(query(config, "SELECT run_id, status FROM {s}._load_runs"))
    assert (statuses["quiet"], statuses["busy"]) == ("interrupted", "running")


def test_audit_tables_of_an_older_version_gain_the_new_columns(config: dict) -> None:
    run(config, lines(ITEMS))
    warehouse = open_warehouse(config["warehouse_url"])
    warehouse.connect()
    try:
        for table, column in (
            ("_load_rejects", "input_line"),
            ("_load_runs", "heartbeat_at"),
            ("_load_runs", "liveness"),
        ):
            ref = warehouse.qualified(TableRef(config["default_target_schema"], table))
            warehouse.execute(f"ALTER TABLE {ref} DROP COLUMN {column}")
    finally:
        warehouse.close()
    run(config, lines(ITEMS, record("items", {"id": "one"})))
    assert query(config, "SELECT input_line FROM {s}._load_rejects") == [(2,)]
    assert query(config, "SELECT count(heartbeat_at) FROM {s}._load_runs") == [(1,)]


def test_last_state_is_the_last_state_emitted_even_when_killed(
    config: dict, tmp_path: Path
) -> None:
    """Each STATE here becomes safe while the batch before it is still committing, so it
    rides on that batch: it must be the one recorded with it, not the one before."""
    proc = start_target({**config, "batch_size_rows": 2}, tmp_path)
    assert proc.stdin is not None
    messages: list[dict] = [ITEMS]
    for n in range(1, ROUNDS + 1):
        messages += [record("items", {"id": 2 * n}), record("items", {"id": 2 * n + 1})]
        messages.append(state({"n": n}))
    proc.stdin.write(lines(*messages).encode())
    proc.stdin.flush()
    emitted = read_states_until(proc, {"n": ROUNDS})
    kill(proc)  # the run never finishes: only what the batches wrote is in its row
    [(status, _, _, last_state)] = runs(config)
    assert status == "running"
    assert json.loads(last_state) == emitted[-1] == {"n": ROUNDS}


def test_last_state_of_a_finished_run(config: dict) -> None:
    config = {**config, "batch_size_rows": 2}
    messages: list[dict] = [ITEMS]
    for n in range(1, 6):
        messages += [record("items", {"id": 2 * n}), record("items", {"id": 2 * n + 1})]
        messages.append(state({"n": n}))
    emitted = run(config, lines(*messages))
    [(status, _, _, last_state)] = runs(config)
    assert status == "succeeded"
    assert json.loads(last_state) == emitted[-1] == {"n": 5}
    [(started, heartbeat, finished)] = query(
        config, "SELECT started_at, heartbeat_at, finished_at FROM {s}._load_runs"
    )
    assert started < heartbeat <= finished  # bumped with every write


# The committer alone ----------------------------------------------------------------------------


def test_a_state_attached_before_the_seal_is_the_one_recorded_and_emitted() -> None:
    emitted: list[dict | None] = []
    recorded: list[dict | None] = []
    started, release = threading.Event(), threading.Event()

    def batch(job: Job) -> None:
        started.set()
        release.wait(5)
        recorded.append(job.seal())  # last step of the transaction

    committer = Committer(lambda job: emitted.append(job.state))
    committer.submit(Job(batch, {"n": 1}))
    assert started.wait(5)
    assert committer.attach_state({"n": 2})  # still open: rides on the batch
    release.set()
    committer.wait_idle()
    assert recorded == emitted == [{"n": 2}]
    assert not committer.attach_state({"n": 3})  # sealed: a job of its own is needed
    committer.stop()


def test_a_state_cannot_attach_after_the_seal() -> None:
    emitted: list[dict | None] = []
    sealed, release = threading.Event(), threading.Event()

    def batch(job: Job) -> None:
        job.seal()
        sealed.set()
        release.wait(5)  # sealed, not yet committed

    committer = Committer(lambda job: emitted.append(job.state))
    committer.submit(Job(batch, {"n": 1}))
    assert sealed.wait(5)
    assert not committer.attach_state({"n": 2})
    release.set()
    committer.wait_idle()
    assert emitted == [{"n": 1}]
    committer.stop()


def test_work_after_the_commits_so_far_waits_for_the_last_job_and_never_follows_a_failure() -> None:
    events: list[str] = []
    started, release = threading.Event(), threading.Event()

    def batch(job: Job) -> None:
        started.set()
        release.wait(5)
        events.append("committed")

    committer = Committer(lambda job: None)
    committer.after_commit(lambda: events.append("nothing in flight: now"))
    committer.submit(Job(batch))
    assert started.wait(5)
    committer.after_commit(lambda: events.append("after the commit"))
    assert events == ["nothing in flight: now"]  # the job is still running
    release.set()
    committer.wait_idle()
    assert events == ["nothing in flight: now", "committed", "after the commit"]
    committer.after_commit(lambda: events.append("finished: now"))
    assert events[-1] == "finished: now"

    def failing(job: Job) -> None:
        started.set()
        release.wait(5)
        raise RuntimeError("the warehouse went away")

    started.clear()
    release.clear()
    committer.submit(Job(failing))
    assert started.wait(5)
    committer.after_commit(lambda: events.append("after a failure"))
    release.set()
    committer.wait_idle()
    committer.after_commit(lambda: events.append("after a failure, later"))
    assert "after a failure" not in events and "after a failure, later" not in events
    committer.stop()

"""SIGKILL the target mid-stream, resume from its last STATE: same tables as one clean run."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

from .singer_io import lines, query, record, run, schema, state

BATCH = 40
STATE_EVERY = 25
RECORDS = 400
CLI = "from target_looker.target import TargetLooker; TargetLooker.cli()"
COLUMNS = "company, voucher_no, row_no, amount, _ifs_objversion"
STREAM = schema(
    "voucher_rows",
    {
        "Company": {"type": "string"},
        "VoucherNo": {"type": "integer"},
        "RowNo": {"type": "integer"},
        "Amount": {"type": "number"},
        "_ifs_objversion": {"type": "string"},
    },
    ["Company", "VoucherNo", "RowNo"],
)


def messages() -> list[dict]:
    out: list[dict] = [STREAM]
    for i in range(RECORDS):
        # Rows come back with newer versions later in the stream, as with a lookback.
        voucher, row = divmod(i % 300, 3)
        rec = {
            "Company": "US01",
            "VoucherNo": voucher,
            "RowNo": row,
            "Amount": i,
            "_ifs_objversion": f"2026010100{i:04d}",
        }
        out.append(record("voucher_rows", rec))
        if (i + 1) % STATE_EVERY == 0:
            out.append(state({"bookmarks": {"voucher_rows": {"position": i + 1}}}))
    return out


def test_kill_and_resume_from_last_state_equals_an_uninterrupted_run(
    config: dict, tmp_path: Path
) -> None:
    all_messages = messages()
    config = {**config, "batch_size_rows": BATCH}
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(config))
    proc = subprocess.Popen(
        [sys.executable, "-c", CLI, "--config", str(config_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert proc.stdin is not None and proc.stdout is not None
    sent, emitted = 0, []
    # Feed until the target has emitted three states, then send part of a batch more.
    while len(emitted) < 3:
        while sent < len(all_messages) and sent < (len(emitted) + 1) * 2 * BATCH:
            proc.stdin.write(lines(all_messages[sent]).encode())
            sent += 1
        proc.stdin.flush()
        emitted.append(json.loads(proc.stdout.readline()))
    for message in all_messages[sent : sent + BATCH // 2]:
        proc.stdin.write(lines(message).encode())
    proc.stdin.flush()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL

    last = emitted[-1]
    resume_at = next(
        i for i, m in enumerate(all_messages) if m["type"] == "STATE" and m["value"] == last
    )
    assert 0 < resume_at < len(all_messages) - 1
    run(config, lines(STREAM, *all_messages[resume_at + 1 :]))

    clean = {**config, "default_target_schema": config["default_target_schema"] + "_clean"}
    run(clean, lines(*all_messages))
    order = " ORDER BY company, voucher_no, row_no"
    resumed = query(config, f"SELECT {COLUMNS} FROM {{s}}.voucher_rows{order}")  # noqa: S608
    expected = query(clean, f"SELECT {COLUMNS} FROM {{s}}.voucher_rows{order}")  # noqa: S608
    assert len(expected) == 300
    assert resumed == expected
    statuses = query(config, "SELECT status FROM {s}._load_runs ORDER BY started_at")
    assert statuses == [("interrupted",), ("succeeded",)]  # the resumed run found it dead

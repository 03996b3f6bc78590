"""Rejected records are kept verbatim and can be replayed once the cause is fixed."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import pytest

from ifs_looker.cli import main
from target_looker.rejects import replay

from .singer_io import lines, query, record, run, schema

UTC = datetime.timezone.utc
NARROW = schema(
    "parts", {"Part": {"type": "string"}, "Name": {"type": "string", "maxLength": 5}}, ["Part"]
)
WIDE = schema(
    "parts", {"Part": {"type": "string"}, "Name": {"type": "string", "maxLength": 20}}, ["Part"]
)


def load_with_one_reject(config: dict) -> None:
    run(
        config,
        lines(
            NARROW,
            record("parts", {"Part": "P1", "Name": "short"}),
            record(
                "parts",
                {"Part": "P2", "Name": "much too long"},
                time_extracted="2026-01-01T00:00:00Z",
            ),
        ),
    )


def test_reject_keeps_the_raw_record_and_the_reason(config: dict) -> None:
    load_with_one_reject(config)
    [(stream, reason, raw, extracted, replayed)] = query(
        config,
        "SELECT stream, reason, CAST(record AS VARCHAR), time_extracted, replayed_at "
        "FROM {s}._load_rejects",
    )
    assert stream == "parts" and "maxLength 5" in reason
    assert json.loads(raw) == {"Part": "P2", "Name": "much too long"}
    assert datetime.datetime.fromisoformat(extracted) == datetime.datetime(2026, 1, 1, tzinfo=UTC)
    assert replayed is None


def test_replay_after_the_schema_widened_loads_the_record(config: dict) -> None:
    load_with_one_reject(config)
    run(config, lines(WIDE))  # the tap's next run announces the wider column
    result = replay(config)
    assert (result.replayed, result.loaded, result.rejected_again) == (1, 1, 0)
    rows = query(config, "SELECT part, name FROM {s}.parts ORDER BY part")
    assert rows == [("P1", "short"), ("P2", "much too long")]
    [(replayed_at, replay_run)] = query(
        config, "SELECT replayed_at, replay_run_id FROM {s}._load_rejects"
    )
    assert replayed_at is not None and replay_run == result.run_id
    assert replay(config).replayed == 0  # nothing is replayed twice


def test_a_record_that_fails_again_becomes_a_new_reject(config: dict) -> None:
    load_with_one_reject(config)
    result = replay(config)
    assert (result.replayed, result.rejected_again) == (1, 1)
    rows = query(
        config, "SELECT run_id, replayed_at IS NULL FROM {s}._load_rejects ORDER BY received_at"
    )
    assert [pending for _, pending in rows] == [False, True]
    assert rows[1][0] == result.run_id


def test_the_ifs_looker_command(
    config: dict, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    load_with_one_reject(config)
    config_path = tmp_path / "target.json"
    config_path.write_text(json.dumps(config))
    assert main(["replay-rejects", "--config", str(config_path), "--dry-run"]) == 0
    assert "1 reject(s) pending replay" in capsys.readouterr().out
    assert main(["replay-rejects", "--config", str(config_path), "--stream", "parts"]) == 1
    assert "0 loaded, 0 skipped as older (a newer row is stored), 1 rejected again" in (
        capsys.readouterr().out
    )


# Replay never regresses a row ---------------------------------------------------------------


def test_replay_never_overwrites_a_row_loaded_after_the_reject(config: dict) -> None:
    """No `_ifs_objversion` to guard with: the row arrived after the reject, so it is newer."""
    load_with_one_reject(config)  # P2 "much too long" rejected
    run(config, lines(WIDE, record("parts", {"Part": "P2", "Name": "newer"})))
    result = replay(config)
    assert query(config, "SELECT name FROM {s}.parts WHERE part = 'P2'") == [("newer",)]
    assert (result.replayed, result.loaded, result.skipped, result.rejected_again) == (1, 0, 1, 0)
    [(replayed_at, replay_run)] = query(
        config, "SELECT replayed_at, replay_run_id FROM {s}._load_rejects"
    )
    assert replayed_at is not None and replay_run == result.run_id  # not retried again
    assert replay(config).replayed == 0


def test_replay_overwrites_a_row_loaded_before_the_reject(config: dict) -> None:
    """The same key earlier in the same input: the reject is the newer data."""
    run(
        config,
        lines(
            NARROW,
            record("parts", {"Part": "P2", "Name": "old"}),
            record("parts", {"Part": "P2", "Name": "much too long"}),
        ),
    )
    run(config, lines(WIDE))
    result = replay(config)
    assert (result.loaded, result.skipped, result.rejected_again) == (1, 0, 0)
    assert query(config, "SELECT name FROM {s}.parts") == [("much too long",)]


VERSIONED = schema(
    "parts",
    {
        "Part": {"type": "string"},
        "Name": {"type": "string", "maxLength": 5},
        "_ifs_objversion": {"type": "string"},
    },
    ["Part"],
)


def test_replay_counts_what_the_version_guard_skipped(
    config: dict, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    run(
        config,
        lines(
            VERSIONED,
            record("parts", {"Part": "P1", "Name": "new", "_ifs_objversion": "20260201000000"}),
            # arrived after P1's row, but an older IFS version: the guard refuses it
            record("parts", {"Part": "P1", "Name": "older!", "_ifs_objversion": "20260101"}),
            record("parts", {"Part": "P2", "Name": "loads!", "_ifs_objversion": "20260101"}),
        ),
    )
    wide = {**VERSIONED["schema"]["properties"], "Name": {"type": "string"}}
    run(config, lines(schema("parts", wide, ["Part"])))
    config_path = tmp_path / "target.json"
    config_path.write_text(json.dumps(config))
    assert main(["replay-rejects", "--config", str(config_path)]) == 0
    out = capsys.readouterr().out
    assert "replayed 2 reject(s)" in out
    assert "1 loaded, 1 skipped as older (a newer row is stored), 0 rejected again" in out
    assert query(config, "SELECT part, name FROM {s}.parts ORDER BY part") == [
        ("P1", "new"),
        ("P2", "loads!"),
    ]

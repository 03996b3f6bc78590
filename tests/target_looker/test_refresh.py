"""After a successful load, Looker is told: datagroups marked stale, PDT builds started.

A Looker problem is reported in the summary, never raised, and a failed load
triggers nothing. The target records what it triggered in `_load_runs.looker_actions`.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import socket
import time
from pathlib import Path

import pytest

from ifs_looker_core import encrypted_settings
from ifs_looker_sandboxes.looker import LookerSandbox
from target_looker.refresh import (
    LookerSettings,
    LookerSettingsError,
    refresh_after_load,
    stale_before_now,
)
from target_looker.target import TargetLooker

from .singer_io import lines, query, record, schema, state


@pytest.fixture
def looker(looker_sandbox: LookerSandbox) -> LookerSandbox:
    return looker_sandbox


def looker_config(sandbox: LookerSandbox, **extra: object) -> dict:
    return {
        "looker_base_url": sandbox.base_url,
        "looker_client_id": "looker-sandbox",
        "looker_client_secret": "looker-sandbox-secret",
        "looker_max_retries": 2,
        "looker_max_backoff_seconds": 0.05,
        **extra,
    }


def test_without_credentials_the_refresh_is_skipped_with_a_log_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    summary = refresh_after_load(LookerSettings.from_config({"looker_datagroups": ["m::d"]}))
    assert summary == {"status": "skipped", "reason": "Looker credentials not configured"}
    assert "Looker refresh skipped" in caplog.text


def test_datagroups_are_marked_stale_now_and_pdts_started(looker: LookerSandbox) -> None:
    settings = LookerSettings.from_config(
        looker_config(
            looker,
            looker_datagroups=["ifs_cloud::ifs_gl"],
            looker_pdts=["ifs_cloud/gl_monthly_balances"],
        )
    )
    before = int(time.time())
    summary = refresh_after_load(settings)
    after = time.time()
    assert summary["status"] == "succeeded"
    [group] = summary["datagroups"]
    assert (group["datagroup"], group["id"], group["status"]) == ("ifs_cloud::ifs_gl", "2", "ok")
    assert before <= group["stale_before"] <= after
    assert looker.state.datagroups["2"].stale_before == group["stale_before"]
    assert looker.state.datagroups["1"].stale_before is None  # not configured, not touched
    [pdt] = summary["pdts"]
    assert pdt["status"] == "started"
    assert pdt["materialization_id"] in looker.state.builds
    [patch] = looker.requests("PATCH")
    assert patch.body == {"stale_before": group["stale_before"]}
    json.dumps(summary)  # goes into _load_runs.looker_actions


def test_unknown_datagroups_and_pdts_are_reported_and_the_rest_still_done(
    looker: LookerSandbox, caplog: pytest.LogCaptureFixture
) -> None:
    settings = LookerSettings.from_config(
        looker_config(
            looker,
            looker_datagroups=["ifs_cloud::nope", "ifs_cloud::ifs_nightly"],
            looker_pdts=["ifs_cloud/missing_view"],
        )
    )
    summary = refresh_after_load(settings)
    assert summary["status"] == "failed"
    missing, done = summary["datagroups"]
    assert missing["status"] == "failed"
    assert "known: ifs_cloud::ifs_gl, ifs_cloud::ifs_nightly" in missing["error"]
    assert done["status"] == "ok"
    assert summary["pdts"][0]["status"] == "failed"
    assert "HTTP 404" in summary["pdts"][0]["error"]
    assert "Looker refresh failed (the load itself is committed)" in caplog.text


def test_an_unreachable_looker_is_reported_not_raised() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings = LookerSettings(
        base_url=f"http://127.0.0.1:{port}",
        client_id="x",
        client_secret="super-secret-value",
        datagroups=(("m", "d"),),
        max_retries=1,
        max_backoff_seconds=0.01,
    )
    summary = refresh_after_load(settings)
    assert summary["status"] == "failed"
    assert "connection error" in summary["error"]
    assert "super-secret-value" not in json.dumps(summary)


def test_malformed_datagroup_and_pdt_names_are_configuration_errors() -> None:
    with pytest.raises(LookerSettingsError, match="model::datagroup"):
        LookerSettings.from_config({"looker_datagroups": ["just_a_name"]})
    with pytest.raises(LookerSettingsError, match="model/view"):
        LookerSettings.from_config({"looker_pdts": ["model/view/extra"]})
    settings = LookerSettings.from_config({"looker_datagroups": [" m :: d "]})
    assert settings.datagroups == (("m", "d"),)


def test_an_encrypted_looker_secret_is_decrypted(monkeypatch: pytest.MonkeyPatch) -> None:
    key = encrypted_settings.generate_key()
    monkeypatch.setenv(encrypted_settings.KEY_ENV, key)
    encrypted = encrypted_settings.encrypt("looker-sandbox-secret", key)
    settings = LookerSettings.from_config({"looker_client_secret": encrypted})
    assert settings.client_secret == "looker-sandbox-secret"
    assert "looker-sandbox-secret" not in repr(settings)


def test_stale_before_is_now_rounded_down_never_in_the_future() -> None:
    assert stale_before_now(lambda: 1_700_000_000.999) == 1_700_000_000


# with the target ---------------------------------------------------------------------------------


STREAM = schema(
    "accounts",
    {"Company": {"type": "string"}, "Account": {"type": "string"}, "Amount": {"type": "number"}},
    ["Company", "Account"],
)


def test_datagroups_are_patched_only_after_the_load_committed(
    looker: LookerSandbox, config: dict
) -> None:
    config = {**config, **looker_config(looker, looker_datagroups=["ifs_cloud::ifs_gl"])}
    text = lines(
        STREAM,
        record("accounts", {"Company": "US01", "Account": "1010", "Amount": 1.25}),
        state({"bookmarks": {"accounts": {"x": 1}}}),
    )
    target = TargetLooker(config=config)
    with contextlib.redirect_stdout(io.StringIO()):
        target.listen(io.StringIO(text))
    [(actions,)] = query(config, "SELECT looker_actions FROM {s}._load_runs")
    actions = json.loads(actions) if isinstance(actions, str) else actions
    assert actions["status"] == "succeeded"
    assert [(d["datagroup"], d["status"]) for d in actions["datagroups"]] == [
        ("ifs_cloud::ifs_gl", "ok")
    ]
    [(committed, finished)] = query(
        config,
        "SELECT max(committed_at), (SELECT finished_at FROM {s}._load_runs) FROM {s}._load_batches",
    )
    [patch] = looker.requests("PATCH")
    assert patch.at >= committed.timestamp()
    assert patch.at >= finished.timestamp()


def test_a_failed_load_patches_nothing(looker: LookerSandbox, config: dict) -> None:
    config = {**config, **looker_config(looker, looker_datagroups=["ifs_cloud::ifs_gl"])}
    text = lines(
        STREAM,
        record("accounts", {"Company": "US01", "Account": "1010", "Amount": 1}),
        "this line is not JSON: broken protocol stops the run",
    )
    target = TargetLooker(config=config)
    with (
        pytest.raises(Exception, match="JSON"),
        contextlib.redirect_stdout(io.StringIO()),
    ):
        target.listen(io.StringIO(text))
    [(actions, status)] = query(config, "SELECT looker_actions, status FROM {s}._load_runs")
    assert actions is None
    assert status == "failed"
    assert looker.requests("PATCH") == []
    assert looker.request_log == []


def test_a_failed_lookml_write_makes_the_looker_step_failed_not_the_load(
    looker: LookerSandbox, config: dict, tmp_path: Path
) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the LookML directory should be")
    config = {
        **config,
        **looker_config(looker, looker_datagroups=["ifs_cloud::ifs_gl"]),
        "lookml_dir": str(blocker / "lookml"),
    }
    text = lines(
        STREAM,
        record("accounts", {"Company": "US01", "Account": "1010", "Amount": 1.25}),
        state({"bookmarks": {"accounts": {"x": 1}}}),
    )
    target = TargetLooker(config=config)
    with contextlib.redirect_stdout(io.StringIO()):
        target.listen(io.StringIO(text))
    [(actions, status)] = query(config, "SELECT looker_actions, status FROM {s}._load_runs")
    actions = json.loads(actions) if isinstance(actions, str) else actions
    assert status == "succeeded"  # the load committed; LookML cannot undo it
    assert actions["status"] == "failed"
    assert "lookml_error" in actions
    assert [(d["datagroup"], d["status"]) for d in actions["datagroups"]] == [
        ("ifs_cloud::ifs_gl", "ok")
    ]

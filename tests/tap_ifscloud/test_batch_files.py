"""With `batch_config`, pages go to local JSON Lines files named by BATCH messages.

Meltano relays one line per BATCH message instead of one per record. The files must hold
exactly the records the RECORD path sends, the messages must carry what RECORD messages
carry (the full table's version, the extraction time), and a STATE must never cover a
record whose file has not been named yet.
"""

from __future__ import annotations

import datetime
import gzip
import json
import logging
import os
import queue
import subprocess
import sys
import threading
import time
from decimal import Decimal
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from tap_ifscloud.batch_files import (
    BatchFileSettings,
    BatchFileWriter,
    PendingFiles,
    local_root,
)
from tap_ifscloud.streams import BUILTIN_STREAMS, FULL_TABLE

from .conftest import expected_records, relay, run_tap, running_sandbox, tap_config

DEFINITIONS = {d.name: d for d in BUILTIN_STREAMS}


def file_path(url: str) -> Path:
    parts = urlsplit(url)
    assert parts.scheme == "file", url
    return Path(unquote(parts.path))


def file_records(url: str) -> list[dict]:
    path = file_path(url)
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as lines:
        return [json.loads(line, parse_float=Decimal) for line in lines]


def batch_config(root: Path, *, compression: str | None = None, size: int = 100) -> dict:
    encoding = {"format": "jsonl"}
    if compression is not None:
        encoding["compression"] = compression
    return {
        "encoding": encoding,
        "storage": {"root": root.as_uri(), "prefix": "ifs-"},
        "batch_size": size,
    }


@pytest.fixture(scope="module")
def sandbox():
    with running_sandbox(companies=("US01", "DE01")) as running:
        yield running


@pytest.mark.parametrize("compression", [None, "none", "gzip"])
def test_batch_files_hold_exactly_the_records_the_record_path_sends(sandbox, tmp_path, compression):
    by_records = run_tap(tap_config(sandbox))
    by_files = run_tap(
        tap_config(
            sandbox,
            max_pending_batch_files=0,
            batch_config=batch_config(tmp_path, compression=compression),
        )
    )
    assert not [m for m in by_files.messages if m["type"] == "RECORD"]
    for name, definition in DEFINITIONS.items():
        batches = [m for m in by_files.messages if m["type"] == "BATCH" and m["stream"] == name]
        assert batches, name
        from_files = [r for m in batches for url in m["manifest"] for r in file_records(url)]
        # same records, same order, values to the last digit (a Decimal compares exactly)
        assert from_files == by_records.records(name), name
        for message in batches:
            assert message["encoding"]["format"] == "jsonl"
            assert message["encoding"].get("compression") == compression
            assert all(
                url.endswith(".json.gz" if compression == "gzip" else ".jsonl")
                for url in message["manifest"]
            )
        versions = {m.get("version") for m in batches}
        record_versions = {
            m.get("version")
            for m in by_records.messages
            if m["type"] == "RECORD" and m["stream"] == name
        }
        if definition.replication_mode == FULL_TABLE:
            [activate, *_] = [
                m
                for m in by_files.messages
                if m["type"] == "ACTIVATE_VERSION" and m["stream"] == name
            ]
            assert versions == {activate["version"]}, name
            assert by_files.types(name)[-2:] == ["BATCH", "ACTIVATE_VERSION"], name
            assert len(record_versions) == 1 and None not in record_versions
        else:
            assert versions == record_versions == {None}, name
    # both runs end in the same bookmarks
    assert by_files.final_state == by_records.final_state
    assert not list(tmp_path.glob("*.part")), "a finished file is renamed from its .part name"


def test_a_batch_message_says_when_its_records_were_read(sandbox, tmp_path):
    before = datetime.datetime.now(datetime.timezone.utc)
    run = run_tap(
        tap_config(
            sandbox,
            companies=["US01"],
            max_pending_batch_files=0,
            batch_config=batch_config(tmp_path),
        )
    )
    after = datetime.datetime.now(datetime.timezone.utc)
    batches = [m for m in run.messages if m["type"] == "BATCH"]
    assert batches
    for message in batches:
        extracted = datetime.datetime.fromisoformat(message["time_extracted"])
        assert extracted.utcoffset() == datetime.timedelta(0)
        assert before <= extracted <= after


def test_files_close_at_page_boundaries_once_they_reach_the_batch_size(sandbox, tmp_path):
    # pages of 50, files of 70 rows or more: a file closes at the first page end past 70
    config = tap_config(sandbox, page_size=50)
    records = run_tap(config).records("voucher_rows")
    run = run_tap(
        {**config, "max_pending_batch_files": 0, "batch_config": batch_config(tmp_path, size=70)}
    )
    batches = [m for m in run.messages if m["type"] == "BATCH" and m["stream"] == "voucher_rows"]
    sizes = [len(file_records(url)) for m in batches for url in m["manifest"]]
    assert sum(sizes) == len(records) > 200
    assert all(70 <= size < 70 + 50 for size in sizes[:-1]), sizes
    assert 0 < sizes[-1] < 70 + 50, sizes


def test_state_after_a_batch_covers_only_records_of_files_already_named(sandbox, tmp_path):
    config = tap_config(
        sandbox,
        page_size=20,
        max_pending_batch_files=0,
        batch_config=batch_config(tmp_path, size=30),
    )
    run = run_tap(config)
    definition = DEFINITIONS["voucher_rows"]
    key = definition.replication_key
    named: list[dict] = []
    checked = 0
    for message in run.messages:
        if message["type"] == "BATCH" and message["stream"] == "voucher_rows":
            named += [r for url in message["manifest"] for r in file_records(url)]
        if message["type"] == "STATE":
            stream_state = message["value"].get("bookmarks", {}).get("voucher_rows", {})
            for partition in stream_state.get("partitions", []):
                bookmark = partition.get("replication_key_value")
                if bookmark is None:
                    continue
                company = partition["context"][definition.partition_field]
                seen = [r[key] for r in named if r[definition.partition_field] == company]
                assert seen and bookmark <= max(seen), (company, bookmark)
                checked += 1
    assert checked


def test_a_failed_read_leaves_no_file_that_looks_whole(tmp_path):
    calls = {"n": 0}

    def break_third_page(path: str, rows: list[dict]) -> list[dict]:
        if "VoucherRow" in path or "Voucher" in path:
            calls["n"] += 1
            if calls["n"] >= 3:
                return [42]  # a row that is not an object: the read fails
        return rows

    with running_sandbox(companies=("US01",)) as sandbox, relay(sandbox, break_third_page) as url:
        config = tap_config(
            sandbox,
            base_url=url,
            allow_insecure_http=True,
            page_size=20,
            max_pending_batch_files=0,
            batch_config=batch_config(tmp_path, size=1000),
        )
        with pytest.raises(Exception):  # noqa: B017,PT011 (the tap's own error type does not matter here)
            run_tap(config)
    assert calls["n"] >= 3
    assert not list(tmp_path.glob("*voucher_rows*")), "the incomplete file was removed"


@pytest.mark.parametrize(
    ("root", "expected"),
    [
        ("file:///var/batches", Path("/var/batches")),
        ("file://localhost/var/batches", Path("/var/batches")),
        ("/var/batches", Path("/var/batches")),
        ("file:///var/my%20batches", Path("/var/my batches")),
        ("s3://bucket/batches", None),
        ("gs://bucket/batches", None),
        ("file://otherhost/var/batches", None),
    ],
)
def test_only_local_storage_is_written_page_by_page(root, expected):
    assert local_root(root) == expected


@pytest.mark.parametrize(
    ("format_", "compression", "written_here"),
    [
        ("jsonl", None, True),
        ("jsonl", "gzip", True),
        ("jsonl", "none", True),
        ("parquet", None, False),
        ("jsonl", "zstd", False),
    ],
)
def test_other_formats_are_left_to_the_sdk_batcher(tmp_path, format_, compression, written_here):
    settings = BatchFileSettings.from_config(format_, compression, tmp_path.as_uri(), None, 10)
    assert (settings is not None) == written_here


def test_a_discarded_file_is_removed_and_a_closed_one_is_renamed(tmp_path):
    settings = BatchFileSettings.from_config("jsonl", None, str(tmp_path), "p-", 2)
    assert settings is not None
    writer = BatchFileWriter(settings, "tap-ifscloud", "voucher_rows")
    now = datetime.datetime.now(datetime.timezone.utc)
    writer.write([{"a": Decimal("0.10000000000000000001")}, {"a": 1}], now)
    assert writer.full
    url = writer.close()
    assert url is not None and file_records(url) == [
        {"a": Decimal("0.10000000000000000001")},
        {"a": 1},
    ]
    assert file_path(url).name.startswith("p-tap-ifscloud--voucher_rows-")
    writer.write([{"a": 2}], now)
    assert len(list(tmp_path.glob("*.part"))) == 1
    writer.discard()
    assert list(tmp_path.iterdir()) == [file_path(url)]
    assert writer.close() is None


# At most max_pending_batch_files on disk ---------------------------------------------------


class FakeTime:
    """A clock that moves only when the waiter sleeps; `on_sleep` plays the target."""

    def __init__(self, on_sleep=None) -> None:
        self.now = 0.0
        self.sleeps = 0
        self.on_sleep = on_sleep

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.sleeps += 1
        if self.on_sleep is not None:
            self.on_sleep(self)


def handed_over(pending: PendingFiles, tmp_path: Path, count: int, first: int = 0) -> list[Path]:
    paths = []
    for number in range(first, first + count):
        path = tmp_path / f"{number}.jsonl"
        path.write_text("{}\n")
        pending.handed_over(path.as_uri())
        paths.append(path)
    return paths


def test_the_tap_waits_for_the_target_to_load_a_file_when_the_limit_is_reached(tmp_path):
    paths: list[Path] = []

    def target_loads_the_oldest_after_a_minute(time_: FakeTime) -> None:
        if time_.now >= 60 and paths[0].exists():
            paths[0].unlink()

    time_ = FakeTime(target_loads_the_oldest_after_a_minute)
    pending = PendingFiles(2, logger=logging.getLogger("t"), clock=time_.clock, sleep=time_.sleep)
    paths += handed_over(pending, tmp_path, 1)
    pending.wait_for_room()  # one of two places taken: no wait
    assert time_.sleeps == 0
    paths += handed_over(pending, tmp_path, 1, first=1)
    pending.wait_for_room()
    assert 60 <= time_.now < 61  # returned as soon as the target had loaded one
    assert not paths[0].exists() and paths[1].exists()


def test_a_target_that_keeps_its_files_holds_the_tap_only_so_long(tmp_path, caplog):
    time_ = FakeTime()
    pending = PendingFiles(
        2, logger=logging.getLogger("t"), clock=time_.clock, sleep=time_.sleep, give_up_after=120
    )
    handed_over(pending, tmp_path, 2)
    with caplog.at_level(logging.INFO):
        pending.wait_for_room()
    assert 120 <= time_.now < 121
    assert "None of the 2 batch files handed over has been removed in 120 s" in caplog.text
    assert "Waiting for the target to load 2 batch file(s)" in caplog.text  # every 30 s
    # and it no longer waits in this run
    handed_over(pending, tmp_path, 5, first=2)
    before = time_.now
    pending.wait_for_room()
    assert time_.now == before


def test_a_target_that_has_loaded_a_file_is_waited_for_however_long_it_takes(tmp_path):
    paths: list[Path] = []
    loads = {0: 10.0, 1: 10.0 + 900}  # the second file takes the target 15 minutes

    def target(time_: FakeTime) -> None:
        for number, at in loads.items():
            if time_.now >= at and paths[number].exists():
                paths[number].unlink()

    time_ = FakeTime(target)
    pending = PendingFiles(
        2, logger=logging.getLogger("t"), clock=time_.clock, sleep=time_.sleep, give_up_after=120
    )
    paths += handed_over(pending, tmp_path, 2)
    pending.wait_for_room()
    assert 10 <= time_.now < 11
    paths += handed_over(pending, tmp_path, 1, first=2)
    pending.wait_for_room()
    assert 910 <= time_.now < 911


def test_no_limit_never_waits(tmp_path):
    time_ = FakeTime()
    pending = PendingFiles(0, logger=logging.getLogger("t"), clock=time_.clock, sleep=time_.sleep)
    handed_over(pending, tmp_path, 10)
    pending.wait_for_room()
    assert time_.sleeps == 0


class TapProcess:
    """`tap-ifscloud` as a process whose messages the test reads as they come."""

    def __init__(self, config: dict, tmp_path: Path) -> None:
        path = tmp_path / "config.json"
        path.write_text(json.dumps(config))
        env = {k: v for k, v in os.environ.items() if not k.startswith("TAP_IFSCLOUD_")}
        self.stderr = (tmp_path / "stderr.log").open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tap_ifscloud.tap", "--config", str(path)],
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            env=env,
        )
        self.messages: queue.Queue[dict | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.messages.put(json.loads(line))
        self.messages.put(None)

    def next_batch(self, timeout: float) -> dict | None:
        """The next BATCH message, or None at the end of output or after `timeout` s."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                message = self.messages.get(timeout=left)
            except queue.Empty:
                return None
            if message is None or message["type"] == "BATCH":
                return message
        return None


def load(message: dict) -> int:
    """As target-looker does once a file's records are committed: the file deleted."""
    rows = 0
    for url in message["manifest"]:
        rows += len(file_records(url))
        file_path(url).unlink()
    return rows


def test_a_tap_holds_at_most_max_pending_batch_files_the_target_has_not_loaded(sandbox, tmp_path):
    files = tmp_path / "files"
    config = tap_config(
        sandbox,
        companies=["US01"],
        page_size=20,
        max_pending_batch_files=2,
        batch_config=batch_config(files, size=20),
    )
    tap = TapProcess(config, tmp_path)
    try:
        first, second = tap.next_batch(60), tap.next_batch(60)
        assert first is not None and second is not None
        # nothing loads them: the tap waits, two whole files on disk
        assert tap.next_batch(1.5) is None
        on_disk = sorted(p.as_uri() for p in files.iterdir() if p.suffix == ".jsonl")
        assert on_disk == sorted(first["manifest"] + second["manifest"])
        # the target loads the first: the tap writes one more
        rows = load(first)
        third = tap.next_batch(60)
        assert third is not None
        # from now on the target keeps up: every record reaches a file, and the tap ends
        rows += load(second) + load(third)
        while (message := tap.next_batch(60)) is not None:
            rows += load(message)
        assert tap.process.wait(60) == 0
        assert rows == sum(
            len(expected_records(sandbox, d.name, ("US01",))) for d in BUILTIN_STREAMS
        )
    finally:
        tap.process.kill()
        tap.stderr.close()

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
from decimal import Decimal
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from tap_ifscloud.batch_files import BatchFileSettings, BatchFileWriter, local_root
from tap_ifscloud.streams import BUILTIN_STREAMS, FULL_TABLE

from .conftest import relay, run_tap, running_sandbox, tap_config

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
        tap_config(sandbox, batch_config=batch_config(tmp_path, compression=compression))
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
    run = run_tap(tap_config(sandbox, companies=["US01"], batch_config=batch_config(tmp_path)))
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
    run = run_tap({**config, "batch_config": batch_config(tmp_path, size=70)})
    batches = [m for m in run.messages if m["type"] == "BATCH" and m["stream"] == "voucher_rows"]
    sizes = [len(file_records(url)) for m in batches for url in m["manifest"]]
    assert sum(sizes) == len(records) > 200
    assert all(70 <= size < 70 + 50 for size in sizes[:-1]), sizes
    assert 0 < sizes[-1] < 70 + 50, sizes


def test_state_after_a_batch_covers_only_records_of_files_already_named(sandbox, tmp_path):
    config = tap_config(sandbox, page_size=20, batch_config=batch_config(tmp_path, size=30))
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

"""BATCH messages: files of records take the path of RECORD lines, and go once committed.

Real files in `tmp_path`, real DuckDB and PostgreSQL (the `config` fixture runs a test
once per warehouse), the target run in-process as in test_target.py.
"""

from __future__ import annotations

import contextlib
import datetime
import decimal
import gzip
import io
import json
import logging
import re
import subprocess
import sys
import time
import typing as t
from pathlib import Path

import msgspec
import pytest
from singer_sdk import Stream, Tap
from singer_sdk import typing as th
from singer_sdk.singerlib.exceptions import InvalidInputLine

from target_looker.batch_files import BatchFileError
from target_looker.target import TargetLooker

from .singer_io import batch_sizes, query, record, run, schema, state

CLI = "from target_looker.target import TargetLooker; TargetLooker.cli()"
EXTRACTED = "2026-11-30T11:00:00.123456+00:00"
_encode = msgspec.json.Encoder(decimal_format="number").encode
PARTS = schema(
    "parts",
    {
        "Part": {"type": "string", "maxLength": 10},
        "Qty": {"type": ["integer", "null"]},
        "Price": {"type": ["number", "null"]},
        "Since": {"type": ["string", "null"], "format": "date"},
        "Changed": {"type": ["string", "null"], "format": "date-time"},
        "Active": {"type": ["boolean", "null"]},
        "Note": {"type": ["string", "null"], "maxLength": 20},
        "Extra": {"type": ["object", "null"]},
        "_ifs_etag": {"type": ["string", "null"]},
        "_ifs_objversion": {"type": ["string", "null"]},
    },
    ["Part"],
)
# Columns the same records get anew in every run: arrival, batch and run.
PER_RUN = {"_sdc_received_at", "_sdc_batched_at", "_sdc_sequence", "_load_run_id", "_load_batch_id"}


def parts(count: int, start: int = 0) -> list[dict]:
    """Records exercising every column type, exact decimals and nested JSON included."""
    return [
        {
            "Part": f"P{i:04d}",
            "Qty": i,
            "Price": decimal.Decimal(f"{i}.123456789"),
            "Since": f"2026-0{1 + i % 9}-1{i % 10}",
            "Changed": f"2026-03-0{1 + i % 9}T10:1{i % 10}:00+02:00",
            "Active": i % 2 == 0,
            "Note": None if i % 3 else f"note {i}",
            "Extra": {"n": decimal.Decimal("0.1"), "list": [i, "x"]} if i % 4 == 0 else None,
            "_ifs_etag": f'W/"{i}"',
            "_ifs_objversion": f"20260301{i:06d}",
        }
        for i in range(start, start + count)
    ]


def dumps(value: t.Any) -> str:
    """Compact JSON, Decimals as exact numbers: a record reads the same in a RECORD
    message and in a batch file."""
    return _encode(value).decode()


def write_file(path: Path, records: t.Iterable[dict | str], *, compressed: bool = False) -> Path:
    """A batch file: one record per line (strings are taken verbatim)."""
    text = "".join((r if isinstance(r, str) else dumps(r)) + "\n" for r in records)
    if compressed:
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text, encoding="utf-8")
    return path


def batch(stream: str, *files: Path | str, compression: str | None = None, **extra: t.Any) -> dict:
    return {
        "type": "BATCH",
        "stream": stream,
        "encoding": {"format": "jsonl", "compression": compression},
        "manifest": [f.as_uri() if isinstance(f, Path) else f for f in files],
        **extra,
    }


def singer_text(*messages: dict | str) -> str:
    return "".join((m if isinstance(m, str) else dumps(m)) + "\n" for m in messages)


def run_lines(config: dict, *messages: dict | str) -> list[dict]:
    """Run the target; the STATE values it emitted."""
    return run(config, singer_text(*messages))


def run_failing(config: dict, *messages: dict | str) -> tuple[list[dict], BaseException]:
    """Run the target on input that makes it fail: the STATE values emitted before, and
    the error."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(Exception) as raised:  # noqa: PT011
        TargetLooker(config=config).listen(io.StringIO(singer_text(*messages)))
    return [json.loads(line) for line in out.getvalue().splitlines()], raised.value


def table_rows(config: dict, name: str = "parts") -> list[dict]:
    """Every column of every row but those set anew in each run, by key order."""
    columns = [
        c
        for (c,) in query(
            config,
            "SELECT column_name FROM information_schema.columns WHERE table_schema = $1 "
            "AND table_name = $2 ORDER BY ordinal_position",
            (config["default_target_schema"], name),
        )
        if c not in PER_RUN
    ]
    rows = query(config, f"SELECT {', '.join(columns)} FROM {{s}}.{name} ORDER BY 1")  # noqa: S608
    return [dict(zip(columns, row, strict=True)) for row in rows]


def rejects(config: dict) -> list[tuple]:
    return query(
        config,
        "SELECT input_line, reason, CAST(record AS VARCHAR) FROM {s}._load_rejects "
        "ORDER BY input_line",
    )


def other_schema(config: dict, suffix: str) -> dict:
    return {**config, "default_target_schema": config["default_target_schema"] + suffix}


def run_status(config: dict) -> list[tuple]:
    return query(config, "SELECT status, records_in, rows_rejected FROM {s}._load_runs")


# The same rows as RECORD lines ------------------------------------------------------------


@pytest.mark.parametrize("compression", [None, "gzip"])
def test_batch_files_load_the_same_rows_as_record_lines(
    config: dict, tmp_path: Path, compression: str | None
) -> None:
    records = parts(30)
    records[7]["Note"] = "nul \x00 inside"  # PostgreSQL rejects it on both paths
    as_records = other_schema(config, "_r")
    run_lines(
        as_records,
        PARTS,
        *(record("parts", r, time_extracted=EXTRACTED) for r in records),
        state({"n": 1}),
    )
    gz = compression == "gzip"
    first = write_file(tmp_path / "a.jsonl", records[:12], compressed=gz)
    second = write_file(tmp_path / "b.jsonl", records[12:], compressed=gz)
    emitted = run_lines(
        config,
        PARTS,
        batch("parts", first, second, compression=compression, time_extracted=EXTRACTED),
        state({"n": 1}),
    )
    assert emitted == [{"n": 1}]
    loaded = table_rows(config)
    assert loaded == table_rows(as_records)
    postgres = config["warehouse_url"].startswith("postgresql")
    assert len(loaded) == (29 if postgres else 30)  # PostgreSQL cannot store the NUL
    assert {row["_sdc_extracted_at"] for row in loaded} == {
        datetime.datetime.fromisoformat(EXTRACTED)
    }
    assert [r[2] for r in rejects(config)] == [r[2] for r in rejects(as_records)]
    # The same records, byte for byte: the batches' checksums agree.
    checksums = "SELECT records_in, rows_inserted, checksum FROM {s}._load_batches"
    assert query(config, checksums) == query(as_records, checksums)
    assert not first.exists() and not second.exists()  # committed, so deleted


def test_a_full_table_batch_with_its_version_retires_older_rows_on_activate_version(
    config: dict, tmp_path: Path
) -> None:
    accounts = schema("accounts", {"Account": {"type": "string"}}, ["Account"])

    def sync(version: int, *names: str) -> None:
        path = write_file(tmp_path / f"v{version}.jsonl", [{"Account": n} for n in names])
        run_lines(
            config,
            accounts,
            {"type": "ACTIVATE_VERSION", "stream": "accounts", "version": version},
            batch("accounts", path, version=version),
            {"type": "ACTIVATE_VERSION", "stream": "accounts", "version": version},
        )

    sync(1, "1", "2", "3")
    sync(2, "1", "3")
    assert query(
        config,
        "SELECT account, _sdc_deleted_at IS NOT NULL, _sdc_table_version FROM {s}.accounts "
        "ORDER BY 1",
    ) == [("1", False, 2), ("2", True, 1), ("3", False, 2)]


def test_a_batch_without_version_is_like_records_without_one(config: dict, tmp_path: Path) -> None:
    run_lines(config, PARTS, batch("parts", write_file(tmp_path / "a.jsonl", parts(2))))
    assert query(config, "SELECT _sdc_table_version, _sdc_extracted_at FROM {s}.parts") == [
        (None, None),
        (None, None),
    ]


def test_stream_maps_apply_to_batch_records(config: dict, tmp_path: Path) -> None:
    config = {
        **config,
        "stream_maps": {"parts": {"__alias__": "spare_parts", "Note": "__NULL__"}},
    }
    path = write_file(tmp_path / "a.jsonl", parts(4))
    run_lines(config, PARTS, batch("parts", path))
    assert query(config, "SELECT part, qty FROM {s}.spare_parts ORDER BY 1") == [
        (f"P{i:04d}", i) for i in range(4)
    ]
    columns = query(
        config,
        "SELECT column_name FROM information_schema.columns WHERE table_schema = $1 "
        "AND table_name = 'spare_parts'",
        (config["default_target_schema"],),
    )
    assert ("note",) not in columns


def test_an_sdk_taps_gzip_batch_files_load(config: dict, tmp_path: Path) -> None:
    """Files written by singer-sdk's own JSONLinesBatcher, in a tap's own BATCH messages
    (no `version`, no `time_extracted`)."""
    out = io.StringIO()
    tap = MiniTap(
        config={
            "batch_config": {
                "encoding": {"format": "jsonl", "compression": "gzip"},
                "storage": {"root": tmp_path.as_uri(), "prefix": "sdk-"},
                "batch_size": 3,
            }
        }
    )
    with contextlib.redirect_stdout(out):
        tap.sync_all()
    messages = out.getvalue()
    assert '"type":"BATCH"' in messages
    assert sorted(p.suffixes[-2:] for p in tmp_path.glob("sdk-*")) == [[".json", ".gz"]] * 3
    run(config, messages)
    assert query(config, "SELECT part, qty, price FROM {s}.parts ORDER BY 1") == [
        (f"P{i}", i, decimal.Decimal(f"{i}.10")) for i in range(7)
    ]
    assert list(tmp_path.glob("sdk-*")) == []


class SdkParts(Stream):
    name = "parts"
    primary_keys: t.ClassVar = ["Part"]
    schema = th.PropertiesList(
        th.Property("Part", th.StringType, required=True),
        th.Property("Qty", th.IntegerType),
        th.Property("Price", th.NumberType),
    ).to_dict()

    def get_records(self, context: dict | None) -> t.Iterable[dict]:
        for i in range(7):
            yield {"Part": f"P{i}", "Qty": i, "Price": decimal.Decimal(f"{i}.10")}


class MiniTap(Tap):
    name = "tap-mini"
    config_jsonschema = th.PropertiesList().to_dict()

    def discover_streams(self) -> list[Stream]:
        return [SdkParts(self)]


# Bad input inside a file ------------------------------------------------------------------


def test_one_bad_record_in_a_file_is_one_reject_naming_the_file_and_line(
    config: dict, tmp_path: Path
) -> None:
    deep = '{"Part": "P0006", "Extra": {"x": ' + "[" * 5000 + "]" * 5000 + "}}"
    path = write_file(
        tmp_path / "a.jsonl",
        [
            parts(1)[0],  # 1
            '{"Part": "P0002", "Qty": "many"}',  # 2: fails its schema
            '{"Part": "P0003", "Note": "bad \\ud800 here"}',  # 3: lone surrogate
            '{"Part": "P0004", "Qty": NaN}',  # 4: NaN
            "",  # 5: blank, skipped
            '["P0005"]',  # 6: JSON, not an object
            deep,  # 7: nested 5,002 levels
            '{"Qty": 8}',  # 8: no key
            '{"Part": "P0009", "Note": "far longer than twenty characters"}',  # 9
            "   ",  # 10: blank
            parts(1, start=11)[0],  # 11
        ],
    )
    assert run_lines(config, PARTS, batch("parts", path), state({"n": 1})) == [{"n": 1}]
    assert [p for (p,) in query(config, "SELECT part FROM {s}.parts ORDER BY 1")] == [
        "P0000",
        "P0011",
    ]
    found = rejects(config)
    assert [line for line, _, _ in found] == [2, 3, 4, 6, 7, 8, 9]
    reasons = {line: reason for line, reason, _ in found}
    assert all(reason.startswith(f"batch file {path}, line {n}: ") for n, reason in reasons.items())
    assert "Qty" in reasons[2]
    assert "lone UTF-16 surrogate (\\ud800)" in reasons[3]
    assert "a number is NaN" in reasons[4]
    assert "not a JSON object" in reasons[6]
    assert "nested 5002 levels deep" in reasons[7]
    assert "lacks key properties ['Part']" in reasons[8]
    assert "maxLength 20" in reasons[9]
    assert {line: raw for line, _, raw in found}[
        3
    ] == '{"Part": "P0003", "Note": "bad \\ud800 here"}'
    assert run_status(config) == [("succeeded", 9, 7)]


@pytest.mark.parametrize(
    "bad_line",
    [
        b"root:x:0:0:root:/root:/bin/bash",  # an arbitrary local file
        b'{"Part": "P0002",}',
        b'{"Part": "P0002"} trailing',
        b'{"Part": "P0002", "Note": "\xff\xfe"} \xff',  # not UTF-8, and not JSON either
        b"\x7fELF\x02\x01\x01\x00\xff\xfe",  # a binary file
        b'{"Part": "\\ud800"',  # cut short, with a lone surrogate
    ],
)
def test_a_line_that_is_not_json_stops_the_run_naming_file_and_line(
    config: dict, tmp_path: Path, bad_line: bytes
) -> None:
    path = tmp_path / "a.jsonl"
    path.write_bytes(dumps(parts(1)[0]).encode() + b"\n" + bad_line + b"\n")
    with pytest.raises(InvalidInputLine, match=re.escape(f"line 2 of batch file {path}")):
        run_lines(config, PARTS, batch("parts", path), state({"n": 1}))
    assert run_status(config) == [("failed", 0, 0)]
    assert rejects(config) == []
    assert query(config, "SELECT count(*) FROM {s}.parts") == [(0,)]
    assert path.exists()


def test_a_mapped_streams_line_that_is_not_json_stops_the_run_too(
    config: dict, tmp_path: Path
) -> None:
    config = {**config, "stream_maps": {"parts": {"__alias__": "spare_parts"}}}
    path = write_file(tmp_path / "a.jsonl", [parts(1)[0], "Host *\n  User root"])
    with pytest.raises(InvalidInputLine, match=re.escape(f"line 2 of batch file {path}")):
        run_lines(config, PARTS, batch("parts", path))
    assert rejects(config) == []


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"encoding": {"format": "parquet", "compression": None}}, "format 'parquet'"),
        ({"encoding": {"format": "jsonl", "compression": "bz2"}}, "compression 'bz2'"),
        ({"manifest": ["s3://bucket/a.jsonl"]}, "URL scheme 's3'"),
        ({"manifest": ["file://otherhost/tmp/a.jsonl"]}, "host 'otherhost'"),
        ({"manifest": ["{tmp}/missing.jsonl"]}, "missing.jsonl: the file does not exist"),
        ({"manifest": ["{tmp}"]}, ": not a regular file"),
        ({"manifest": "file:///tmp/a.jsonl"}, "'manifest' must be a list"),
    ],
)
def test_an_unsupported_batch_stops_the_run_with_a_clear_error(
    tmp_path: Path, change: dict, problem: str
) -> None:
    config = {"warehouse_url": f"duckdb:///{tmp_path / 'w.duckdb'}", "default_target_schema": "t"}
    message = batch("parts", write_file(tmp_path / "a.jsonl", parts(1)), **change)
    if isinstance(message["manifest"], list):
        message["manifest"] = [url.format(tmp=tmp_path.as_uri()) for url in message["manifest"]]
    with pytest.raises(BatchFileError, match="stream 'parts'") as raised:
        run_lines(config, PARTS, message)
    assert problem in str(raised.value)


@pytest.mark.parametrize(
    ("compressed", "compression", "problem"),
    [
        (True, None, "the file is gzip-compressed but the BATCH message says compression none"),
        (False, "gzip", "the file is not gzip-compressed but the BATCH message says gzip"),
    ],
)
def test_a_compression_mix_up_is_named(
    tmp_path: Path, compressed: bool, compression: str | None, problem: str
) -> None:
    config = {"warehouse_url": f"duckdb:///{tmp_path / 'w.duckdb'}", "default_target_schema": "t"}
    path = write_file(tmp_path / "a.jsonl", parts(2), compressed=compressed)
    with pytest.raises(BatchFileError, match=f"batch file {re.escape(str(path))}: {problem}"):
        run_lines(config, PARTS, batch("parts", path, compression=compression))


def test_the_cli_exits_non_zero_with_no_state_past_a_missing_file(tmp_path: Path) -> None:
    config_file = tmp_path / "config.json"
    config_file.write_text(
        json.dumps({"warehouse_url": f"duckdb:///{tmp_path / 'w.duckdb'}"}), encoding="utf-8"
    )
    good = write_file(tmp_path / "good.jsonl", parts(2))
    text = singer_text(
        PARTS,
        batch("parts", good),
        state({"n": 1}),
        schema("other", {"Id": {"type": "string"}}, ["Id"]),  # waits for the loader thread
        batch("parts", tmp_path / "gone.jsonl"),
        state({"n": 2}),
    )
    cli = subprocess.run(
        [sys.executable, "-c", CLI, "--config", str(config_file)],
        input=text,
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert cli.returncode != 0
    # good.jsonl's records were committed at the end of its BATCH message, then deleted
    assert cli.stdout.splitlines() == ['{"n":1}']
    assert not good.exists()
    assert f"batch file {tmp_path / 'gone.jsonl'}: the file does not exist" in cli.stderr
    assert "Traceback" not in cli.stderr


# Deleting the files -----------------------------------------------------------------------


def test_files_go_once_their_records_are_committed_and_a_failed_run_keeps_the_rest(
    config: dict, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    config = {**config, "batch_size_rows": 2}
    first = write_file(tmp_path / "1.jsonl", parts(2))  # fills a batch: committed
    second = write_file(tmp_path / "2.jsonl", parts(2, start=2))  # the next batch
    third = write_file(tmp_path / "3.jsonl", [parts(1, start=4)[0], "not json"])
    with pytest.raises(InvalidInputLine, match="line 2 of batch file"):
        run_lines(config, PARTS, batch("parts", first, second, third))
    # the first file's batch committed before the failure (the second one's submit
    # waited for it); the second's may have committed before the run stopped
    assert not first.exists()
    assert third.exists()  # its first record was never committed
    loaded = {p for (p,) in query(config, "SELECT part FROM {s}.parts")}
    assert {"P0000", "P0001"} <= loaded  # a deleted file's records are all in
    if not second.exists():
        assert {"P0002", "P0003"} <= loaded
    assert "P0004" not in loaded
    assert f"Deleted batch file {first}: its 2 records are committed" in caplog.text
    kept = [str(p) for p in (first, second, third) if p.exists()]
    assert (
        f"keeping {len(kept)} batch file(s) whose records are not all committed: "
        f"{', '.join(kept)}" in caplog.text
    )


def test_a_file_goes_once_committed_though_no_more_input_comes(
    config: dict, tmp_path: Path
) -> None:
    """A tap that bounds its files on disk waits for the target to delete one before it
    writes more, so the target must not wait for more input to commit and delete: the
    records of a BATCH message are committed at its end (the batch need not be full),
    and the loader thread deletes the file right after that commit."""
    config_file = tmp_path / "config.json"
    config_file.write_text(json.dumps(config), encoding="utf-8")
    files = [write_file(tmp_path / f"{n}.jsonl", parts(3, start=3 * n)) for n in range(2)]
    target = subprocess.Popen(
        [sys.executable, "-c", CLI, "--config", str(config_file)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    assert target.stdin is not None
    try:
        target.stdin.write(singer_text(PARTS, batch("parts", files[0])))
        target.stdin.flush()  # and no more input for now
        assert wait_until(lambda: not files[0].exists(), seconds=60)
        if not config["warehouse_url"].startswith("duckdb"):  # one process per DuckDB file
            assert query(config, "SELECT count(*) FROM {s}.parts") == [(3,)]
        target.stdin.write(singer_text(batch("parts", files[1]), state({"n": 1})))
        target.stdin.flush()
        assert wait_until(lambda: not files[1].exists(), seconds=60)
        stdout, stderr = target.communicate(timeout=120)
    finally:
        target.kill()
    assert target.returncode == 0, stderr[-2000:]
    assert stdout.splitlines() == ['{"n":1}']
    assert query(config, "SELECT count(*) FROM {s}.parts") == [(6,)]


def wait_until(condition: t.Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_an_overwrite_keeps_its_files_until_the_new_table_is_swapped_in(
    config: dict, tmp_path: Path
) -> None:
    """Committed into the shadow table is not safe yet: a failed run drops the shadow."""
    config = {**config, "batch_size_rows": 2, "load_method": "overwrite"}
    first = write_file(tmp_path / "1.jsonl", parts(2))
    second = write_file(tmp_path / "2.jsonl", parts(2, start=2))
    third = write_file(tmp_path / "3.jsonl", [parts(1, start=4)[0], "not json"])
    with pytest.raises(InvalidInputLine):
        run_lines(config, PARTS, batch("parts", first, second, third))
    assert first.exists() and second.exists() and third.exists()
    run_lines(config, PARTS, batch("parts", first, second))
    assert not first.exists() and not second.exists()
    assert query(config, "SELECT count(*) FROM {s}.parts") == [(4,)]


def test_files_are_kept_with_delete_batch_files_off(config: dict, tmp_path: Path) -> None:
    config = {**config, "delete_batch_files": False, "batch_size_rows": 2}
    paths = [write_file(tmp_path / f"{i}.jsonl", parts(3, start=3 * i)) for i in range(3)]
    run_lines(config, PARTS, batch("parts", *paths), state({"n": 1}))
    assert all(p.exists() for p in paths)
    assert query(config, "SELECT count(*) FROM {s}.parts") == [(9,)]


def test_state_after_a_batch_waits_for_the_files_records_to_commit(
    config: dict, tmp_path: Path
) -> None:
    """STATE after a BATCH goes out only with the commit of the file's records: a run
    that fails before that commit emits none, and keeps the file. The records of a
    BATCH message are committed at its end, even a batch that is not full."""
    path = write_file(tmp_path / "a.jsonl", parts(3))
    broken = write_file(tmp_path / "b.jsonl", ["not json"])
    emitted, error = run_failing(config, PARTS, batch("parts", path, broken), state({"n": 1}))
    assert isinstance(error, InvalidInputLine)
    assert emitted == []
    assert path.exists()
    assert query(config, "SELECT count(*) FROM {s}.parts") == [(0,)]
    # The BATCH message complete: its records committed, the STATE goes out after them.
    messages = (
        PARTS,
        batch("parts", path),
        state({"n": 1}),
        schema("other", {"Id": {"type": "string"}}, ["Id"]),  # waits for the loader thread
        batch("parts", "file:///gone"),
    )
    emitted, error = run_failing(config, *messages)
    assert isinstance(error, BatchFileError)
    assert emitted == [{"n": 1}]
    assert not path.exists()
    assert query(config, "SELECT count(*) FROM {s}.parts") == [(3,)]
    [(last_state,)] = query(
        config, "SELECT CAST(last_state AS VARCHAR) FROM {s}._load_runs WHERE records_in = 3"
    )
    assert json.loads(last_state) == {"n": 1}


def test_a_line_that_is_not_utf8_is_one_reject_naming_the_file_and_line(
    config: dict, tmp_path: Path
) -> None:
    path = tmp_path / "a.jsonl"
    path.write_bytes(
        (dumps(parts(1)[0]) + "\n").encode()
        + '{"Part": "P0002", "Note": "café"}\n'.encode("latin-1")  # é as the byte 0xe9
        + (dumps(parts(1, start=3)[0]) + "\n").encode()
    )
    assert run_lines(config, PARTS, batch("parts", path), state({"n": 1})) == [{"n": 1}]
    assert [p for (p,) in query(config, "SELECT part FROM {s}.parts ORDER BY 1")] == [
        "P0000",
        "P0003",
    ]
    [(line, reason, raw)] = rejects(config)
    assert line == 2
    assert reason.startswith(f"batch file {path}, line 2: the record is not valid UTF-8: ")
    assert "byte 0xe9 at offset 30" in reason
    assert raw == '{"Part": "P0002", "Note": "caf\ufffd"}'


def test_wide_records_in_files_make_smaller_batches_too(config: dict, tmp_path: Path) -> None:
    """As on stdin (test_target.py): rows per batch follow `batch_size_bytes` once 1,000
    records are in; the block that brought them in goes as one batch."""
    notes = schema("notes", {"id": {"type": "integer"}, "note": {"type": "string"}}, ["id"])
    records = [{"id": 10_000 + i, "note": "x" * 180} for i in range(1_750)]
    rows = 21_000 // len(dumps(records[0]))
    first = write_file(tmp_path / "1.jsonl", records[:1_250])
    second = write_file(tmp_path / "2.jsonl", records[1_250:])
    wide = {**config, "batch_size_bytes": 21_000}
    run_lines(wide, notes, batch("notes", first, second))
    sizes = batch_sizes(wide)
    assert sizes[0] == 1_250 and sizes[1:-1] == [rows] * (len(sizes) - 2)
    assert 0 < sizes[-1] <= rows and sum(sizes) == 1_750


def test_a_file_fills_batches_in_order_across_its_blocks_and_one_bad_line_is_one_reject(
    config: dict, tmp_path: Path
) -> None:
    """A file's lines are decoded a block at a time; the sink's batches still close at
    `batch_size_rows`, arrival order (`_sdc_sequence`) is the file's order, and a bad
    line among good ones costs only itself."""
    lines: list[dict | str] = [*parts(25)]
    lines[12] = '{"Part": "P0012", "Qty": "twelve"}'
    path = write_file(tmp_path / "a.jsonl", lines)
    small = {**config, "batch_size_rows": 10}
    assert run_lines(small, PARTS, batch("parts", path), state({"n": 1})) == [{"n": 1}]
    sizes = "SELECT records_in, rows_rejected FROM {s}._load_batches ORDER BY committed_at"
    assert [tuple(r) for r in query(config, sizes)] == [(10, 0), (10, 1), (5, 0)]
    ordered = query(config, "SELECT part FROM {s}.parts ORDER BY _sdc_sequence")
    assert [p for (p,) in ordered] == [f"P{i:04d}" for i in range(25) if i != 12]
    assert [line for line, _, _ in rejects(config)] == [13]

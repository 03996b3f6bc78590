"""Every setting `tap-ifscloud --about` advertises does what it says, SDK built-ins included.

The tap's record fast path (tap_ifscloud/sdk_adapter.py) bypasses the SDK's own record
path, so stream maps, flattening, batch files and catalog deselection are checked here
end to end against the IFS sandbox.
"""

from __future__ import annotations

import copy
import gzip
import json
from decimal import Decimal
from pathlib import Path
from urllib.parse import unquote, urlsplit

from tap_ifscloud.etag import decode_objversion
from tap_ifscloud.streams import BUILTIN_STREAMS, FULL_TABLE
from tap_ifscloud.tap import TapIFSCloud

from .conftest import by_key, expected_records, run_cli, run_tap, tap_config

KEYS = {d.name: list(d.key_properties) for d in BUILTIN_STREAMS}
TAP_SETTINGS = {
    "max_pending_batch_files",
    "base_url",
    "realm",
    "token_url",
    "client_id",
    "client_secret",
    "scope",
    "companies",
    "start_date",
    "page_size",
    "lookback_days",
    "lookback_minutes",
    "max_retries",
    "max_backoff_seconds",
    "request_timeout",
    "stream_overrides",
    "custom_streams",
    "path_prefix",
    "allow_insecure_http",
    "offline_discovery",
}
SDK_SETTINGS = {  # each one is exercised below
    "stream_maps",
    "stream_map_config",
    "flattening_enabled",
    "flattening_max_depth",
    "flattening_max_key_length",
    "flattening_separator",
    "batch_config",
}


def test_about_advertises_exactly_the_settings_that_work(tmp_path):
    about = run_cli(["--about", "--format", "json"], None, tmp_path)
    assert about.returncode == 0, about.stderr[-2000:]
    settings = set(json.loads(about.stdout)["settings"]["properties"])
    # faker_config is left out: Faker is not installed with the tap
    assert settings == TAP_SETTINGS | SDK_SETTINGS


def test_stream_maps_rename_filter_compute_and_drop(shared_sandbox):
    config = tap_config(
        shared_sandbox,
        companies=["US01"],
        stream_maps={
            "gl_accounts": {
                "__alias__": "accounts",
                "__filter__": "AccntType in ('R', 'C')",
                "source_system": "config['source_system']",
                "Description": "__NULL__",
            },
            "__else__": "__NULL__",
        },
        stream_map_config={"source_system": "ifs-prod"},
    )
    run = run_tap(config)
    assert {m["stream"] for m in run.messages if "stream" in m} == {"accounts"}
    [schema] = [m for m in run.messages if m["type"] == "SCHEMA"]
    assert "Description" not in schema["schema"]["properties"]
    assert "source_system" in schema["schema"]["properties"]
    expected = {
        key: row
        for key, row in expected_records(shared_sandbox, "gl_accounts", ("US01",)).items()
        if row["AccntType"] in ("R", "C")
    }
    records = run.records("accounts")
    assert expected
    assert set(by_key(records, KEYS["gl_accounts"])) == set(expected)
    assert all(r["source_system"] == "ifs-prod" and "Description" not in r for r in records)
    types = run.types("accounts")
    assert types[:2] == ["SCHEMA", "ACTIVATE_VERSION"]
    assert types[-1] == "ACTIVATE_VERSION"  # the full table's closing version, under the alias


def test_flattening_expands_nested_properties(shared_sandbox):
    config = tap_config(
        shared_sandbox,
        companies=["US01"],
        stream_maps={"gl_accounts": {"snapshot": "record"}, "__else__": "__NULL__"},
        flattening_enabled=True,
        flattening_max_depth=1,
        flattening_separator="__",
    )
    run = run_tap(config)
    [schema] = [m for m in run.messages if m["type"] == "SCHEMA"]
    assert "snapshot__Account" in schema["schema"]["properties"]
    records = run.records("gl_accounts")
    assert records
    for record in records:
        assert "snapshot" not in record
        assert record["snapshot__Account"] == record["Account"]


def batch_records(manifest: list[str]) -> list[dict]:
    rows = []
    for url in manifest:
        with gzip.open(Path(unquote(urlsplit(url).path)), "rt", encoding="utf-8") as lines:
            rows += [json.loads(line, parse_float=Decimal) for line in lines]
    return rows


def test_batch_config_writes_every_row_to_batch_files(shared_sandbox, tmp_path):
    config = tap_config(
        shared_sandbox,
        companies=["US01"],
        page_size=30,
        max_pending_batch_files=0,  # no target here deletes the files
        batch_config={
            "encoding": {"format": "jsonl", "compression": "gzip"},
            "storage": {"root": f"file://{tmp_path}", "prefix": "batch-"},
            "batch_size": 40,
        },
    )
    run = run_tap(config)
    assert not [m for m in run.messages if m["type"] == "RECORD"]
    for definition in BUILTIN_STREAMS:
        name = definition.name
        messages = [m for m in run.messages if m.get("stream") == name]
        batches = [m for m in messages if m["type"] == "BATCH"]
        rows = batch_records([url for m in batches for url in m["manifest"]])
        expected = expected_records(shared_sandbox, name, ("US01",))
        got = by_key(rows, KEYS[name])
        assert len(got) == len(rows) and set(got) == set(expected), name
        for key, row in expected.items():
            record = dict(got[key])
            assert record.pop("_ifs_objversion") == decode_objversion(row["_ifs_etag"])
            assert record == row, (name, key)  # amounts to the last digit
        if definition.replication_mode == FULL_TABLE:
            # the closing ACTIVATE_VERSION comes after the last batch, not before it
            assert [m["type"] for m in messages][-2:] == ["BATCH", "ACTIVATE_VERSION"], name
        # STATE follows each batch
        for batch in batches:
            following = run.messages[run.messages.index(batch) + 1]
            assert following["type"] == "STATE", name


def test_batch_config_with_stream_maps_is_refused_clearly(shared_sandbox, tmp_path):
    config = tap_config(
        shared_sandbox,
        batch_config={"encoding": {"format": "jsonl"}, "storage": {"root": f"file://{tmp_path}"}},
        stream_maps={"gl_accounts": {"__alias__": "accounts"}},
    )
    result = run_cli([], config, tmp_path)
    assert result.returncode != 0
    assert "batch_config cannot be combined with stream_maps" in result.stderr
    assert "Traceback" not in result.stderr


def test_deselected_columns_are_neither_requested_nor_emitted(shared_sandbox):
    config = tap_config(shared_sandbox, companies=["US01"])
    catalog = copy.deepcopy(TapIFSCloud(config=config).catalog_dict)
    deselect = {
        "gl_accounts": {"Description", "_ifs_etag", "_ifs_objversion"},
        "cost_dimensions": {"Description", "code_part"},  # code_part is a key: stays
        "supplier_invoices": {"NetAmount", "LastModified"},  # LastModified: the bookmark, stays
    }
    for entry in catalog["streams"]:
        for item in entry["metadata"]:
            breadcrumb = item["breadcrumb"]
            if len(breadcrumb) == 2 and breadcrumb[1] in deselect.get(entry["tap_stream_id"], ()):
                item["metadata"]["selected"] = False
    logged = len(shared_sandbox.request_log)
    run = run_tap(config, catalog=catalog)

    accounts = run.records("gl_accounts")
    assert accounts
    assert all({"Description", "_ifs_etag", "_ifs_objversion"}.isdisjoint(r) for r in accounts)
    dimensions = run.records("cost_dimensions")
    assert dimensions
    assert all("Description" not in r and r["code_part"] for r in dimensions)
    invoices = run.records("supplier_invoices")
    assert invoices
    assert all("NetAmount" not in r and r["LastModified"] for r in invoices)
    assert all(r["_ifs_etag"] for r in invoices)

    selects = [
        unquote(path).split("$select=")[1].split("&")[0]
        for _, path, _ in shared_sandbox.request_log[logged:]
        if "Reference_Account?" in path or "ManSuppInvoiceSet?" in path
    ]
    assert selects
    assert all("Description" not in s and "NetAmount" not in s for s in selects)

"""target-looker end to end, in-process, against real DuckDB and PostgreSQL.

Every test runs once per warehouse (the `config` fixture).
"""

from __future__ import annotations

import datetime
import decimal
import importlib.metadata
import io
import json
import logging
import subprocess
import sys

import pytest
from singer_sdk.exceptions import ConfigValidationError, RecordsWithoutSchemaException
from singer_sdk.singerlib.exceptions import InvalidInputLine

from target_looker.target import TargetLooker
from target_looker.warehouse.base import WarehouseError

from .singer_io import batch_sizes, lines, query, record, run, schema, state

D = decimal.Decimal
UTC = datetime.timezone.utc
CLI = "from target_looker.target import TargetLooker; TargetLooker.cli()"

VOUCHER_PROPS = {
    "Company": {"type": "string", "maxLength": 20},
    "VoucherType": {"type": "string"},
    "AccountingYear": {"type": "integer"},
    "VoucherNo": {"type": "integer"},
    "RowNo": {"type": "integer"},
    "Amount": {"type": ["number", "null"]},
    "VoucherDate": {"type": ["string", "null"], "format": "date"},
    "EntryDate": {"type": ["string", "null"], "format": "date-time"},
    "Posted": {"type": ["boolean", "null"]},
    "Text": {"type": ["string", "null"]},
    "_ifs_etag": {"type": ["string", "null"]},
    "_ifs_objversion": {"type": ["string", "null"]},
}
VOUCHER_KEYS = ["Company", "VoucherType", "AccountingYear", "VoucherNo", "RowNo"]
VOUCHER_SCHEMA = schema(
    "voucher_rows", VOUCHER_PROPS, VOUCHER_KEYS, bookmark_properties=["VoucherDate"]
)
DATA_COLUMNS = (
    "company, voucher_type, accounting_year, voucher_no, row_no, amount, voucher_date, "
    "entry_date, posted, text, _ifs_objversion"
)


def voucher(row_no: int, objversion: str = "20260131100000", **values: object) -> dict:
    rec = {
        "Company": "US01",
        "VoucherType": "GL",
        "AccountingYear": 2026,
        "VoucherNo": 7,
        "RowNo": row_no,
        "Amount": D("100.25"),
        "VoucherDate": "2026-01-31",
        "EntryDate": "2026-01-31T10:00:00+02:00",
        "Posted": True,
        "Text": "row",
        "_ifs_etag": f'W/"{objversion}"',
        "_ifs_objversion": objversion,
    }
    rec.update(values)
    return record("voucher_rows", rec)


def singer(*messages: object) -> str:
    """Like `lines`, but Decimals go out as exact JSON numbers."""
    out = []
    for message in messages:
        if isinstance(message, str):
            out.append(message)
        else:
            out.append(json.dumps(message, default=_exact))
    return "".join(m.replace('"__D__', "").replace('__D__"', "") + "\n" for m in out)


def _exact(value: object) -> str:
    if isinstance(value, D):
        return f"__D__{value}__D__"
    raise TypeError(value)


def table(config: dict, columns: str = DATA_COLUMNS, name: str = "voucher_rows") -> list[tuple]:
    order = ", ".join(str(i + 1) for i in range(min(5, columns.count(",") + 1)))
    return query(config, f"SELECT {columns} FROM {{s}}.{name} ORDER BY {order}")  # noqa: S608


def run_totals(config: dict) -> list[tuple]:
    return query(
        config,
        "SELECT status, records_in, rows_inserted, rows_updated, rows_skipped, rows_rejected "
        "FROM {s}._load_runs ORDER BY started_at",
    )


# Exact values -----------------------------------------------------------------------------


def test_values_round_trip_exactly(config: dict) -> None:
    big = D("12345678901234567890.123456789")
    text = singer(
        VOUCHER_SCHEMA,
        voucher(1, Amount=big, Text="Grüße, 'quotes' \"and\" \\ tabs\t ✓ 简单"),
        voucher(2, Amount=D("-0.000001"), EntryDate="2026-06-30T23:59:59.123456-05:00"),
        voucher(3, Amount=None, VoucherDate=None, EntryDate=None, Posted=None, Text=None),
        voucher(4, Amount=D("1.50"), Posted=False, EntryDate="2026-01-01T00:00:00Z"),
    )
    run(config, text)
    rows = table(config)
    assert [r[4] for r in rows] == [1, 2, 3, 4]
    amounts = [r[5] for r in rows]
    assert amounts[0] == big and amounts[1] == D("-0.000001") and amounts[2] is None
    assert amounts[3] == D("1.5")
    assert rows[0][6] == datetime.date(2026, 1, 31)
    assert rows[0][7] == datetime.datetime(2026, 1, 31, 8, 0, tzinfo=UTC)
    assert rows[1][7] == datetime.datetime(2026, 7, 1, 4, 59, 59, 123456, tzinfo=UTC)
    assert rows[3][7] == datetime.datetime(2026, 1, 1, tzinfo=UTC)
    assert [r[8] for r in rows] == [True, True, None, False]
    assert rows[0][9] == "Grüße, 'quotes' \"and\" \\ tabs\t ✓ 简单"
    assert rows[2][6:10] == (None, None, None, None)


def test_metadata_columns_trace_every_row_to_its_run_and_batch(config: dict) -> None:
    run(config, singer(VOUCHER_SCHEMA, voucher(1), voucher(2)))
    [(run_id,)] = query(config, "SELECT run_id FROM {s}._load_runs")
    [(batch_id,)] = query(config, "SELECT batch_id FROM {s}._load_batches")
    rows = table(
        config,
        "company, voucher_type, accounting_year, voucher_no, row_no, _load_run_id, "
        "_load_batch_id, _ifs_etag, _sdc_received_at, _sdc_batched_at, _sdc_sequence, "
        "_sdc_deleted_at",
    )
    for row in rows:
        assert row[5:8] == (run_id, batch_id, 'W/"20260131100000"')
        assert row[8] is not None and row[9] is not None and row[10] > 0
        assert row[11] is None


# Upsert and the version guard ---------------------------------------------------------------


def test_replaying_the_same_input_gives_the_same_table(config: dict) -> None:
    text = singer(VOUCHER_SCHEMA, *(voucher(i, Amount=D(i) / 8) for i in range(1, 6)))
    run(config, text)
    first = table(config)
    run(config, text)
    assert table(config) == first
    assert run_totals(config) == [("succeeded", 5, 5, 0, 0, 0), ("succeeded", 5, 0, 5, 0, 0)]


def test_a_finished_run_refreshes_statistics_of_tables_it_loaded_in_bulk(
    config: dict, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from target_looker.warehouse import postgres

    monkeypatch.setattr(postgres, "STATISTICS_AFTER_ROWS", 3)  # a "bulk" of three rows
    caplog.set_level(logging.INFO)
    run(config, singer(VOUCHER_SCHEMA, *(voucher(i) for i in range(1, 4))))
    refreshed = [r.getMessage() for r in caplog.records if "planner's statistics" in r.message]
    if config["warehouse_url"].startswith("postgresql"):
        assert refreshed == ["Refreshed the planner's statistics of voucher_rows"]
        sql = "SELECT reltuples FROM pg_class WHERE oid = '{s}.voucher_rows'::regclass"
        (tuples,) = query(config, sql)
        assert tuples == (3,)
    else:
        assert refreshed == []  # DuckDB keeps its own statistics


NOTES = schema("notes", {"id": {"type": "integer"}, "note": {"type": "string"}}, ["id"])


def test_wide_records_make_smaller_batches_so_memory_follows_batch_size_bytes(
    config: dict,
) -> None:
    """A tenant's custom fields can make records many times wider than ours: once 1,000
    records of a stream are in, its rows per batch are set so that a batch holds about
    `batch_size_bytes` of their JSON (the open batch, already past that, goes at once)."""
    notes = [{"id": 10_000 + i, "note": "x" * 180} for i in range(1_250)]
    width = len(json.dumps(notes[0]))  # every record has the same width
    rows = 21_000 // width
    wide = {**config, "batch_size_bytes": 21_000}
    run(wide, lines(NOTES, *(record("notes", n) for n in notes)))
    sizes = batch_sizes(wide)
    assert 50 < rows < 200
    assert sizes[0] == 1_000 and sizes[1:-1] == [rows] * (len(sizes) - 2)
    assert 0 < sizes[-1] <= rows and sum(sizes) == 1_250
    assert query(wide, "SELECT count(*) FROM {s}.notes") == [(1_250,)]


def test_narrow_records_keep_batch_size_rows(config: dict) -> None:
    notes = [{"id": i, "note": "x"} for i in range(2_500)]
    narrow = {**config, "batch_size_rows": 1_200}
    run(narrow, lines(NOTES, *(record("notes", n) for n in notes)))
    assert batch_sizes(narrow) == [1_200, 1_200, 100]


def test_an_older_version_never_replaces_a_newer_one(config: dict) -> None:
    run(config, singer(VOUCHER_SCHEMA, voucher(1, "20260201000000", Amount=D("2"))))
    run(config, singer(VOUCHER_SCHEMA, voucher(1, "20260101000000", Amount=D("1"))))
    assert [r[5] for r in table(config)] == [D("2")]
    batches = query(
        config,
        "SELECT records_in, rows_inserted, rows_updated, rows_skipped, rows_rejected "
        "FROM {s}._load_batches ORDER BY committed_at",
    )
    assert batches == [(1, 1, 0, 0, 0), (1, 0, 0, 1, 0)]


def test_integer_counters_compare_as_numbers(config: dict) -> None:
    run(config, singer(VOUCHER_SCHEMA, voucher(1, "10", Amount=D("10"))))
    run(config, singer(VOUCHER_SCHEMA, voucher(1, "9", Amount=D("9"))))
    run(config, singer(VOUCHER_SCHEMA, voucher(1, "11", Amount=D("11"))))
    assert [r[5] for r in table(config)] == [D("11")]


def test_within_a_batch_the_newest_version_wins_and_equal_versions_keep_the_last(
    config: dict,
) -> None:
    run(
        config,
        singer(
            VOUCHER_SCHEMA,
            voucher(1, "20260102000000", Amount=D("2")),
            voucher(1, "20260101000000", Amount=D("1")),  # older: never wins
            voucher(2, "5", Amount=D("5")),
            voucher(2, "5", Amount=D("6")),  # same version: the last one
        ),
    )
    assert [r[5] for r in table(config)] == [D("2"), D("6")]
    assert run_totals(config) == [("succeeded", 4, 2, 0, 2, 0)]


def test_streams_without_versions_are_last_write_wins(config: dict) -> None:
    accounts = schema(
        "accounts", {"Account": {"type": "string"}, "Name": {"type": "string"}}, ["Account"]
    )
    run(config, lines(accounts, record("accounts", {"Account": "1", "Name": "a"})))
    run(config, lines(accounts, record("accounts", {"Account": "1", "Name": "b"})))
    assert table(config, "account, name", "accounts") == [("1", "b")]


# Load methods --------------------------------------------------------------------------------


def test_append_only_keeps_every_record(config: dict) -> None:
    config = {**config, "load_method": "append-only"}
    text = singer(VOUCHER_SCHEMA, voucher(1), voucher(1))
    run(config, text)
    run(config, text)
    assert len(table(config)) == 4


def test_overwrite_replaces_the_table_contents(config: dict) -> None:
    run(config, singer(VOUCHER_SCHEMA, voucher(1), voucher(2)))
    run({**config, "load_method": "overwrite"}, singer(VOUCHER_SCHEMA, voucher(3)))
    assert [r[4] for r in table(config)] == [3]


# STATE --------------------------------------------------------------------------------------


def test_state_follows_each_committed_batch(config: dict) -> None:
    config = {**config, "batch_size_rows": 2}
    text = singer(
        VOUCHER_SCHEMA,
        voucher(1),
        state({"n": 1}),
        voucher(2),
        state({"n": 2}),
        voucher(3),
        state({"n": 3}),
    )
    # Batch 1 (rows 1-2) is handed over when row 2 arrives: after it commits, n=1 is
    # safe, or n=2 if that has arrived by then (the newer one supersedes). n=3 waits
    # for batch 2 (row 3), committed at the end of input.
    emitted = run(config, text)
    assert emitted in ([{"n": 1}, {"n": 2}, {"n": 3}], [{"n": 2}, {"n": 3}])
    [(last,)] = query(config, "SELECT CAST(last_state AS VARCHAR) FROM {s}._load_runs")
    assert json.loads(last) == {"n": 3}


def test_state_with_nothing_pending_is_passed_on(config: dict) -> None:
    assert run(config, lines(state({"a": 1}))) == [{"a": 1}]


def test_state_keeps_exact_decimals(config: dict) -> None:
    text = singer(VOUCHER_SCHEMA, voucher(1), state({"bookmark": D("1.10")}))
    out = io.StringIO()
    import contextlib

    with contextlib.redirect_stdout(out):
        TargetLooker(config=config).listen(io.StringIO(text))
    assert out.getvalue() == '{"bookmark":1.10}\n'


# Bad input ------------------------------------------------------------------------------------


def test_uncastable_values_are_rejected_and_the_rest_of_the_batch_loads(config: dict) -> None:
    text = singer(
        VOUCHER_SCHEMA,
        voucher(1),
        voucher(2, Amount="not a number"),
        voucher(3, VoucherDate="2026-02-30"),
        voucher(4, Company="X" * 21),  # longer than maxLength 20: never truncated
        voucher(5, AccountingYear=2**63),  # does not fit BIGINT
        voucher(6),
    )
    run(config, text)
    assert [r[4] for r in table(config)] == [1, 6]
    rejects = query(config, "SELECT reason, CAST(record AS VARCHAR) FROM {s}._load_rejects")
    reasons = " | ".join(r[0] for r in rejects)
    assert len(rejects) == 4
    assert "Amount" in reasons and "VoucherDate" in reasons and "maxLength 20" in reasons
    assert {json.loads(r[1])["RowNo"] for r in rejects} == {2, 3, 4, 5}
    assert run_totals(config) == [("succeeded", 6, 2, 0, 0, 4)]


def test_a_record_before_its_schema_is_an_error(config: dict) -> None:
    with pytest.raises(RecordsWithoutSchemaException, match="voucher_rows"):
        run(config, singer(voucher(1)))


def test_a_record_without_a_key_is_rejected_and_the_run_goes_on(config: dict) -> None:
    """Missing key: one bad record, not broken protocol (SPEC 5.2); more in test_bad_records."""
    missing = voucher(2)
    del missing["record"]["RowNo"]
    text = singer(VOUCHER_SCHEMA, voucher(1), state({"n": 1}), missing, state({"n": 2}), voucher(3))
    assert run(config, text)[-1] == {"n": 2}
    assert [r[4] for r in table(config)] == [1, 3]
    [(line, reason)] = query(config, "SELECT input_line, reason FROM {s}._load_rejects")
    assert line == 4 and "RowNo" in reason
    assert run_totals(config) == [("succeeded", 3, 2, 0, 0, 1)]


def test_a_null_key_is_rejected(config: dict) -> None:
    run(config, singer(VOUCHER_SCHEMA, voucher(1), voucher(2, RowNo=None)))
    assert [r[4] for r in table(config)] == [1]
    [(line, reason)] = query(config, "SELECT input_line, reason FROM {s}._load_rejects")
    assert line == 3 and "RowNo" in reason


def test_malformed_json_is_a_clear_error(config: dict) -> None:
    text = (
        singer(VOUCHER_SCHEMA, voucher(1)) + '{"type": "RECORD", "stream": "voucher_rows", "rec\n'
    )
    with pytest.raises(InvalidInputLine, match="input line 3"):
        run(config, text)
    [(status,)] = query(config, "SELECT status FROM {s}._load_runs")
    assert status == "failed"


def test_a_new_column_mid_stream_is_added(config: dict) -> None:
    wider = schema("voucher_rows", {**VOUCHER_PROPS, "CodeB": {"type": "string"}}, VOUCHER_KEYS)
    run(config, singer(VOUCHER_SCHEMA, voucher(1), wider, voucher(2, CodeB="B1")))
    assert table(config, "row_no, code_b") == [(1, None), (2, "B1")]
    assert run_totals(config) == [("succeeded", 2, 2, 0, 0, 0)]


def test_a_longer_varchar_widens_the_column(config: dict) -> None:
    wider = {**VOUCHER_PROPS, "Company": {"type": "string", "maxLength": 40}}
    run(config, singer(VOUCHER_SCHEMA, voucher(1)))
    run(config, singer(schema("voucher_rows", wider, VOUCHER_KEYS), voucher(2, Company="Y" * 40)))
    assert len(table(config)) == 2


def test_an_incompatible_type_change_is_refused(config: dict) -> None:
    changed = {**VOUCHER_PROPS, "Posted": {"type": ["string", "null"], "format": "date"}}
    run(config, singer(VOUCHER_SCHEMA, voucher(1)))
    with pytest.raises(WarehouseError, match=r"posted.*BOOLEAN.*DATE"):
        run(config, singer(schema("voucher_rows", changed, VOUCHER_KEYS), voucher(2)))
    assert len(table(config)) == 1


def test_unknown_fields_are_reported_and_the_record_loads(
    config: dict, caplog: pytest.LogCaptureFixture
) -> None:
    run(config, singer(VOUCHER_SCHEMA, voucher(1, Surprise="x")))
    assert len(table(config)) == 1
    assert "'Surprise' is not in the schema" in caplog.text


# Names ------------------------------------------------------------------------------------------


def test_identifiers_survive_quoting_with_preserve(config: dict) -> None:
    config = {**config, "column_naming": "preserve"}
    odd = {
        "select": {"type": "string"},
        'quote"d': {"type": "string"},
        "with space.and dot": {"type": "integer"},
        "Größe": {"type": "string"},
    }
    text = lines(
        schema('My "Stream".x', odd, ["select"]),
        record(
            'My "Stream".x', {"select": "k", 'quote"d': "q", "with space.and dot": 1, "Größe": "ß"}
        ),
    )
    run(config, text)
    rows = query(
        config,
        'SELECT "select", "quote""d", "with space.and dot", "Größe" FROM {s}."My ""Stream"".x"',
    )
    assert rows == [("k", "q", 1, "ß")]


def test_snake_case_collisions_are_an_error(config: dict) -> None:
    clash = schema("s", {"CodeB": {"type": "string"}, "code_b": {"type": "string"}}, [])
    with pytest.raises(ValueError, match="'CodeB' and 'code_b' both map to column 'code_b'"):
        run(config, lines(clash))


def test_looker_sql_runner_write_path_needs_the_looker_settings(config: dict) -> None:
    with pytest.raises(ConfigValidationError, match="looker_connection_name"):
        TargetLooker(config={**config, "write_path": "looker_sql_runner"})


def test_malformed_looker_settings_fail_before_any_data_moves(config: dict) -> None:
    with pytest.raises(ConfigValidationError, match="must be written model::datagroup"):
        TargetLooker(config={**config, "looker_datagroups": ["no-separator"]})


# Full-table streams -------------------------------------------------------------------------


def _full_table(version: int, *accounts: str) -> list[dict]:
    props = {"Account": {"type": "string"}}
    return [
        schema("accounts", props, ["Account"]),
        {"type": "ACTIVATE_VERSION", "stream": "accounts", "version": version},
        *(record("accounts", {"Account": a}, version=version) for a in accounts),
    ]


def test_activate_version_soft_deletes_rows_missing_from_a_full_sync(config: dict) -> None:
    run(config, lines(*_full_table(1, "1", "2", "3")))
    run(config, lines(*_full_table(2, "1", "3")))
    rows = table(config, "account, _sdc_deleted_at IS NOT NULL, _sdc_table_version", "accounts")
    assert rows == [("1", False, 2), ("2", True, 1), ("3", False, 2)]


def test_activate_version_hard_delete(config: dict) -> None:
    config = {**config, "hard_delete": True}
    run(config, lines(*_full_table(1, "1", "2")))
    run(config, lines(*_full_table(2, "2")))
    assert table(config, "account", "accounts") == [("2",)]


def test_a_finished_stream_does_not_hold_back_state(config: dict) -> None:
    config = {**config, "batch_size_rows": 2}
    a = schema("a", {"id": {"type": "integer"}}, ["id"])
    b = schema("b", {"id": {"type": "integer"}}, ["id"])
    text = lines(
        a,
        b,
        record("a", {"id": 1}),
        state({"s": 1}),
        record("b", {"id": 1}),
        record("b", {"id": 2}),
        state({"s": 2}),  # the tap has moved on from `a`: its partial batch commits now
        record("b", {"id": 3}),
        record("b", {"id": 4}),
        state({"s": 3}),
        record("b", {"id": 5}),
    )
    assert run(config, text) == [{"s": 2}, {"s": 3}]
    assert table(config, "id", "b") == [(1,), (2,), (3,), (4,), (5,)]


# What the SDK sees ---------------------------------------------------------------------------


def record_counts(caplog: pytest.LogCaptureFixture) -> dict[str, int]:
    """Sum of the SDK's `record_count` metric lines, per stream."""
    counts: dict[str, int] = {}
    for entry in caplog.records:
        message = entry.getMessage()
        if entry.name == "singer_sdk.metrics" and message.startswith("METRIC: "):
            point = json.loads(message.removeprefix("METRIC: "))
            if point["metric"] == "record_count":
                stream = point["tags"]["stream"]
                counts[stream] = counts.get(stream, 0) + point["value"]
    return counts


def test_the_sdk_record_count_metric_counts_every_record(
    config: dict, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="singer_sdk.metrics")
    config = {**config, "batch_size_rows": 2}
    wider = schema("voucher_rows", {**VOUCHER_PROPS, "CodeB": {"type": "string"}}, VOUCHER_KEYS)
    accounts = schema("accounts", {"Account": {"type": "string"}}, ["Account"])
    text = singer(
        VOUCHER_SCHEMA,
        accounts,
        *(voucher(i) for i in range(1, 4)),
        voucher(4, Amount="not a number"),  # rejected, but received
        wider,  # a new sink for the stream: the old one's count is logged too
        voucher(5, CodeB="B"),
        *(record("accounts", {"Account": str(i)}) for i in range(3)),
        record("accounts", {"Name": "no key"}),  # rejected: no key
        '{"type": "RECORD", "stream": "accounts", "record": {"Account": "\\ud800"}}',
        state({"n": 1}),
    )
    run(config, text)
    assert record_counts(caplog) == {"voucher_rows": 5, "accounts": 5}
    [(records_in, inserted, updated, skipped, rejected)] = query(
        config,
        "SELECT records_in, rows_inserted, rows_updated, rows_skipped, rows_rejected "
        "FROM {s}._load_runs",
    )
    assert (records_in, inserted, updated, skipped, rejected) == (10, 7, 0, 0, 3)
    [(batch_records,)] = query(config, "SELECT sum(records_in) FROM {s}._load_batches")
    assert batch_records == records_in == inserted + updated + skipped + rejected


def test_about_offers_only_settings_the_target_honours() -> None:
    about = subprocess.run(
        [sys.executable, "-c", CLI, "--about", "--format", "json"],
        capture_output=True,
        check=True,
        text=True,
    )
    settings = set(json.loads(about.stdout)["settings"]["properties"])
    assert "add_record_metadata" not in settings  # metadata columns are always written
    assert settings == {
        *("warehouse_url", "column_naming", "default_target_schema", "load_method"),
        *("write_path", "batch_size_rows", "hard_delete", "lookml_dir"),
        *("delete_batch_files", "batch_size_bytes"),
        *("bigquery_service_account_key", "bigquery_api_endpoint", "bigquery_timeout_seconds"),
        *("snowflake_private_key", "snowflake_private_key_passphrase"),
        *("looker_base_url", "looker_client_id", "looker_client_secret"),
        *("looker_connection_name", "looker_datagroups", "looker_pdts"),
        *("looker_max_retries", "looker_max_backoff_seconds"),
        "process_activate_version_messages",
        *("stream_maps", "stream_map_config", "faker_config"),
    }


def test_about_shows_the_package_version() -> None:
    about = subprocess.run(
        [sys.executable, "-c", CLI, "--about", "--format", "json"],
        capture_output=True,
        check=True,
        text=True,
    )
    version = json.loads(about.stdout)["version"]
    assert version == importlib.metadata.version("ifs-looker-connector")
    assert "could not be detected" not in version


@pytest.mark.parametrize("size", [0, -1])
def test_batch_size_rows_below_one_is_refused(config: dict, size: int, tmp_path) -> None:
    with pytest.raises(ConfigValidationError) as refused:
        TargetLooker(config={**config, "batch_size_rows": size})
    assert "batch_size_rows" in " ".join(refused.value.errors)
    with pytest.raises(ConfigValidationError, match="batch_size_rows must be a whole number"):
        TargetLooker(config={**config, "batch_size_rows": size}, validate_config=False)
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps({**config, "batch_size_rows": size}))
    cli = subprocess.run(
        [sys.executable, "-c", CLI, "--config", str(config_path)],
        input="",
        capture_output=True,
        text=True,
    )
    assert cli.returncode != 0
    assert "batch_size_rows" in cli.stderr + cli.stdout


def test_add_record_metadata_is_ignored_with_a_warning(
    config: dict, caplog: pytest.LogCaptureFixture
) -> None:
    run({**config, "add_record_metadata": False}, singer(VOUCHER_SCHEMA, voucher(1)))
    assert "'add_record_metadata' is ignored" in caplog.text
    [row] = table(config, "row_no, _sdc_received_at IS NOT NULL, _load_run_id IS NOT NULL")
    assert row == (1, True, True)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("bigquery://my-project/findata", "findata"),
        ("snowflake://loader:pw@acme-eu/FINANCE/IFS", "IFS"),
        ("bigquery://my-project", "ifs_cloud"),
        ("duckdb:///warehouse.duckdb", "ifs_cloud"),
        ("postgresql://loader@127.0.0.1:5432/finance", "ifs_cloud"),
    ],
)
def test_the_target_schema_is_the_setting_else_the_one_the_url_names(url: str, expected: str):
    """A BigQuery dataset or Snowflake schema in warehouse_url is where data goes unless
    default_target_schema says otherwise: never a silent `ifs_cloud` beside it."""
    assert TargetLooker(config={"warehouse_url": url}).session.target_schema == expected
    configured = {"warehouse_url": url, "default_target_schema": "reporting"}
    assert TargetLooker(config=configured).session.target_schema == "reporting"

"""BigQuery: the statements the dialect generates, and the target end to end against
bqemulator (started here) through the official google-cloud-bigquery client.

What the emulator cannot prove is checked at the SQL/request level here and listed in the
README for `ifs-looker check` on the real service: BIGNUMERIC columns (bqemulator fails
creating one through the API), PRIMARY KEY ... NOT ENFORCED constraints (it drops them),
transaction isolation between sessions and concurrent-update aborts.
"""

# ruff: noqa: S608 - test SQL over fixed identifiers

from __future__ import annotations

import datetime
import decimal
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest

from ifs_looker_core import encrypted_settings
from target_looker.columns import BIGINT, JSON, TEXT, Column, SqlType
from target_looker.rejects import replay
from target_looker.warehouse import open_warehouse
from target_looker.warehouse.base import Batch, TableRef, WarehouseError
from target_looker.warehouse.bigquery import (
    BigQueryWarehouse,
    decimal_problem,
    json_number_problem,
    multi_row_insert,
    translate,
)
from tests import emulators
from tests.emulators import Rig, voucher, voucher_schema
from tests.target_looker.singer_io import lines, record, run, schema, state

D = decimal.Decimal
UTC = datetime.timezone.utc
URL = "bigquery://proj/ds?api_endpoint=http://127.0.0.1:1"


def dialect(url: str = URL, settings: dict | None = None) -> BigQueryWarehouse:
    warehouse = open_warehouse(url, settings)
    assert isinstance(warehouse, BigQueryWarehouse)
    return warehouse


# The statements (no emulator) ---------------------------------------------------------------------


def test_money_is_numeric_or_bignumeric_when_the_schema_needs_more_scale() -> None:
    wh = dialect()
    assert wh.render_type(SqlType("numeric")) == "NUMERIC"
    assert wh.render_type(SqlType("numeric", scale=2)) == "NUMERIC"
    assert wh.render_type(SqlType("numeric", scale=12)) == "BIGNUMERIC"
    assert wh.widened(SqlType("numeric", scale=9), SqlType("numeric", scale=12)) == SqlType(
        "numeric", scale=38
    )
    assert wh.widened(SqlType("bigint"), SqlType("numeric")) == SqlType("numeric", scale=9)
    assert wh.render_type(SqlType("timestamptz")) == "TIMESTAMP"
    assert wh.render_type(JSON) == "JSON"
    # Audit tables keep JSON text: the audit code binds text.
    assert wh.column_type(TableRef("ds", "_load_runs"), Column("last_state", JSON)) == "STRING"


@pytest.mark.parametrize(
    ("value", "scale", "problem"),
    [
        (D("99999999999999999999999999999.999999999"), 9, None),
        (D("-0.000000001"), 9, None),
        (D("1.5000000000000"), 9, None),  # trailing zeros are not digits lost
        (D("0.0000000001"), 9, "more than 9 decimal places"),
        (D("100000000000000000000000000000"), 9, "more than 29 digits before"),
        (D("0.00000000000000000000000000000000000001"), 38, None),
        (D("1" + "0" * 38), 38, "more than 38 digits before"),
        (D("NaN"), 9, "not a finite number"),
        (float("inf"), 9, "not a finite number"),
    ],
)
def test_a_value_that_does_not_fit_is_a_reject_never_rounded(value, scale, problem) -> None:
    found = decimal_problem(value, scale)
    assert (found is None) if problem is None else (problem in found)


def test_json_numbers_must_survive_bigquery_json_exactly() -> None:
    assert json_number_problem({"a": D("1.1"), "b": [1, 2**63 - 1, "x"], "c": None}) is None
    assert "exactly" in json_number_problem({"a": D("1.10000000000000000001")})
    assert json_number_problem([D("123456789012345678901234567890")]) is not None


def test_generic_sql_becomes_bigquery_sql_with_named_parameters() -> None:
    sql, params = translate(
        "UPDATE t SET a = $2, b = $3, c = $2 WHERE id = $1 AND CAST(x AS VARCHAR) = $4",
        ("k", D("1.5"), None, datetime.datetime(2026, 1, 1)),
        "proj",
    )
    assert (
        sql == "UPDATE t SET a = @p2, b = NULL, c = @p2 WHERE id = @p1 AND CAST(x AS STRING) = @p4"
    )
    assert params == [
        ("p1", "STRING", "k"),
        ("p2", "NUMERIC", D("1.5")),
        ("p4", "TIMESTAMP", datetime.datetime(2026, 1, 1, tzinfo=UTC)),
    ]
    big = translate("SELECT $1", (D("0.12345678901"),), "proj")[1]
    assert big == [("p1", "BIGNUMERIC", D("0.12345678901"))]
    listed = translate(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = $1", ("ds",), "p"
    )[0]
    assert "`p`.`ds`.INFORMATION_SCHEMA.TABLES" in listed


def test_many_rows_insert_as_few_multi_row_statements() -> None:
    rows = [(i, f"r{i}") for i in range(5000)]
    statements = multi_row_insert("INSERT INTO t (a, b) VALUES ($1, $2)", rows)
    assert len(statements) == 3  # at most 4,000 parameters each
    first_sql, first_params = statements[0]
    assert first_sql.startswith("INSERT INTO t (a, b) VALUES ($1, $2), ($3, $4)")
    assert first_params[:4] == [0, "r0", 1, "r1"]
    assert sum(len(p) for _, p in statements) == 10000
    assert multi_row_insert("UPDATE t SET a = $1", rows) == []


def test_the_stream_registry_upsert_becomes_a_merge() -> None:
    wh = dialect()
    wh.existing_columns = lambda table: {"stream": TEXT, "n": BIGINT, "at": SqlType("timestamptz")}
    sql = wh.portable(
        "INSERT INTO `proj`.`ds`.`_load_streams` VALUES ($1, $2, $3) ON CONFLICT (stream) "
        "DO UPDATE SET `n` = EXCLUDED.`n`, `at` = EXCLUDED.`at`",
        ("s", None, datetime.datetime(2026, 1, 1, tzinfo=UTC)),
    )
    assert sql == (
        "MERGE INTO `proj`.`ds`.`_load_streams` AS t USING (SELECT $1 AS `stream`, "
        "CAST(NULL AS INT64) AS `n`, $3 AS `at`) AS s ON t.`stream` = s.`stream` "
        "WHEN MATCHED THEN UPDATE SET `n` = s.`n`, `at` = s.`at` "
        "WHEN NOT MATCHED THEN INSERT (`stream`, `n`, `at`) VALUES (s.`stream`, s.`n`, s.`at`)"
    )


def test_identifiers_are_quoted_and_names_bigquery_refuses_are_clear_errors() -> None:
    wh = dialect()
    assert wh.quote("a`b\\c") == "`a\\`b\\\\c`"
    assert wh.qualified(TableRef("ds", "t")) == "`proj`.`ds`.`t`"
    with pytest.raises(WarehouseError, match="cannot contain '/'"):
        wh.check_names(TableRef("ds", "t"), [Column("a/b", TEXT)])
    with pytest.raises(WarehouseError, match="reserves names starting with _PARTITION"):
        wh.check_names(TableRef("ds", "t"), [Column("_partitiontime", TEXT)])
    with pytest.raises(WarehouseError, match="300"):
        wh.check_names(TableRef("ds", "t"), [Column("x" * 301, TEXT)])
    with pytest.raises(WarehouseError, match="dataset name"):
        wh.check_names(TableRef("my-dataset", "t"))
    wh.check_names(TableRef("ds", "voucher rows"), [Column("Code B-desc & more", TEXT)])
    assert wh.case_insensitive_identifiers and wh.max_identifier_bytes == 300


def _bignumeric_batch() -> Batch:
    columns = [Column("id", BIGINT, nullable=False), Column("rate", SqlType("numeric", scale=12))]
    rows = [(1, D("0.123456789012")), (2, D("1" + "0" * 38)), (3, D("0." + "0" * 38 + "1"))]
    return Batch(TableRef("ds", "rates"), columns, rows, ["id"], "upsert")


def test_bignumeric_batches_stage_as_decimal256_and_reject_what_does_not_fit() -> None:
    """What bqemulator cannot run (BIGNUMERIC): the Parquet staged and the rejects."""
    wh = dialect()
    prepared = wh.prepare(_bignumeric_batch())
    assert prepared.payload.schema.field("c1").type == pa.decimal256(76, 38)
    assert prepared.payload.column("c1").to_pylist() == [D("0.123456789012")]
    reasons = dict(prepared.rejects)
    assert "more than 38 digits before" in reasons[1]
    assert "more than 38 decimal places" in reasons[2]
    stage_types = [s.sql_type for s in wh.stage_columns(prepared.batch)]
    assert stage_types == ["INT64", "BIGNUMERIC"]


def test_the_merge_is_one_statement_under_the_version_guard() -> None:
    wh = dialect()
    columns = [
        Column("id", BIGINT, nullable=False),
        Column("doc", JSON),
        Column("_ifs_objversion", TEXT),
        Column("_sdc_table_version", BIGINT),
    ]
    rows = [(1, None, "20250101000000", 1700000000000)]  # a full-table sync's row
    batch = Batch(TableRef("ds", "t"), columns, rows, ["id"], "upsert")
    merge = wh.staged_merge(batch, "`proj`.`ds`.`stage`")
    assert merge.write.startswith("MERGE `proj`.`ds`.`t` AS t USING (SELECT c0 AS `id`, ")
    assert "PARSE_JSON(c1, wide_number_mode => 'exact') AS `doc`" in merge.write
    assert "WHEN MATCHED AND (s.`_ifs_objversion` IS NULL OR t.`_ifs_objversion` IS NULL" in (
        merge.write
    )
    assert "REGEXP_CONTAINS(s.`_ifs_objversion`, r'^[0-9]+$')" in merge.write
    assert merge.write.endswith(
        "WHEN NOT MATCHED BY TARGET THEN INSERT (`id`, `doc`, `_ifs_objversion`, "
        "`_sdc_table_version`) VALUES (s.`id`, s.`doc`, s.`_ifs_objversion`, "
        "s.`_sdc_table_version`)"
    )
    assert merge.count.startswith("SELECT COUNTIF(t.`id` IS NULL), COUNTIF(t.`id` IS NOT NULL")
    assert merge.confirm_presence.startswith("UPDATE `proj`.`ds`.`t` AS t SET")
    incremental = Batch(batch.table, columns, [(1, None, "20250101000000", None)], ["id"], "upsert")
    assert wh.staged_merge(incremental, "`proj`.`ds`.`stage`").confirm_presence is None
    append = wh.staged_merge(Batch(batch.table, columns, [], [], "append-only"), "stage")
    assert append.write.startswith("INSERT INTO `proj`.`ds`.`t` (`id`, `doc`")


class _RecordingClient:
    """Stands in for the BigQuery client to see the requests a table creation makes."""

    def __init__(self) -> None:
        self.created: list = []

    def get_table(self, *args, **kwargs):
        from google.api_core.exceptions import NotFound

        raise NotFound("no table")

    def create_table(self, table, **kwargs):
        self.created.append(table)
        return table


def test_tables_are_created_with_a_not_enforced_primary_key_and_bignumeric() -> None:
    wh = dialect()
    client = _RecordingClient()
    wh._client = client
    wh.create_table(
        TableRef("ds", "rates"),
        [Column("id", BIGINT), Column("rate", SqlType("numeric", scale=12))],
        ["id"],
    )
    [table] = client.created
    assert [(f.name, f.field_type, f.mode) for f in table.schema] == [
        ("id", "INT64", "REQUIRED"),
        ("rate", "BIGNUMERIC", "NULLABLE"),
    ]
    assert table.table_constraints.primary_key.columns == ["id"]
    assert 'primary key: ["id"]' in table.description


def test_credentials_key_file_content_path_fernet_or_anonymous(tmp_path, monkeypatch) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from google.auth.credentials import AnonymousCredentials
    from google.oauth2 import service_account

    pem = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )
    key = {
        "type": "service_account",
        "project_id": "proj",
        "private_key_id": "1",
        "private_key": pem,
        "client_email": "loader@proj.iam.gserviceaccount.com",
        "client_id": "1",
        "token_uri": "https://oauth2.googleapis.com/token",
    }
    assert isinstance(dialect().credentials(), AnonymousCredentials)
    assert dialect("bigquery://proj/ds").credentials() is None  # ADC
    path = tmp_path / "key.json"
    path.write_text(json.dumps(key))
    secret = encrypted_settings.generate_key()
    monkeypatch.setenv(encrypted_settings.KEY_ENV, secret)
    for value in (str(path), json.dumps(key), encrypted_settings.encrypt(json.dumps(key), secret)):
        creds = dialect(settings={"bigquery_service_account_key": value}).credentials()
        assert isinstance(creds, service_account.Credentials)
        assert creds.service_account_email == "loader@proj.iam.gserviceaccount.com"
    with pytest.raises(WarehouseError, match="cannot be read"):
        dialect(settings={"bigquery_service_account_key": str(tmp_path / "nope")}).credentials()
    assert dialect(settings={"bigquery_api_endpoint": "http://x:1"}).api_endpoint == "http://x:1"
    assert dialect("bigquery://proj/ds?location=EU").location == "EU"
    with pytest.raises(WarehouseError, match=r"plain http to 'bq\.example\.com'"):
        dialect("bigquery://proj/ds?api_endpoint=http://bq.example.com:9050").connect()
    dialect(
        "bigquery://proj/ds?api_endpoint=http://bq.example.com&allow_insecure_http=true"
    ).connect()
    assert dialect().default_schema == "ds"


# Against the emulator ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bigquery_emulator(tmp_path_factory) -> Iterator[emulators.Emulator]:
    with emulators.running("bigquery", tmp_path_factory.mktemp("bqemulator")) as emulator:
        yield emulator


@pytest.fixture
def rig(bigquery_emulator: emulators.Emulator) -> Rig:
    return Rig("bigquery", bigquery_emulator, f"t_{uuid.uuid4().hex[:10]}")


def test_voucher_rows_round_trip_exactly(rig: Rig) -> None:
    states = run(
        rig.config,
        lines(
            voucher_schema(),
            voucher(
                1,
                Amount="99999999999999999999999999999.999999999",
                VoucherDate="2024-02-29",
                DateCreated="2024-03-31T01:30:00.123456+02:00",
                Approved=True,
                Text="Lease März ✓",
                Extra={"cost_center": "CC-1", "share": 0.25},
            ),
            voucher(1, 2, Amount="-0.000000001", VoucherDate="1900-01-01"),
            voucher(2, Amount="1234.5", DateCreated="2026-01-01T00:00:00Z", Approved=False),
            voucher(3, Amount="0.0000000001"),  # 10 decimal places: a reject
            state({"bookmark": 3}),
        ),
    )
    assert states == [{"bookmark": 3}]
    rows = rig.columns("voucher_rows", emulators.VOUCHER_COLUMNS, "voucher_no, row_no")
    assert rows == [
        (
            1,
            1,
            D("99999999999999999999999999999.999999999"),
            datetime.date(2024, 2, 29),
            datetime.datetime(2024, 3, 30, 23, 30, 0, 123456, tzinfo=UTC),
            True,
            "Lease März ✓",
        ),
        (1, 2, D("-0.000000001"), datetime.date(1900, 1, 1), None, None, None),
        (2, 1, D("1234.5"), None, datetime.datetime(2026, 1, 1, tzinfo=UTC), False, None),
    ]
    [(extra,)] = rig.fetch(
        "SELECT TO_JSON_STRING({c:extra}) FROM {t:voucher_rows} WHERE {c:voucher_no} = 1 "
        "AND {c:row_no} = 1"
    )
    assert json.loads(extra, parse_float=D) == {"cost_center": "CC-1", "share": D("0.25")}
    [(reason,)] = rig.fetch("SELECT reason FROM {t:_load_rejects}")
    assert "more than 9 decimal places" in reason
    [batch] = rig.fetch(
        "SELECT records_in, rows_inserted, rows_updated, rows_skipped, rows_rejected "
        "FROM {t:_load_batches}"
    )
    assert batch == (4, 3, 0, 0, 1)
    [(status, last_state)] = rig.fetch("SELECT status, last_state FROM {t:_load_runs}")
    assert (status, json.loads(last_state)) == ("succeeded", {"bookmark": 3})
    info = dict(
        rig.fetch(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = $1 AND table_name = 'voucher_rows'",
            (rig.schema,),
        )
    )
    assert info["amount"] == "NUMERIC" and info["voucher_date"] == "DATE"
    assert info["date_created"] == "TIMESTAMP" and info["extra"] == "JSON"
    assert info["approved"] == "BOOL" and info["voucher_no"] == "INT64"


def test_an_older_version_never_replaces_a_newer_one(rig: Rig) -> None:
    run(
        rig.config,
        lines(
            voucher_schema(),
            voucher(1, version="20260102000000", Amount="1"),
            voucher(2, version="9", Amount="2"),
            voucher(3, version="20260101000000", Amount="3"),
        ),
    )
    run(
        rig.config,
        lines(
            voucher_schema(),
            voucher(1, version="20260101235959", Amount="10"),  # older: skipped
            voucher(2, version="10", Amount="20"),  # a longer counter is newer
            voucher(3, version="20260101000000", Amount="30"),  # equal versions: the last wins
            voucher(3, version="20260101000000", Amount="31"),
            voucher(4, Amount="40"),  # new
        ),
    )
    rows = rig.columns("voucher_rows", "voucher_no, amount, _ifs_objversion", "voucher_no")
    assert rows == [
        (1, D("1"), "20260102000000"),
        (2, D("20"), "10"),
        (3, D("31"), "20260101000000"),
        (4, D("40"), "20260101000000"),
    ]
    counts = rig.fetch(
        "SELECT records_in, rows_inserted, rows_updated, rows_skipped FROM {t:_load_batches} "
        "ORDER BY committed_at"
    )
    assert counts == [(3, 3, 0, 0), (5, 1, 2, 2)]


def test_a_failure_inside_the_batch_transaction_rolls_the_merge_back(rig: Rig) -> None:
    run(rig.config, lines(voucher_schema(), voucher(1, Amount="1")))
    warehouse = open_warehouse(rig.config["warehouse_url"])
    warehouse.connect()
    table = TableRef(rig.schema, "voucher_rows")
    try:

        def update_then_fail() -> None:
            with warehouse.transaction():
                warehouse.execute(
                    f"UPDATE {warehouse.qualified(table)} SET amount = 99 WHERE voucher_no = 1"
                )
                warehouse.execute("SELECT ERROR('boom')")

        with pytest.raises(Exception, match="boom"):
            update_then_fail()
        assert warehouse.fetchall(f"SELECT amount FROM {warehouse.qualified(table)}") == [(D(1),)]
    finally:
        warehouse.close()


def test_rejects_are_kept_and_replayed_once_the_schema_is_fixed(rig: Rig) -> None:
    narrow = schema(
        "parts", {"Part": {"type": "string"}, "Name": {"type": "string", "maxLength": 5}}, ["Part"]
    )
    wide = schema(
        "parts", {"Part": {"type": "string"}, "Name": {"type": "string", "maxLength": 20}}, ["Part"]
    )
    run(
        rig.config,
        lines(
            narrow,
            record("parts", {"Part": "P1", "Name": "short"}),
            record("parts", {"Part": "P2", "Name": "much too long"}),
        ),
    )
    [(stream, reason, raw)] = rig.fetch(
        "SELECT stream, reason, CAST(record AS VARCHAR) FROM {t:_load_rejects}"
    )
    assert stream == "parts" and "maxLength 5" in reason
    assert json.loads(raw) == {"Part": "P2", "Name": "much too long"}
    run(rig.config, lines(wide))
    result = replay(rig.config)
    assert (result.replayed, result.loaded, result.rejected_again) == (1, 1, 0)
    assert rig.columns("parts", "part, name", "part") == [("P1", "short"), ("P2", "much too long")]
    assert replay(rig.config).replayed == 0
    [(replayed_at,)] = rig.fetch("SELECT replayed_at FROM {t:_load_rejects}")
    assert replayed_at is not None


@pytest.mark.parametrize("hard_delete", [False, True])
def test_activate_version_retires_rows_the_full_sync_did_not_send(
    rig: Rig, hard_delete: bool
) -> None:
    accounts = schema("accounts", {"Account": {"type": "string"}}, ["Account"])

    def sync(version: int, *names: str) -> str:
        activate = {"type": "ACTIVATE_VERSION", "stream": "accounts", "version": version}
        records = [record("accounts", {"Account": n}, version=version) for n in names]
        return lines(accounts, activate, *records, activate)

    config = {**rig.config, "hard_delete": hard_delete}
    run(config, sync(1, "A", "B", "C"))
    run(config, sync(2, "A", "C"))
    rows = rig.columns("accounts", "account, _sdc_table_version, _sdc_deleted_at", "account")
    if hard_delete:
        assert [(a, v) for a, v, _ in rows] == [("A", 2), ("C", 2)]
    else:
        assert [(a, v, d is not None) for a, v, d in rows] == [
            ("A", 2, False),
            ("B", 1, True),
            ("C", 2, False),
        ]


def test_append_only_keeps_every_record(rig: Rig) -> None:
    config = {**rig.config, "load_method": "append-only"}
    for _ in range(2):
        run(config, lines(voucher_schema(), voucher(1, Amount="1"), voucher(2, Amount="2")))
    assert len(rig.columns("voucher_rows", "voucher_no")) == 4


def test_overwrite_replaces_the_table_with_the_last_run(rig: Rig) -> None:
    config = {**rig.config, "load_method": "overwrite"}
    run(config, lines(voucher_schema(), voucher(1, Amount="1"), voucher(2, Amount="2")))
    run(config, lines(voucher_schema(), voucher(2, Amount="22"), voucher(3, Amount="3")))
    assert rig.columns("voucher_rows", "voucher_no, amount", "voucher_no") == [
        (2, D("22")),
        (3, D("3")),
    ]


def test_rerunning_a_committed_batch_never_duplicates(rig: Rig) -> None:
    text = lines(voucher_schema(), voucher(1, Amount="1"), voucher(2, Amount="2"))
    run(rig.config, text)
    run(rig.config, text)  # a lost answer: the same batch again
    assert rig.columns("voucher_rows", "voucher_no, amount", "voucher_no") == [
        (1, D("1")),
        (2, D("2")),
    ]
    counts = rig.fetch(
        "SELECT rows_inserted, rows_updated FROM {t:_load_batches} ORDER BY committed_at"
    )
    assert counts == [(2, 0), (0, 2)]


def test_kill_and_resume_from_the_last_state(rig: Rig, tmp_path: Path) -> None:
    emulators.kill_and_resume(rig, tmp_path)


def test_the_check_commands_bulk_probe_passes(rig: Rig) -> None:
    """`ifs-looker check`'s bulk probe (BIGNUMERIC left out: bqemulator cannot create it)."""
    from ifs_looker.warehouse_probe import probe_bulk_path

    warehouse = open_warehouse(rig.config["warehouse_url"])
    warehouse.connect()
    try:
        warehouse.ensure_schema(rig.schema)
        assert "read it back exactly" in probe_bulk_path(warehouse, rig.schema, wide=False)
        assert not [n for n in warehouse.table_names(rig.schema) if n.startswith("_ifs_looker")]
    finally:
        warehouse.close()

"""Snowflake: the statements the dialect generates, and the target end to end against
fakesnow's HTTP server (started here) through the official snowflake-connector-python,
connecting as it connects to real Snowflake (`host`/`port`/`protocol` pass through).

What the emulator cannot prove is checked at the statement level here and listed in the
README for `ifs-looker check` on the real service: Snowflake's transaction semantics (the
staging DDL comes before BEGIN, since DDL commits an open transaction; everything of a
batch between BEGIN and COMMIT), VARIANT keeping 38-digit numbers exactly, table locks
between concurrent loaders, key-pair login. Emulator quirks: NULL timestamps read back as
1970-01-01, so round trips compare timestamps that are set; sums are not compared (a SUM
over NUMBER(38,9) comes back as a float); row values are.
"""

from __future__ import annotations

import datetime
import decimal
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ifs_looker_core import encrypted_settings
from target_looker.columns import BIGINT, JSON, TEXT, Column, SqlType
from target_looker.rejects import replay
from target_looker.warehouse import open_warehouse
from target_looker.warehouse.base import Batch, TableRef, WarehouseError
from target_looker.warehouse.snowflake import (
    SnowflakeWarehouse,
    decimal_problem,
    json_number_problem,
    translate,
)
from tests import emulators
from tests.emulators import Rig, voucher, voucher_schema
from tests.target_looker.singer_io import lines, record, run, schema, state

D = decimal.Decimal
UTC = datetime.timezone.utc
URL = "snowflake://loader:pw@acme-xy12345/ANALYTICS/ifs?warehouse=LOAD_WH&role=LOADER"


def dialect(url: str = URL, settings: dict | None = None) -> SnowflakeWarehouse:
    warehouse = open_warehouse(url, settings)
    assert isinstance(warehouse, SnowflakeWarehouse)
    return warehouse


# The statements (no emulator) ---------------------------------------------------------------------


def test_types_are_exact_number_timestamp_tz_and_variant() -> None:
    wh = dialect()
    assert wh.render_type(SqlType("numeric")) == "NUMBER(38,9)"
    assert wh.render_type(SqlType("numeric", scale=12)) == "NUMBER(38,12)"
    assert wh.render_type(BIGINT) == "NUMBER(38,0)"
    assert wh.render_type(SqlType("timestamptz")) == "TIMESTAMP_TZ"
    assert wh.render_type(JSON) == "VARIANT"
    assert wh.column_type(TableRef("s", "_load_streams"), Column("schema", JSON)) == "VARCHAR"
    assert wh.parse_type("NUMBER", None, 0) == BIGINT
    assert wh.parse_type("NUMBER", None, 9) == SqlType("numeric", scale=9)
    # Snowflake cannot change a NUMBER's scale: refused (a clear error), never rounded.
    assert wh.widened(SqlType("numeric", scale=9), SqlType("numeric", scale=12)) is None
    assert wh.widened(BIGINT, SqlType("numeric")) is None
    assert wh.widened(SqlType("numeric", scale=9), SqlType("numeric", scale=2)) == SqlType(
        "numeric", scale=9
    )


@pytest.mark.parametrize(
    ("value", "scale", "problem"),
    [
        (D("99999999999999999999999999999.999999999"), 9, None),
        (D("0.0000000001"), 9, "more than 9 decimal places"),
        (D("1" + "0" * 29), 9, "more than 29 digits before"),
        (D("0.000000000001"), 12, None),
        (D("Infinity"), 9, "not a finite number"),
    ],
)
def test_a_value_that_does_not_fit_number_38_s_is_a_reject(value, scale, problem) -> None:
    found = decimal_problem(value, scale)
    assert (found is None) if problem is None else (problem in found)


def test_variant_keeps_numbers_of_up_to_38_digits() -> None:
    assert json_number_problem({"a": D("1.10000000000000000001"), "b": [1, "x", None]}) is None
    assert "38" in json_number_problem({"a": D("1." + "1" * 40)})


def test_generic_sql_is_bound_by_the_connector() -> None:
    sql, params = translate(
        "UPDATE t SET a = $2 WHERE b LIKE '%x' AND id = $1 AND c = $2",
        ("k", D("0.000000001")),
    )
    assert sql == "UPDATE t SET a = %(p2)s WHERE b LIKE '%%x' AND id = %(p1)s AND c = %(p2)s"
    assert params == {"p1": "k", "p2": "0.000000001"}  # no `1E-9`: that would be a FLOAT
    assert translate("SELECT 1 WHERE x LIKE '%'", ()) == ("SELECT 1 WHERE x LIKE '%'", None)


def test_the_version_guard_cuts_leading_zeros_and_compares_counters_by_length() -> None:
    guard = dialect().version_guard("s.v", "t.v")
    assert "REGEXP_REPLACE(s.v, '^0+', '')" in guard
    assert "REGEXP_LIKE(s.v, '[0-9]+')" in guard
    assert "LENGTH(REGEXP_REPLACE(s.v, '^0+', '')) > LENGTH(REGEXP_REPLACE(t.v, '^0+', ''))" in (
        guard
    )


def test_url_parts_key_pair_and_pass_through(tmp_path, monkeypatch) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    wh = dialect(URL + "&host=127.0.0.1&port=8080&protocol=http&network_timeout=5&bogus=1")
    args = wh.connect_args()
    assert (args["account"], args["user"], args["password"], args["database"]) == (
        "acme-xy12345",
        "loader",
        "pw",
        "ANALYTICS",
    )
    assert (args["warehouse"], args["role"], args["host"], args["port"]) == (
        "LOAD_WH",
        "LOADER",
        "127.0.0.1",
        8080,
    )
    assert args["protocol"] == "http" and args["network_timeout"] == 5 and "bogus" not in args
    assert args["session_parameters"]["TIMEZONE"] == "UTC"
    assert wh.default_schema == "ifs"
    assert "pw" not in wh.safe_url

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"phrase"),
    ).decode()
    secret = encrypted_settings.generate_key()
    monkeypatch.setenv(encrypted_settings.KEY_ENV, secret)
    path = tmp_path / "key.p8"
    path.write_text(pem)
    der = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    for value in (pem, str(path), encrypted_settings.encrypt(pem, secret)):
        settings = {
            "snowflake_private_key": value,
            "snowflake_private_key_passphrase": encrypted_settings.encrypt("phrase", secret),
        }
        args = dialect("snowflake://loader@acme/ANALYTICS/ifs", settings).connect_args()
        assert args["private_key"] == der and "password" not in args
    with pytest.raises(WarehouseError, match="not a usable PEM private key"):
        dialect(settings={"snowflake_private_key": pem}).connect_args()  # no passphrase
    with pytest.raises(WarehouseError, match=r"plain http to 'sf\.example\.com'"):
        dialect(URL + "&host=sf.example.com&protocol=http").connect_args()
    assert dialect(URL + "&host=sf.example.com&protocol=http&allow_insecure_http=1").connect_args()
    with pytest.raises(WarehouseError, match="names the database"):
        dialect("snowflake://u@acct")


def test_names_are_quoted_and_too_long_names_are_clear_errors() -> None:
    wh = dialect()
    assert wh.qualified(TableRef("ifs", 'a"b')) == '"ANALYTICS"."ifs"."a""b"'
    with pytest.raises(WarehouseError, match="255"):
        wh.create_table_sql(TableRef("ifs", "t"), [Column("x" * 256, TEXT)], [])


class _Cursor:
    def __init__(self, log: list[str]) -> None:
        self.log = log
        self.rowcount = 1
        self.description = [("column_name",), ("key_sequence",)]

    def execute(self, sql, params=None):
        self.log.append(sql.split(" (")[0] if sql.startswith("CREATE TRANSIENT") else sql)

    def executemany(self, sql, rows):
        self.log.append(f"{sql} x{len(rows)}")

    def fetchall(self):
        return []

    def close(self):
        pass


class _Connection:
    def __init__(self) -> None:
        self.log: list[str] = []

    def cursor(self):
        return _Cursor(self.log)

    def close(self):
        pass


def test_a_batch_is_staged_before_begin_and_merged_with_its_audit_rows_before_commit() -> None:
    """Snowflake's semantics the emulator cannot show: DDL (the staging table) would
    commit an open transaction, so it comes first; the rest is one transaction."""
    wh = dialect()
    connection = _Connection()
    wh._conn = connection
    columns = [Column("id", BIGINT, nullable=False), Column("_ifs_objversion", TEXT)]
    batch = Batch(TableRef("ifs", "t"), columns, [(1, "1"), (2, "2")], ["id"], "upsert")
    prepared = wh.prepare(batch)
    with wh.transaction():
        counts = wh.merge(prepared)
        wh.execute('INSERT INTO "ANALYTICS"."ifs"."_load_batches" (x) VALUES ($1)', ("b",))
    assert (counts.inserted, counts.updated) == (1, 1)
    stage = next(e for e in connection.log if e.startswith("CREATE TRANSIENT")).split()[-1]
    heads = [" ".join(entry.split()[:4]) for entry in connection.log]
    assert heads == [
        "CREATE TEMPORARY STAGE IF",
        f"CREATE TRANSIENT TABLE {stage}",
        heads[2],  # PUT 'file://...parquet' @stage
        f'COPY INTO {stage} ("c0",',
        "BEGIN TRANSACTION",
        'UPDATE "ANALYTICS"."ifs"."t" AS t',
        'INSERT INTO "ANALYTICS"."ifs"."t" ("id",',
        'INSERT INTO "ANALYTICS"."ifs"."_load_batches" (x)',
        "COMMIT",
        "DROP TABLE IF EXISTS",
    ]
    assert heads[2].startswith("PUT 'file://") and connection.log[-1].endswith(stage)
    update = next(e for e in connection.log if e.startswith("UPDATE"))
    assert 'AND (s."_ifs_objversion" IS NULL OR t."_ifs_objversion" IS NULL' in update
    insert = next(e for e in connection.log if e.startswith('INSERT INTO "ANALYTICS"."ifs"."t"'))
    assert insert.endswith(
        'WHERE NOT EXISTS (SELECT 1 FROM "ANALYTICS"."ifs"."t" AS t WHERE t."id" = s."id")'
    )


def test_ddl_after_the_transaction_began_is_refused() -> None:
    wh = dialect()
    wh._conn = _Connection()

    def delete_then_ddl() -> None:
        with wh.transaction():
            wh.execute("DELETE FROM x")
            wh.ensure_schema("other")

    with pytest.raises(WarehouseError, match="would commit the transaction"):
        delete_then_ddl()
    assert wh._conn.log[-1] == "ROLLBACK"


# Against the emulator -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def snowflake_emulator(tmp_path_factory) -> Iterator[emulators.Emulator]:
    with emulators.running("snowflake", tmp_path_factory.mktemp("fakesnow")) as emulator:
        yield emulator


@pytest.fixture
def rig(snowflake_emulator: emulators.Emulator) -> Rig:
    return Rig("snowflake", snowflake_emulator, f"t_{uuid.uuid4().hex[:10]}")


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
    rows = rig.columns("voucher_rows", "voucher_no, row_no, amount, voucher_date, approved, text")
    assert sorted(rows) == [
        (
            1,
            1,
            D("99999999999999999999999999999.999999999"),
            datetime.date(2024, 2, 29),
            True,
            "Lease März ✓",
        ),
        (1, 2, D("-0.000000001"), datetime.date(1900, 1, 1), None, None),
        (2, 1, D("1234.5"), None, False, None),
    ]
    created = rig.fetch(
        "SELECT {c:voucher_no}, {c:date_created} FROM {t:voucher_rows} "
        "WHERE {c:date_created} IS NOT NULL ORDER BY {c:voucher_no}"
    )
    assert created == [
        (1, datetime.datetime(2024, 3, 30, 23, 30, 0, 123456, tzinfo=UTC)),
        (2, datetime.datetime(2026, 1, 1, tzinfo=UTC)),
    ]
    [(extra,)] = rig.fetch(
        "SELECT {c:extra} FROM {t:voucher_rows} WHERE {c:voucher_no} = 1 AND {c:row_no} = 1"
    )
    assert json.loads(extra, parse_float=D) == {"cost_center": "CC-1", "share": D("0.25")}
    [(reason,)] = rig.fetch("SELECT {c:reason} FROM {t:_load_rejects}")
    assert "more than 9 decimal places" in reason
    [batch] = rig.fetch(
        "SELECT {c:records_in}, {c:rows_inserted}, {c:rows_updated}, {c:rows_skipped}, "
        "{c:rows_rejected} FROM {t:_load_batches}"
    )
    assert batch == (4, 3, 0, 0, 1)
    [(status, last_state)] = rig.fetch("SELECT {c:status}, {c:last_state} FROM {t:_load_runs}")
    assert (status, json.loads(last_state)) == ("succeeded", {"bookmark": 3})


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
        "SELECT {c:records_in}, {c:rows_inserted}, {c:rows_updated}, {c:rows_skipped} "
        "FROM {t:_load_batches} ORDER BY {c:committed_at}"
    )
    assert counts == [(3, 3, 0, 0), (5, 1, 2, 2)]


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
        "SELECT {c:stream}, {c:reason}, {c:record} FROM {t:_load_rejects}"
    )
    assert stream == "parts" and "maxLength 5" in reason
    assert json.loads(raw) == {"Part": "P2", "Name": "much too long"}
    run(rig.config, lines(wide))
    result = replay(rig.config)
    assert (result.replayed, result.loaded, result.rejected_again) == (1, 1, 0)
    assert rig.columns("parts", "part, name", "part") == [("P1", "short"), ("P2", "much too long")]
    assert replay(rig.config).replayed == 0


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
    rows = rig.columns("accounts", "account, _sdc_table_version", "account")
    deleted = {
        a
        for (a,) in rig.fetch(
            "SELECT {c:account} FROM {t:accounts} WHERE {c:_sdc_deleted_at} IS NOT NULL"
        )
    }
    if hard_delete:
        assert rows == [("A", 2), ("C", 2)] and not deleted
    else:
        assert rows == [("A", 2), ("B", 1), ("C", 2)] and deleted == {"B"}


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
        "SELECT {c:rows_inserted}, {c:rows_updated} FROM {t:_load_batches} "
        "ORDER BY {c:committed_at}"
    )
    assert counts == [(2, 0), (0, 2)]


def test_kill_and_resume_from_the_last_state(rig: Rig, tmp_path: Path) -> None:
    emulators.kill_and_resume(rig, tmp_path)


def test_the_check_commands_bulk_probe_passes(rig: Rig) -> None:
    from ifs_looker.warehouse_probe import probe_bulk_path

    warehouse = open_warehouse(rig.config["warehouse_url"])
    warehouse.connect()
    try:
        warehouse.ensure_schema(rig.schema)
        assert "NUMBER(38,12)" in probe_bulk_path(warehouse, rig.schema)
        assert not [n for n in warehouse.table_names(rig.schema) if n.startswith("_ifs_looker")]
    finally:
        warehouse.close()

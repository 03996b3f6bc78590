"""The live `$metadata` is the schema: another tenant's properties are discovered and synced,
drift between a cached catalog and IFS is reported, and discovery never falls back silently.

The "varied" sandbox tenant serves what a real IFS tenant does and ours does not: extra
properties on every entity type (custom fields `Cf_*`, awkward decimals, dates, timestamps,
times of day, enums, binary and stream properties, navigation properties) and lacks a few
of the default tenant's (`PeriodAllocation`, `SatLevel`, ...).
"""

from __future__ import annotations

import copy
import logging
from decimal import Decimal
from urllib.parse import unquote

import pytest

from ifs_looker_sandboxes.ifs_cloud import tenant_variant
from tap_ifscloud.streams import BUILTIN_STREAMS
from tap_ifscloud.tap import TapIFSCloud

from .conftest import (
    expected_records,
    relay,
    run_cli,
    run_tap,
    running_sandbox,
    tap_config,
)

VARIED = tenant_variant("varied")
DEFINITIONS = {d.name: d for d in BUILTIN_STREAMS}
KEYS = {d.name: list(d.key_properties) for d in BUILTIN_STREAMS}
LEFT_OUT_TYPES = ("Edm.Binary", "Edm.Stream")
SMALL = {"voucher_rows_per_company": 60, "orders_per_company": 10, "invoices_per_company": 10}


def left_out(entity_set: str) -> set[str]:
    return {p.name for p in VARIED.entity_type(entity_set).props if p.type in LEFT_OUT_TYPES}


def columns(entity_set: str, code_part: str | None) -> set[str]:
    """The stream columns the varied tenant's entity set should give."""
    names = set(VARIED.row_properties(entity_set)) - left_out(entity_set)
    if code_part is not None:
        names = (names - {f"Code{code_part}", "CodePart"}) | {"code", "code_part"}
    return names


@pytest.fixture(scope="module")
def varied_sandbox():
    with running_sandbox(tenant="varied", companies=("US01", "DE01"), **SMALL) as sandbox:
        yield sandbox


@pytest.fixture(scope="module")
def varied_catalog(varied_sandbox) -> dict:
    return TapIFSCloud(config=tap_config(varied_sandbox)).catalog_dict


def schemas(catalog: dict) -> dict[str, dict]:
    return {s["tap_stream_id"]: s["schema"]["properties"] for s in catalog["streams"]}


def test_discovery_lists_every_property_the_system_has(varied_sandbox, caplog):
    caplog.set_level(logging.INFO, logger="tap-ifscloud")
    catalog = TapIFSCloud(config=tap_config(varied_sandbox)).catalog_dict
    found = schemas(catalog)
    for definition in BUILTIN_STREAMS:
        props = found[definition.name]
        for code_part, entity_set in definition.entity_sets():
            expected = columns(entity_set, code_part)
            assert expected <= set(props), (definition.name, sorted(expected - set(props)))
            extras = set(VARIED.extra_property_names(entity_set)) - left_out(entity_set)
            if code_part is not None:
                extras -= {"CodePart"}  # IFS's own code part is the `code_part` column
            assert extras, entity_set
            assert extras <= set(props)
            assert not set(VARIED.missing_properties.get(entity_set, ())) & set(props)
            assert not left_out(entity_set) & set(props)

    vouchers = found["voucher_rows"]
    assert vouchers["Cf_Precision_Probe"] == {"type": ["number", "null"]}  # Edm.Decimal
    assert vouchers["Cf_Approved_At"] == {"type": ["string", "null"], "format": "date-time"}
    assert vouchers["Cf_Posting_Time"] == {"type": ["string", "null"], "format": "time"}
    assert vouchers["Cf_Settled_On"] == {"type": ["string", "null"], "format": "date"}
    assert vouchers["Cf_Review_Required"] == {"type": ["boolean", "null"]}
    assert vouchers["Cf_Cost_Driver"] == {"type": ["string", "null"], "maxLength": 4000}
    assert vouchers["AccountingYear"] == {"type": "number"}  # a key (Edm.Decimal): never null
    accounts = found["gl_accounts"]
    assert accounts["LedgFlag"]["enum"] == ["LedgerAccount", "NotLedgerAccount", None]
    assert "Cf_Customer_Project_Id" in found["cost_dimensions"]

    # binary, stream and navigation properties: one INFO line per stream names them
    lines = [r.getMessage() for r in caplog.records if "left out of the schema" in r.getMessage()]
    voucher_lines = [line for line in lines if "'voucher_rows'" in line]
    assert len(voucher_lines) == 1
    for name in (
        "Cf_Signature (Edm.Binary)",
        "DocumentData (Edm.Stream)",
        "CodeBRef",
        "EnteredByUserGroupRef",
    ):
        assert name in voucher_lines[0]


def test_a_sync_carries_every_property_with_exact_values(varied_sandbox, varied_catalog):
    run = run_tap(tap_config(varied_sandbox, companies=["US01"]), catalog=varied_catalog)
    for definition in BUILTIN_STREAMS:
        name = definition.name
        expected = expected_records(varied_sandbox, name, ("US01",))
        got = {tuple(r[k] for k in KEYS[name]): r for r in run.records(name)}
        assert set(got) == set(expected), name
        for key, row in expected.items():
            record = dict(got[key])
            record.pop("_ifs_objversion")
            for entity_set in {s for _, s in definition.entity_sets()}:
                for column in left_out(entity_set):
                    row.pop(column, None)
            assert record.keys() >= row.keys(), (name, sorted(row.keys() - record.keys()))
            assert {k: record[k] for k in row} == row, (name, key)
            # exact to the digit and exponent, not just numerically equal
            for column, value in row.items():
                if isinstance(value, Decimal):
                    assert str(record[column]) == str(value), (name, column)
    probes = {str(r["Cf_Precision_Probe"]) for r in run.records("voucher_rows")}
    assert "1E-65" in probes or any(len(p) > 60 for p in probes)


def test_discovery_fails_clearly_when_metadata_cannot_be_read(tmp_path):
    # nothing listens there: no silent fallback to the bundled schemas
    config = {
        "base_url": "http://127.0.0.1:9",
        "realm": "acme1",
        "client_id": "looker-sync",
        "client_secret": "not-a-real-secret",
        "companies": ["US01"],
        "max_retries": 0,
    }
    result = run_cli(["--discover"], config, tmp_path)
    assert result.returncode != 0
    assert result.stdout == ""
    assert "cannot read the $metadata of projection ManualSupplierInvoiceHandling" in result.stderr
    assert "Discovery does not fall back to the bundled schemas" in result.stderr
    assert "Traceback" not in result.stderr
    assert "not-a-real-secret" not in result.stderr

    # without credentials discovery cannot reach IFS either, and says what to set
    config = {"base_url": "https://ifs.invalid", "companies": ["US01"], "client_id": "x"}
    result = run_cli(["--discover"], config, tmp_path)
    assert result.returncode != 0
    assert result.stdout == ""
    assert "discovery reads the schema from the IFS system's $metadata" in result.stderr
    assert "offline_discovery" in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_projection_fails_discovery_naming_the_url(varied_sandbox, tmp_path):
    config = tap_config(
        varied_sandbox, stream_overrides={"gl_accounts": {"projection": "NoSuchHandling"}}
    )
    result = run_cli(["--discover"], config, tmp_path)
    assert result.returncode != 0
    assert result.stdout == ""
    assert (
        f"{varied_sandbox.base_url}/main/ifsapplications/projection/v1/NoSuchHandling.svc/"
        "$metadata" in result.stderr
    )


def test_a_stale_catalog_warns_once_per_stream_and_dropped_properties_are_null(
    varied_sandbox, caplog
):
    """A catalog discovered on a tenant shaped like ours, synced against the varied one:
    what IFS added is named once per stream with the remedy; what it dropped is emitted
    as null and never `$select`ed (IFS would answer 400)."""
    with running_sandbox(companies=("US01", "DE01"), **SMALL) as default_sandbox:
        stale = copy.deepcopy(TapIFSCloud(config=tap_config(default_sandbox)).catalog_dict)
    caplog.set_level(logging.WARNING, logger="tap-ifscloud")
    logged = len(varied_sandbox.request_log)
    run = run_tap(tap_config(varied_sandbox, companies=["US01", "DE01"]), catalog=stale)
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]

    stale_props = schemas(stale)
    for definition in BUILTIN_STREAMS:
        name = definition.name
        lacks = [m for m in messages if m.startswith(f"Stream '{name}': IFS has ")]
        assert len(lacks) == 1, (name, lacks)
        assert "meltano run --refresh-catalog" in lacks[0]
        for code_part, entity_set in definition.entity_sets():
            extras = set(VARIED.extra_property_names(entity_set)) - left_out(entity_set)
            if code_part is not None:
                extras -= {"CodePart"}  # IFS's own code part is the `code_part` column
            for prop in extras:
                if prop not in stale_props[name]:
                    assert prop in lacks[0], (name, prop)
        records = run.records(name)
        assert records, name
        assert all(set(r) <= set(stale_props[name]) for r in records), name

    gone = [m for m in messages if "no longer offers" in m]
    assert len(gone) == 3, gone
    [voucher_gone] = [m for m in gone if m.startswith("Stream 'voucher_rows'")]
    assert "ProjectActivityId, PeriodAllocation, TaxSeriesNo" in voucher_gone
    assert "emitted as null" in voucher_gone
    [account_gone] = [m for m in gone if m.startswith("Stream 'gl_accounts'")]
    assert "SatAccountType, SatAccountGroup, SatLevel, SatParentAccount" in account_gone
    [codes_gone] = [m for m in gone if m.startswith("Stream 'cost_dimensions'")]
    assert "AccountingTextId" in codes_gone
    vouchers = run.records("voucher_rows")
    assert all(r["PeriodAllocation"] is None and r["TaxSeriesNo"] is None for r in vouchers)
    assert all(r["SatLevel"] is None for r in run.records("gl_accounts"))

    requests = [unquote(path) for _, path, _ in varied_sandbox.request_log[logged:]]
    assert not [p for p in requests if "$select=" in p and "PeriodAllocation" in p]
    assert not [s for _, _, s in varied_sandbox.request_log[logged:] if s >= 400]
    # one $metadata request per projection for the whole run
    metadata = [p for p in requests if p.endswith("/$metadata")]
    assert len(metadata) == len(metadata_projections()) == len(set(metadata))


def metadata_projections() -> set[str]:
    return {d.projection for d in BUILTIN_STREAMS}


def test_properties_outside_the_schema_are_reported_once_per_stream(varied_sandbox, caplog):
    def add_property(path: str, rows: list[dict]) -> list[dict]:
        for row in rows:
            row["Zz_Unannounced"] = "x"
        return rows

    caplog.set_level(logging.WARNING, logger="tap-ifscloud")
    with relay(varied_sandbox, add_property) as url:
        run = run_tap(tap_config(varied_sandbox, base_url=url, companies=["US01"], page_size=7))
    warnings = [
        r.getMessage() for r in caplog.records if "outside the catalog schema" in r.getMessage()
    ]
    assert sorted(w.split("'")[1] for w in warnings) == sorted(d.name for d in BUILTIN_STREAMS)
    assert all("Zz_Unannounced" in w for w in warnings)
    assert len(run.records("voucher_rows")) > 7 * 3  # several pages, still one warning
    assert not [r for d in BUILTIN_STREAMS for r in run.records(d.name) if "Zz_Unannounced" in r]


def test_a_stream_the_system_lacks_can_be_switched_off_or_deselected(varied_sandbox, tmp_path):
    """Two built-in streams have no confirmed projection name: a system without one must
    not block discovery (`enabled: false`) or a sync whose catalog deselects the stream."""
    missing = {"projection": "NoSuchHandling"}
    config = tap_config(
        varied_sandbox, stream_overrides={"supplier_invoices": {**missing, "enabled": False}}
    )
    result = run_cli(["--discover"], config, tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "supplier_invoices" not in result.stdout

    catalog = copy.deepcopy(TapIFSCloud(config=tap_config(varied_sandbox)).catalog_dict)
    for entry in catalog["streams"]:
        if entry["tap_stream_id"] == "gl_accounts":
            root = next(m for m in entry["metadata"] if m["breadcrumb"] == [])
            root["metadata"]["selected"] = False
    logged = len(varied_sandbox.request_log)
    config = tap_config(
        varied_sandbox, companies=["US01"], stream_overrides={"gl_accounts": missing}
    )
    run = run_tap(config, catalog=catalog)
    assert not run.records("gl_accounts")
    assert run.records("voucher_rows")
    assert not [p for _, p, _ in varied_sandbox.request_log[logged:] if "NoSuchHandling" in p]


def test_the_tenants_own_code_part_is_the_code_part_column(varied_sandbox, varied_catalog):
    """Real code-part entities carry `CodePart`; it must not become a second `code_part`."""
    props = schemas(varied_catalog)["cost_dimensions"]
    assert "code_part" in props
    assert "CodePart" not in props
    run = run_tap(tap_config(varied_sandbox, companies=["US01"]), catalog=varied_catalog)
    records = run.records("cost_dimensions")
    assert records
    assert {r["code_part"] for r in records} == set("BCDEFGHIJ")
    assert not [r for r in records if "CodePart" in r]

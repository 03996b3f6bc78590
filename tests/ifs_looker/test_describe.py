"""`ifs-looker describe`: a projection's entity sets, keys and typed properties from the live
`$metadata`, so names for `stream_overrides` and `custom_streams` need no EDMX reading.

Real HTTP against the IFS sandbox serving the "varied" tenant (custom fields, enums, binary,
stream and navigation properties).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ifs_looker.cli import main
from ifs_looker_core.encrypted_settings import encrypt, generate_key
from ifs_looker_sandboxes.ifs_cloud import IfsCloudSandbox
from tests.sandboxes import running_ifs_cloud


@pytest.fixture(scope="module")
def varied() -> Iterator[IfsCloudSandbox]:
    with running_ifs_cloud(
        tenant="varied", voucher_rows_per_company=10, orders_per_company=3, invoices_per_company=3
    ) as sandbox:
        yield sandbox


def write_config(sandbox: IfsCloudSandbox, path: Path, **changes: object) -> Path:
    config = {
        "base_url": sandbox.base_url,
        "realm": sandbox.config.realm,
        "client_id": sandbox.config.client_id,
        "client_secret": sandbox.config.client_secret,
        "companies": ["US01"],
        "max_retries": 1,
        **changes,
    }
    path.write_text(json.dumps(config))
    return path


def line_of(output: str, name: str) -> str:
    """The first property line of `name` (the first entity set's, where several have it)."""
    return next(ln for ln in output.splitlines() if re.match(rf"\s+{name}\s", ln))


def test_describe_lists_entity_sets_keys_and_typed_properties(varied, tmp_path, capsys):
    config = write_config(varied, tmp_path / "tap.json")
    assert main(["describe", "VoucherRowsAnalysis", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(
        f"VoucherRowsAnalysis.svc at {varied.base_url}/main/ifsapplications/projection/v1/"
        "VoucherRowsAnalysis.svc\n"
    )
    for entity_set in ("VoucherRowSet", "Reference_Account", "Reference_CodeB", "Reference_CodeJ"):
        assert f"entity set {entity_set} (entity type " in out
    assert "  key: Company, VoucherType, AccountingYear, VoucherNo, RowNo" in out
    assert "key; MaxLength 20" in line_of(out, "Company")
    assert "Edm.Decimal" in line_of(out, "Cf_Precision_Probe")
    assert "Edm.TimeOfDay" in line_of(out, "Cf_Posting_Time")
    assert "Edm.DateTimeOffset" in line_of(out, "Cf_Approved_At")
    assert "MaxLength 4000" in line_of(out, "Cf_Cost_Driver")
    assert re.search(
        r"AccountingLedgFlag +enum: LedgerAccount, NotLedgerAccount$", line_of(out, "LedgFlag")
    )
    assert "Cf_Customer_Project_Id" in out
    assert "date/timestamp fields (replication_key): VoucherDate, EntryDate" in out
    assert "Cf_Signature (Edm.Binary), DocumentData (Edm.Stream)" in out
    assert "CodeBRef (navigation)" in out
    assert "PeriodAllocation" not in out  # this tenant has none


def test_describe_one_entity_set_as_json_with_a_path_prefix_and_an_encrypted_secret(
    varied, tmp_path, capsys, monkeypatch
):
    key = generate_key()
    monkeypatch.setenv("IFS_LOOKER_SECRET_KEY", key)
    secret = encrypt(varied.config.client_secret, key)
    config = write_config(varied, tmp_path / "tap.json", client_secret=secret)
    argv = [
        "describe",
        "CustomerOrderHandling.svc",
        "--config",
        str(config),
        "--path-prefix",
        "/int/ifsapplications/projection/v1",
        "--entity-set",
        "CustomerOrderSet",
        "--json",
    ]
    assert main(argv) == 0
    described = json.loads(capsys.readouterr().out)
    assert described["url"].endswith("/int/ifsapplications/projection/v1/CustomerOrderHandling.svc")
    [orders] = described["entity_sets"]
    assert orders["name"] == "CustomerOrderSet"
    props = {p["name"]: p for p in orders["properties"]}
    assert props["Priority"]["enum"] == ["Low", "Normal", "High", "Urgent"]
    assert props["CustomerPoNo"]["max_length"] == 50
    assert props["Cf_Promised_At"]["type"] == "Edm.DateTimeOffset"
    assert props["OrderNo"]["key"] is True
    # the sandbox logs a request after answering it
    logged = varied.wait_for_request(lambda r: r[1].startswith("/int/") and "$metadata" in r[1])
    assert logged is not None and logged[1].startswith("/int/")


def test_describe_fails_clearly(varied, tmp_path, capsys):
    config = write_config(varied, tmp_path / "tap.json")
    assert main(["describe", "NoSuchHandling", "--config", str(config)]) == 1
    err = capsys.readouterr().err
    assert "unknown projection 'NoSuchHandling'" in err
    assert "/NoSuchHandling.svc/$metadata" in err

    assert (
        main(["describe", "VoucherRowsAnalysis", "--config", str(config), "--entity-set", "X"]) == 1
    )
    assert "has no entity set 'X'; it has: Reference_Account" in capsys.readouterr().err

    wrong = write_config(varied, tmp_path / "wrong.json", client_secret="not-the-secret")
    assert main(["describe", "VoucherRowsAnalysis", "--config", str(wrong)]) == 1
    err = capsys.readouterr().err
    assert "refused client" in err and "not-the-secret" not in err

    assert main(["describe", "X", "--config", str(tmp_path / "missing.json")]) == 1
    assert "cannot read" in capsys.readouterr().err


def test_describe_is_an_ifs_looker_command():
    result = subprocess.run(
        [sys.executable, "-m", "ifs_looker.cli", "describe", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0
    assert "--config" in result.stdout and "--entity-set" in result.stdout

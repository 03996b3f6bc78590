"""`meltano run` against an IFS tenant whose entity types are not our sandbox's.

Every real tenant has properties and custom fields of its own, and lacks some of ours.
Discovery reads the live `$metadata` (Meltano's catalog is refreshed, as the README
tells users to), so every property of the tenant lands in the warehouse with its exact
value, and the properties this tenant lacks do not get in the way.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from ifs_looker_sandboxes.ifs_cloud import IfsCloudSandbox, tenant_variant
from target_looker.naming import snake_case
from tests.sandboxes import running_ifs_cloud

from .conftest import (
    MeltanoRunner,
    Warehouse,
    assert_warehouse_equals_sandbox,
    make_warehouse,
    meltano_env,
)

VARIED = tenant_variant("varied")
# Left out of the schema by design (SPEC 4.2): the tap logs their names instead.
NOT_COLUMNS = {"Edm.Binary", "Edm.Stream"}


@pytest.fixture
def varied_sandbox() -> Iterator[IfsCloudSandbox]:
    with running_ifs_cloud(
        tenant="varied", voucher_rows_per_company=60, orders_per_company=4, invoices_per_company=4
    ) as sandbox:
        yield sandbox


@pytest.fixture
def postgres_warehouse(tmp_path: Path) -> Iterator[Warehouse]:
    # PostgreSQL NUMERIC holds the tenant's Decimal(130, 65) custom field exactly.
    yield from make_warehouse("postgres", tmp_path)


@pytest.mark.parametrize("batch_files", [False, True], ids=["record lines", "batch files"])
def test_every_property_of_another_tenant_lands_with_its_value(
    meltano: MeltanoRunner,
    varied_sandbox: IfsCloudSandbox,
    postgres_warehouse: Warehouse,
    tmp_path: Path,
    batch_files: bool,
) -> None:
    env = meltano_env(tmp_path, varied_sandbox, postgres_warehouse)
    if batch_files:  # the path of large loads: records in files, BATCH messages name them
        root = (tmp_path / "batches").as_uri()
        env["TAP_IFSCLOUD_BATCH_CONFIG"] = json.dumps(
            {"encoding": {"format": "jsonl"}, "storage": {"root": root}, "batch_size": 50}
        )
    result = meltano(env, "run", "--refresh-catalog", "tap-ifscloud", "target-looker")
    assert result.returncode == 0, result.stderr[-3000:]

    left_out = {
        p.name for props in VARIED.extra_properties.values() for p in props if p.type in NOT_COLUMNS
    }
    columns = set(postgres_warehouse.rows("voucher_rows")[0])
    extras = {p.name for p in VARIED.extra_properties["VoucherRowSet"]} - left_out
    assert extras, "the varied tenant has extra voucher properties"
    assert {snake_case(name) for name in extras} <= columns
    assert not {snake_case(n) for n in VARIED.missing_properties["VoucherRowSet"]} & columns
    assert postgres_warehouse.rows("_load_rejects") == []
    if batch_files:  # written, loaded, deleted
        assert (tmp_path / "batches").is_dir() and not list((tmp_path / "batches").iterdir())
    assert_warehouse_equals_sandbox(postgres_warehouse, varied_sandbox, ignore=left_out)

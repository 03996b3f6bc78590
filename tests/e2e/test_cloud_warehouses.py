"""`meltano run tap-ifscloud target-looker` into BigQuery and Snowflake, for real clients:
the official ones, against local emulators (bqemulator, fakesnow's server) started here.
Every stream lands row for row as the IFS sandbox holds it. (Re-runs, the version
guard, rejects, replay, ACTIVATE_VERSION and kill/resume are proven per dialect in
tests/target_looker/warehouse/test_bigquery.py and test_snowflake.py, in less time.)

The target plugin's environment needs the extras: meltano.yml's `pip_url` installs
`-e .[bigquery,snowflake]`.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ifs_looker_sandboxes.ifs_cloud import IfsCloudSandbox
from tap_ifscloud.streams import BUILTIN_STREAMS
from target_looker.warehouse import open_warehouse
from target_looker.warehouse.base import TableRef
from tests import emulators

from .conftest import SCHEMA, MeltanoRunner, assert_warehouse_equals_sandbox, meltano_env

pytestmark = pytest.mark.slow


class EmulatedWarehouse:
    """Where the target writes (`url`), and its tables read back as dicts."""

    def __init__(self, kind: str, emulator: emulators.Emulator) -> None:
        self.kind = kind
        self.url = emulators.warehouse_url(emulator, kind, SCHEMA)

    def rows(self, table: str) -> list[dict]:
        warehouse = open_warehouse(self.url)
        warehouse.connect()
        try:
            ref = TableRef(SCHEMA, table)
            columns = warehouse.existing_columns(ref)
            assert columns is not None, f"table {table} is missing"
            names = list(columns)
            # Each value with its own IS NULL: fakesnow reads a NULL timestamp back as
            # 1970-01-01, so NULLs are taken from the flag.
            select = ", ".join(f"{warehouse.quote(n)}, {warehouse.quote(n)} IS NULL" for n in names)
            rows = warehouse.fetchall(f"SELECT {select} FROM {warehouse.qualified(ref)}")  # noqa: S608
            out = []
            for row in rows:
                values = {}
                for i, name in enumerate(names):
                    value, is_null = row[2 * i], row[2 * i + 1]
                    if columns[name].kind == "json" and isinstance(value, str):
                        value = json.loads(value)
                    values[name] = None if is_null else value
                out.append(values)
            return out
        finally:
            warehouse.close()


@pytest.fixture(params=["bigquery", "snowflake"])
def cloud_warehouse(request, tmp_path_factory) -> Iterator[EmulatedWarehouse]:
    workdir = tmp_path_factory.mktemp(f"{request.param}-{uuid.uuid4().hex[:6]}")
    with emulators.running(request.param, workdir) as emulator:
        yield EmulatedWarehouse(request.param, emulator)


def test_meltano_run_loads_every_stream_row_for_row(
    meltano: MeltanoRunner,
    ifs_sandbox: IfsCloudSandbox,
    cloud_warehouse: EmulatedWarehouse,
    tmp_path: Path,
) -> None:
    env = meltano_env(tmp_path, ifs_sandbox, cloud_warehouse)  # type: ignore[arg-type]
    first = meltano(env, "run", "tap-ifscloud", "target-looker")
    assert first.returncode == 0, first.stderr[-3000:]
    assert_warehouse_equals_sandbox(cloud_warehouse, ifs_sandbox)  # type: ignore[arg-type]
    runs = cloud_warehouse.rows("_load_runs")
    assert [r["status"] for r in runs] == ["succeeded"]
    total = sum(
        len(ifs_sandbox.rows(s.projection, e)) for s in BUILTIN_STREAMS for _, e in s.entity_sets()
    )
    assert runs[0]["records_in"] == total

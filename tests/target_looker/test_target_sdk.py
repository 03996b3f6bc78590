"""The Meltano SDK's standard target test suite, against both warehouses.

The suite's config is fixed when its class is built, but it is read when each test
runs: the fixtures below fill in a fresh DuckDB file and a fresh PostgreSQL database
for this module (dropped afterwards), so the suite never loads into a shared database.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from singer_sdk.testing import get_target_test_class

from target_looker.target import TargetLooker
from tests.postgres import database_url, fresh_database

SUITE_SCHEMA = "sdk_suite"
DUCKDB_CONFIG: dict[str, str] = {"default_target_schema": SUITE_SCHEMA}
POSTGRES_CONFIG: dict[str, str] = {"default_target_schema": SUITE_SCHEMA}

TestTargetLookerDuckDB = get_target_test_class(TargetLooker, config=DUCKDB_CONFIG)
TestTargetLookerPostgres = get_target_test_class(TargetLooker, config=POSTGRES_CONFIG)


@pytest.fixture(scope="module", autouse=True)
def _fresh_warehouses(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    duckdb_file: Path = tmp_path_factory.mktemp("sdk_suite") / "sdk.duckdb"
    with fresh_database("tl_sdk_suite") as name:
        DUCKDB_CONFIG["warehouse_url"] = f"duckdb:///{duckdb_file}"
        POSTGRES_CONFIG["warehouse_url"] = database_url(name)
        yield
        with psycopg.connect(database_url(name)) as conn:
            loaded = conn.execute(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = %s",
                (SUITE_SCHEMA,),
            ).fetchone()
        assert loaded and loaded[0] > 0, "the suite must have loaded into its fresh database"
        assert duckdb_file.exists(), "the suite must have loaded into its fresh DuckDB file"

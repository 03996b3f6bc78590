"""The Meltano SDK's standard target test suite, against both warehouses.

The suite's config is fixed when its class is built, but it is read when each test
runs: the fixtures below fill in a fresh DuckDB file and a fresh PostgreSQL database
for this module (dropped afterwards), so the suite never loads into a shared database.

One standard test is replaced: the SDK expects a record without its key property to
stop the run (`MissingKeyPropertiesError`); SPEC 5.2 makes it a reject, so the same
input file must load and leave the record in `_load_rejects`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from singer_sdk.testing import get_target_test_class
from singer_sdk.testing.suites import SingerTestSuite, target_tests
from singer_sdk.testing.target_tests import TargetRecordMissingKeyProperty
from singer_sdk.testing.templates import TargetFileTestTemplate

from target_looker.target import TargetLooker
from tests.postgres import database_url, fresh_database
from tests.target_looker.singer_io import query

SUITE_SCHEMA = "sdk_suite"
DUCKDB_CONFIG: dict[str, str] = {"default_target_schema": SUITE_SCHEMA}
POSTGRES_CONFIG: dict[str, str] = {"default_target_schema": SUITE_SCHEMA}


class TargetRecordMissingKeyIsAReject(TargetFileTestTemplate):
    """The SDK's `record_missing_key_property` input: it loads, the keyless record is a reject."""

    name = "record_missing_key_property"

    def test(self) -> None:
        self.runner.sync_all()

    def validate(self) -> None:
        rejects = query(
            self.runner.config,
            "SELECT stream, reason FROM {s}._load_rejects "
            "WHERE stream = 'test_record_missing_key_property'",
        )
        assert rejects, "the record without its key must be in _load_rejects"
        assert all("key" in reason for _, reason in rejects)


SUITE = SingerTestSuite(
    kind="target",
    tests=[
        *(test for test in target_tests.tests if test is not TargetRecordMissingKeyProperty),
        TargetRecordMissingKeyIsAReject,
    ],
)


def suite_class(config: dict[str, str]) -> type:
    return get_target_test_class(
        TargetLooker, config=config, include_target_tests=False, custom_suites=[SUITE]
    )


TestTargetLookerDuckDB = suite_class(DUCKDB_CONFIG)
TestTargetLookerPostgres = suite_class(POSTGRES_CONFIG)


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

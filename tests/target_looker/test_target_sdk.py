"""The Meltano SDK's standard target test suite, against both warehouses."""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from singer_sdk.testing import get_target_test_class

from target_looker.target import TargetLooker
from tests.postgres import PG_ADMIN

_DUCKDB_DIR = Path(tempfile.mkdtemp(prefix="target_looker_sdk_"))

TestTargetLookerDuckDB = get_target_test_class(
    TargetLooker,
    config={
        "warehouse_url": f"duckdb:///{_DUCKDB_DIR / 'sdk.duckdb'}",
        "default_target_schema": "sdk_suite",
    },
)

# The standard suite's config is fixed when the class is built, so it loads into a
# schema of its own in the default database; the schema is dropped by the fixture below.
SDK_PG_SCHEMA = f"sdk_suite_{uuid.uuid4().hex[:8]}"

TestTargetLookerPostgres = get_target_test_class(
    TargetLooker,
    config={
        "warehouse_url": "postgresql://postgres@127.0.0.1:5432/postgres",
        "default_target_schema": SDK_PG_SCHEMA,
    },
)


@pytest.fixture(scope="module", autouse=True)
def _drop_sdk_schema() -> Iterator[None]:
    yield
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{SDK_PG_SCHEMA}" CASCADE')

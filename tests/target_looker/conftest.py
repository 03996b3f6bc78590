"""Fixtures for target-looker tests: a real PostgreSQL database and real DuckDB files.

PostgreSQL must be running on 127.0.0.1:5432 (trust auth); without it these tests
fail, they do not skip. Each test session gets its own database, dropped at the end.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.postgres import database_url, fresh_database


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database for this session; yields its URL."""
    with fresh_database("tl_test") as name:
        yield database_url(name)


@pytest.fixture(params=["duckdb", "postgresql"])
def warehouse_url(request: pytest.FixtureRequest, tmp_path) -> str:
    """Each test using this runs once per warehouse."""
    if request.param == "duckdb":
        return f"duckdb:///{tmp_path / 'warehouse.duckdb'}"
    return request.getfixturevalue("pg_database")


@pytest.fixture
def config(warehouse_url: str) -> dict:
    """Target config with a schema of its own, so tests never share tables."""
    return {
        "warehouse_url": warehouse_url,
        "default_target_schema": f"t_{uuid.uuid4().hex[:8]}",
    }

"""End-to-end fixtures: the real `meltano` CLI in this project, against in-process sandboxes.

Each test gets its own Meltano system database (state) and its own warehouse;
plugin settings come from environment variables, which Meltano ranks above
`meltano.yml`, so the project file stays as users see it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from decimal import Decimal
from pathlib import Path

import duckdb
import psycopg
import pytest

from ifs_looker_sandboxes.ifs_cloud import IfsCloudSandbox
from tap_ifscloud.streams import BUILTIN_STREAMS
from target_looker.naming import snake_case
from tests.postgres import database_url, fresh_database

PROJECT = Path(__file__).resolve().parents[2]
SCHEMA = "ifs_cloud"


@pytest.fixture(scope="session")
def meltano_bin() -> str:
    found = shutil.which("meltano")
    assert found, "meltano is not on PATH: run the tests with `make test` (it installs Meltano)"
    if not (PROJECT / ".meltano" / "extractors" / "tap-ifscloud" / "venv").exists():
        subprocess.run([found, "install"], cwd=PROJECT, check=True, capture_output=True)
    return found


@dataclass
class Warehouse:
    """Where one test's target writes: a DuckDB file or a fresh PostgreSQL database."""

    url: str
    kind: str
    dbname: str = ""
    extra_secrets: list[str] = field(default_factory=list)

    def rows(self, table: str) -> list[dict]:
        sql = f'SELECT * FROM "{SCHEMA}"."{table}"'  # noqa: S608 - fixed test identifiers
        if self.kind == "duckdb":
            with duckdb.connect(self.url.removeprefix("duckdb:///"), read_only=True) as con:
                cursor = con.execute(sql)
                names = [d[0] for d in cursor.description]
                return [dict(zip(names, r, strict=True)) for r in cursor.fetchall()]
        with psycopg.connect(self.pg_dsn) as con, con.cursor() as cursor:
            cursor.execute(sql)
            names = [d.name for d in cursor.description]
            return [dict(zip(names, r, strict=True)) for r in cursor.fetchall()]

    @property
    def pg_dsn(self) -> str:
        return database_url(self.dbname)


@pytest.fixture(params=["duckdb", "postgres"])
def warehouse(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Warehouse]:
    yield from make_warehouse(request.param, tmp_path)


def make_warehouse(kind: str, tmp_path: Path, password: str | None = None) -> Iterator[Warehouse]:
    if kind == "duckdb":
        yield Warehouse(f"duckdb:///{tmp_path / 'warehouse.duckdb'}", "duckdb")
        return
    with fresh_database("e2e") as name:
        yield Warehouse(database_url(name, password), "postgres", name)


MeltanoRunner = Callable[..., subprocess.CompletedProcess]


def meltano_env(tmp_path: Path, sandbox: IfsCloudSandbox, warehouse: Warehouse) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("TAP_IFSCLOUD", "TARGET_LOOKER"))
    }
    env.update(
        MELTANO_ENVIRONMENT="dev",
        MELTANO_DATABASE_URI=f"sqlite:///{tmp_path / 'meltano.db'}",
        MELTANO_SEND_ANONYMOUS_USAGE_STATS="false",
        TAP_IFSCLOUD_BASE_URL=sandbox.base_url,
        TAP_IFSCLOUD_REALM=sandbox.config.realm,
        TAP_IFSCLOUD_CLIENT_ID=sandbox.config.client_id,
        TAP_IFSCLOUD_CLIENT_SECRET=sandbox.config.client_secret,
        TAP_IFSCLOUD_COMPANIES='["' + '","'.join(sandbox.config.companies) + '"]',
        TAP_IFSCLOUD_MAX_BACKOFF_SECONDS="3",
        TARGET_LOOKER_WAREHOUSE_URL=warehouse.url,
        TARGET_LOOKER_LOOKER_BASE_URL="",  # no Looker here: the post-load refresh is skipped
        TARGET_LOOKER_LOOKML_DIR=str(tmp_path / "lookml"),
    )
    return env


@pytest.fixture
def meltano(meltano_bin: str) -> MeltanoRunner:
    def run(env: dict[str, str], *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        return subprocess.run(
            [meltano_bin, *args],
            cwd=PROJECT,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    return run


# what the warehouse must hold -------------------------------------------------------------------


def normalise(value: object) -> object:
    """Warehouse and API values in one comparable form (exact numbers, ISO dates)."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (int, Decimal)):
        return Decimal(value).normalize()
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, str) and value.endswith("Z") and "T" in value:
        try:
            return normalise(datetime.fromisoformat(value.replace("Z", "+00:00")))
        except ValueError:
            return value
    return value


def expected_tables(
    sandbox: IfsCloudSandbox, ignore: set[str] = frozenset()
) -> dict[str, dict[tuple, dict]]:
    """Per stream: key -> the row the warehouse must hold (snake_case columns, _ifs_etag).

    `ignore`: properties the tap leaves out by design (binary and stream properties).
    """
    tables: dict[str, dict[tuple, dict]] = {}
    for stream in BUILTIN_STREAMS:
        rows: dict[tuple, dict] = {}
        for code_part, entity_set in stream.entity_sets():
            for source in sandbox.rows(stream.projection, entity_set):
                row = {
                    snake_case(k): normalise(v)
                    for k, v in source.items()
                    if k != "@odata.etag" and k not in ignore
                }
                row["_ifs_etag"] = source["@odata.etag"]
                if code_part is not None:
                    row["code"] = row.pop(snake_case(stream.code_field_for(code_part)))
                    # a tenant's own `CodePart` (real IFS has one) is the `code_part` column
                    assert row.pop("code_part", code_part) == code_part
                    row["code_part"] = code_part
                rows[key_of(stream.name, row)] = row
        tables[stream.name] = rows
    return tables


KEY_COLUMNS = {
    s.name: tuple(snake_case(k) for k in s.key_properties or ()) for s in BUILTIN_STREAMS
}


def key_of(stream: str, row: dict) -> tuple:
    return tuple(row[n] for n in KEY_COLUMNS[stream])


def assert_warehouse_equals_sandbox(
    warehouse: Warehouse, sandbox: IfsCloudSandbox, ignore: set[str] = frozenset()
) -> None:
    for stream, expected in expected_tables(sandbox, ignore).items():
        live = [r for r in warehouse.rows(stream) if r["_sdc_deleted_at"] is None]
        actual = {}
        for row in live:
            clean = {k: normalise(v) for k, v in row.items() if not k.startswith(("_sdc", "_load"))}
            clean.pop("_ifs_objversion")
            actual[key_of(stream, clean)] = clean
        assert set(actual) == set(expected), f"{stream}: keys differ"
        for key, row in expected.items():
            # a stream over several entity sets (code parts) has the union of their columns:
            # a column this row's entity set lacks must be null
            absent = {k: v for k, v in actual[key].items() if k not in row}
            assert all(v is None for v in absent.values()), f"{stream} {key}: {absent}"
            assert {k: v for k, v in actual[key].items() if k in row} == row, f"{stream} {key}"

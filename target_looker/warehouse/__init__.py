"""Warehouse dialects, chosen by the backend of `warehouse_url`.

Snowflake or BigQuery plug in by adding a module and a line to DIALECTS.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from target_looker.warehouse.base import Warehouse, WarehouseError

DEFAULT_WAREHOUSE_PATH = Path("output") / "warehouse.duckdb"

# URL backend -> "module:class"
DIALECTS: dict[str, str] = {
    "postgresql": "target_looker.warehouse.postgres:PostgresWarehouse",
    "postgres": "target_looker.warehouse.postgres:PostgresWarehouse",
    "duckdb": "target_looker.warehouse.duckdb:DuckDBWarehouse",
}


def default_url() -> str:
    """An embedded DuckDB file under the current directory (the project folder)."""
    return f"duckdb:///{DEFAULT_WAREHOUSE_PATH}"


def parse_url(url: str) -> URL:
    """Parse a SQLAlchemy URL; plain `postgresql://` means psycopg 3, not psycopg2."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise WarehouseError(
            "warehouse_url is not a valid SQLAlchemy URL (e.g. postgresql://user@host/db "
            "or duckdb:///output/warehouse.duckdb)"
        ) from None
    if parsed.get_backend_name() in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def open_warehouse(url: str | None) -> Warehouse:
    """The Warehouse for `url` (not yet connected)."""
    parsed = parse_url(url or default_url())
    backend = parsed.get_backend_name()
    target = DIALECTS.get(backend)
    if target is None:
        raise WarehouseError(
            f"warehouse_url dialect {backend!r} is not supported; "
            f"supported: {', '.join(sorted(DIALECTS))}"
        )
    module_name, class_name = target.split(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    return cls(parsed)


__all__ = ["DIALECTS", "Warehouse", "WarehouseError", "open_warehouse", "parse_url"]

"""Warehouse dialects, chosen by the backend of `warehouse_url`.

Snowflake or BigQuery plug in by adding a module and a line to DIALECTS.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from target_looker.warehouse.base import Warehouse, WarehouseError

DEFAULT_WAREHOUSE_PATH = Path("output") / "warehouse.duckdb"

# URL backend -> "module:class"
DIALECTS: dict[str, str] = {
    "postgresql": "target_looker.warehouse.postgres:PostgresWarehouse",
    "postgres": "target_looker.warehouse.postgres:PostgresWarehouse",
    "duckdb": "target_looker.warehouse.duckdb:DuckDBWarehouse",
    # Optional extras: `pip install 'ifs-looker-connector[bigquery]'` / `[snowflake]`.
    "bigquery": "target_looker.warehouse.bigquery:BigQueryWarehouse",
    "snowflake": "target_looker.warehouse.snowflake:SnowflakeWarehouse",
}
# Dialects whose constructor also takes the target's settings (key files, endpoints, ...).
TAKES_SETTINGS = frozenset({"bigquery", "snowflake"})


def default_url() -> str:
    """An embedded DuckDB file under the current directory (the project folder)."""
    return f"duckdb:///{DEFAULT_WAREHOUSE_PATH}"


POSTGRES_BACKENDS = ("postgresql", "postgres")
_BAD_PORT = (
    "warehouse_url has a port that is not a number from 1 to 65535 "
    "(e.g. postgresql://user@host:5432/db)"
)


def _multi_host_as_query(url: str) -> str:
    """libpq's multi-host form `postgresql://u@h1:5432,h2:5433/db`, which SQLAlchemy cannot
    parse, as the equivalent `postgresql://u@/db?host=h1&host=h2&port=5432&port=5433`.

    Error messages here never quote the URL: its user part may hold a password.
    """
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.split("+")[0] not in POSTGRES_BACKENDS:
        return url
    head, _, query = rest.partition("?")
    at = head.rfind("@")
    hosts, _, path = head[at + 1 :].partition("/")
    if "," not in hosts:
        return url
    names, ports = [], []
    for spec in hosts.split(","):
        if spec.startswith("["):  # [IPv6]:port
            name, _, port = spec[1:].partition("]")
            port = port.removeprefix(":")
        else:
            name, _, port = spec.partition(":")
        if port and not port.isdigit():
            raise WarehouseError(_BAD_PORT)
        names.append(name)
        ports.append(port)
    params = [f"host={name}" for name in names]  # percent-escapes decode once, as in libpq
    if any(ports):
        params += [f"port={p}" for p in ports]
    return (
        f"{scheme}://{head[: at + 1]}/{path}?" + "&".join(params) + (f"&{query}" if query else "")
    )


def _check_ports(parsed: URL) -> None:
    ports = [] if parsed.port is None else [str(parsed.port)]
    query_port = parsed.query.get("port")
    if query_port:
        ports += [query_port] if isinstance(query_port, str) else list(query_port)
    for port in ports:
        for part in port.split(","):
            if part and not (part.isdigit() and 1 <= int(part) <= 65535):
                raise WarehouseError(_BAD_PORT)


def parse_url(url: str) -> URL:
    """Parse a SQLAlchemy URL; plain `postgresql://` means psycopg 3, not psycopg2.

    PostgreSQL URLs may take any form libpq accepts (host, port, password, ... in the
    query; several hosts); a malformed one is an error naming `warehouse_url`, never
    quoting it (it may hold a password).
    """
    try:
        parsed = make_url(_multi_host_as_query(url))
    except ArgumentError:
        raise WarehouseError(
            "warehouse_url is not a valid SQLAlchemy URL (e.g. postgresql://user@host/db "
            "or duckdb:///output/warehouse.duckdb)"
        ) from None
    except ValueError:  # SQLAlchemy's int() of the port
        raise WarehouseError(_BAD_PORT) from None
    if parsed.get_backend_name() in POSTGRES_BACKENDS:
        _check_ports(parsed)
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def open_warehouse(url: str | None, settings: Mapping[str, Any] | None = None) -> Warehouse:
    """The Warehouse for `url` (not yet connected).

    `settings`: the target's config, for dialects that read more than the URL
    (`bigquery_service_account_key`, `bigquery_api_endpoint`, `snowflake_private_key`, ...).
    """
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
    if backend in TAKES_SETTINGS:
        return cls(parsed, settings=settings)
    return cls(parsed)


__all__ = ["DIALECTS", "Warehouse", "WarehouseError", "open_warehouse", "parse_url"]

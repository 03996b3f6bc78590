"""Check both ends before a run: IFS Cloud (tap config), Looker and the warehouse (target config).

IFS: token, `$metadata` and one page of each selected stream (the tap's own
connection test). Looker: login, the connection, Looker's connection test. Warehouse:
a probe table written, read back and dropped (through SQL Runner when
`write_path` is `looker_sql_runner`). One line per check; exit status 1 when any
check fails, with the side (ifs, looker, warehouse) and the reason, never a secret.
"""

from __future__ import annotations

import argparse
import contextlib
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ifs_looker.config_files import load_settings
from ifs_looker_core.encrypted_settings import SecretError

TAP_SECRETS = ("client_secret",)
TARGET_SECRETS = (
    "looker_client_secret",
    "warehouse_url",
    "bigquery_service_account_key",
    "snowflake_private_key",
    "snowflake_private_key_passphrase",
)
SQL_RUNNER = "looker_sql_runner"


@dataclass(frozen=True)
class CheckResult:
    side: str  # ifs | looker | warehouse
    name: str
    status: str  # PASS | FAIL | SKIP
    detail: str

    @property
    def failed(self) -> bool:
        return self.status == "FAIL"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tap-config", type=Path, help="tap-ifscloud config file (JSON)")
    parser.add_argument("--target-config", type=Path, help="target-looker config file (JSON)")


# IFS Cloud ---------------------------------------------------------------------------------------


def check_ifs(config: Mapping[str, Any]) -> list[CheckResult]:
    """The tap's connection test (token, $metadata, one page per selected stream)."""
    from tap_ifscloud.connection_test import AUTHENTICATION, run_connection_test
    from tap_ifscloud.tap import TapIFSCloud

    try:
        tap = TapIFSCloud(config=dict(config), parse_env_config=False, validate_config=True)
        result = run_connection_test(tap)
    except Exception as exc:
        return [CheckResult("ifs", "configuration", "FAIL", _reason(exc))]
    results = []
    for check in result.checks:
        detail = check.detail
        if check.name == AUTHENTICATION and check.url:
            detail += f" at {check.url}"
        results.append(CheckResult("ifs", check.name, "PASS" if check.ok else "FAIL", detail))
    return results


# Looker ------------------------------------------------------------------------------------------


def check_looker(config: Mapping[str, Any]) -> list[CheckResult]:
    """Login, GET /connections/{name}, PUT /connections/{name}/test."""
    from target_looker.looker_api import LookerAPIError
    from target_looker.refresh import LookerSettings

    try:
        settings = LookerSettings.from_config(config)
    except ValueError as exc:
        return [CheckResult("looker", "settings", "FAIL", str(exc))]
    if not settings.configured:
        status = "FAIL" if config.get("write_path") == SQL_RUNNER else "SKIP"
        return [
            CheckResult(
                "looker",
                "settings",
                status,
                "looker_base_url, looker_client_id and looker_client_secret are not all set "
                + (
                    "(write_path looker_sql_runner needs them)"
                    if status == "FAIL"
                    else "(the post-load Looker refresh will be skipped)"
                ),
            )
        ]
    results: list[CheckResult] = []
    with settings.client() as client:
        try:
            client.login()
        except LookerAPIError as exc:
            return [CheckResult("looker", "login", "FAIL", f"at {settings.base_url}: {exc}")]
        results.append(CheckResult("looker", "login", "PASS", f"logged in at {settings.base_url}"))
        name = settings.connection_name
        if not name:
            results.append(
                CheckResult("looker", "connection", "SKIP", "looker_connection_name is not set")
            )
            return results
        try:
            connection = client.connection(name)
            results.append(
                CheckResult(
                    "looker",
                    f"connection {name}",
                    "PASS",
                    f"dialect {connection.get('dialect_name')}, database "
                    f"{connection.get('database')}",
                )
            )
            tests = client.test_connection(name)
        except LookerAPIError as exc:
            results.append(CheckResult("looker", f"connection {name}", "FAIL", str(exc)))
            return results
        for test in tests:
            ok = test.get("status") == "success"
            results.append(
                CheckResult(
                    "looker",
                    f"connection test {test.get('name')}",
                    "PASS" if ok else "FAIL",
                    str(test.get("message") or test.get("status")),
                )
            )
    return results


# warehouse ---------------------------------------------------------------------------------------


def _warehouse(config: Mapping[str, Any]):
    if config.get("write_path") == SQL_RUNNER:
        from target_looker.refresh import LookerSettings
        from target_looker.warehouse.looker_sql_runner import LookerSqlRunnerWarehouse

        return LookerSqlRunnerWarehouse(LookerSettings.from_config(config))
    from target_looker.warehouse import open_warehouse

    return open_warehouse(config.get("warehouse_url"), config)


def check_warehouse(config: Mapping[str, Any]) -> list[CheckResult]:
    """Create, write, read back and drop a probe table in the target schema."""
    from ifs_looker.warehouse_probe import probe_bulk_path
    from target_looker.columns import BIGINT, TEXT, Column
    from target_looker.load_session import target_schema_for
    from target_looker.warehouse.base import TableRef

    try:
        warehouse = _warehouse(config)
    except Exception as exc:
        return [CheckResult("warehouse", "configuration", "FAIL", _reason(exc))]
    schema = target_schema_for(config, warehouse)
    where = warehouse.safe_url
    probe = TableRef(schema, f"_ifs_looker_check_{uuid.uuid4().hex[:10]}")
    step = "connect"
    try:
        warehouse.connect()
        step = "create schema"
        warehouse.ensure_schema(schema)
        step = "create probe table"
        warehouse.create_table(probe, [Column("id", BIGINT), Column("note", TEXT)], ["id"])
        try:
            step = "write probe row"
            with warehouse.transaction():
                warehouse.execute(
                    f"INSERT INTO {warehouse.qualified(probe)} (id, note) VALUES ($1, $2)",  # noqa: S608
                    (1, "ifs-looker check"),
                )
            step = "read probe row"
            rows = warehouse.fetchall(f"SELECT note FROM {warehouse.qualified(probe)}")  # noqa: S608
            if [tuple(r) for r in rows] != [("ifs-looker check",)]:
                raise RuntimeError(f"the probe row read back as {rows!r}")
        finally:
            step = "drop probe table"
            warehouse.execute(f"DROP TABLE IF EXISTS {warehouse.qualified(probe)}")
        bulk = None
        if config.get("write_path") != SQL_RUNNER:  # SQL Runner has no bulk path of its own
            step = "bulk path (stage, versioned merge, exact types)"
            bulk = probe_bulk_path(warehouse, schema)
    except Exception as exc:
        return [CheckResult("warehouse", step, "FAIL", f"{where}: {_reason(exc)}")]
    finally:
        with contextlib.suppress(Exception):  # closing a broken connection may fail too
            warehouse.close()
    return [
        CheckResult(
            "warehouse", "probe table", "PASS", f"{where}: wrote, read and dropped {probe.name}"
        ),
        *([CheckResult("warehouse", "bulk path", "PASS", f"{where}: {bulk}")] if bulk else []),
    ]


# command -----------------------------------------------------------------------------------------


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _redactor(*configs: Mapping[str, Any]) -> Callable[[str], str]:
    """Masks every secret value of the configs, in case a library echoed one."""
    values = [
        str(c.get(name))
        for c in configs
        for name in (*TAP_SECRETS, *TARGET_SECRETS)
        if c.get(name) and name != "warehouse_url"
    ]
    for c in configs:
        url = c.get("warehouse_url")
        if url and "@" in str(url) and ":" in str(url).split("@")[0].split("//")[-1]:
            values.append(str(url).split("@")[0].split("//")[-1].split(":", 1)[1])

    def redact(text: str) -> str:
        for value in values:
            if len(value) >= 4:
                text = text.replace(value, "***")
        return text

    return redact


def run_checks(
    tap_config: Mapping[str, Any] | None, target_config: Mapping[str, Any] | None
) -> list[CheckResult]:
    results: list[CheckResult] = []
    if tap_config is not None:
        results += check_ifs(tap_config)
    if target_config is not None:
        results += check_looker(target_config)
        results += check_warehouse(target_config)
    return results


def report(results: Iterable[CheckResult], redact: Callable[[str], str]) -> tuple[str, bool]:
    results = list(results)
    lines = [f"{r.status:<5} {r.side:<9} {r.name}: {redact(r.detail)}" for r in results]
    failed = sorted({r.side for r in results if r.failed})
    if failed:
        count = sum(r.failed for r in results)
        lines.append(f"ifs-looker check: {count} check(s) FAILED ({', '.join(failed)})")
    else:
        lines.append(f"ifs-looker check: all {len(results)} check(s) passed")
    return "\n".join(lines), not failed


def run(args: argparse.Namespace) -> int:
    if args.tap_config is None and args.target_config is None:
        print("ifs-looker check: give --tap-config and/or --target-config")
        return 2
    configs: dict[str, dict[str, Any] | None] = {"tap": None, "target": None}
    try:
        if args.tap_config is not None:
            configs["tap"] = load_settings(args.tap_config, TAP_SECRETS)
        if args.target_config is not None:
            configs["target"] = load_settings(args.target_config, TARGET_SECRETS)
    except (ValueError, SecretError) as exc:
        print(f"FAIL  config    {exc}")
        return 1
    results = run_checks(configs["tap"], configs["target"])
    text, ok = report(results, _redactor(*(c for c in configs.values() if c)))
    print(text, flush=True)
    return 0 if ok else 1

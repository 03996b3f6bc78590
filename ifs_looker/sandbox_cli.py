"""Run the local IFS Cloud and Looker API sandboxes on loopback.

IFS credentials: client id `ifs-looker-sandbox`, secret `sandbox-secret`, realm `ifsdemo`.
Looker credentials: client id `looker-sandbox`, secret `looker-sandbox-secret`; its
connection (default `ifs_warehouse`) runs SQL Runner queries on --looker-warehouse-url.
Not a substitute for real IFS Cloud or Looker systems: they exist for the demo, tests
and benchmarks.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ifs_looker_sandboxes.faults import RETRY_AFTER_MODES
from ifs_looker_sandboxes.ifs_cloud import TENANTS, IfsCloudSandbox, SandboxConfig
from ifs_looker_sandboxes.looker import (
    DEFAULT_CONNECTION,
    DEFAULT_MODEL,
    LookerConfig,
    LookerSandbox,
)

LOOKER_PORT = 8720


def _share(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not a share between 0 and 1")
    return value


def _items(text: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in text.split(",") if item.strip())


@dataclass(frozen=True)
class Flag:
    """One command-line knob and the sandbox config field it sets (its default comes from there)."""

    flag: str
    field: str
    help: str
    parse: Callable[[str], Any] = str
    choices: tuple[str, ...] | None = None


IFS_FLAGS: tuple[Flag, ...] = (
    Flag("--seed", "seed", "seed of the generated data", int),
    Flag("--companies", "companies", "comma-separated company codes", _items),
    Flag(
        "--voucher-rows",
        "voucher_rows_per_company",
        "GL voucher rows per company (whole balanced vouchers, so about this many)",
        int,
    ),
    Flag("--orders", "orders_per_company", "purchase and customer orders per company", int),
    Flag("--invoices", "invoices_per_company", "supplier invoices per company", int),
    Flag("--realm", "realm", "IAM realm (namespace)"),
    Flag("--client-id", "client_id", "IAM client id"),
    Flag("--token-lifetime", "token_lifetime", "seconds an access token stays valid", float),
    Flag("--rate-429", "rate_429", "share of requests throttled", _share),
    Flag(
        "--retry-after", "retry_after", "Retry-After form on 429 responses", str, RETRY_AFTER_MODES
    ),
    Flag(
        "--retry-after-seconds",
        "retry_after_seconds",
        "how long 429 responses ask clients to wait",
        int,
    ),
    Flag("--rate-5xx", "rate_5xx", "share of requests answered 503/502/504", _share),
    Flag("--drop-rate", "drop_rate", "share of connections closed without answer", _share),
    Flag("--latency-ms", "latency_ms", "delay before each answer", float),
    Flag(
        "--server-page-size",
        "server_page_size",
        "page by itself with @odata.nextLink after this many rows",
        int,
    ),
    Flag(
        "--tenant",
        "tenant",
        "entity types of which tenant: 'default' (the built-in ones, shaped like a recorded "
        "live IFS Cloud) or 'varied' (another tenant's Cf_* custom fields and extra "
        "properties, some built-in properties missing)",
        str,
        tuple(TENANTS),
    ),
    Flag(
        "--mutations-per-request",
        "mutations_per_request",
        "mutation clock: inserts/updates/deletes applied before each data request",
        int,
    ),
)

LOOKER_FLAGS: tuple[Flag, ...] = (
    Flag("--looker-client-id", "client_id", "Looker API client id"),
    Flag(
        "--looker-token-lifetime",
        "token_lifetime",
        "seconds a Looker access token stays valid",
        float,
    ),
    Flag("--looker-datagroups", "datagroups", "comma-separated datagroups (model::name)", _items),
    Flag("--looker-pdts", "pdts", "comma-separated PDTs (model/view)", _items),
    Flag("--looker-rate-429", "rate_429", "share of Looker requests throttled", _share),
    Flag("--looker-rate-5xx", "rate_5xx", "share of Looker requests failing 5xx", _share),
)


def _add_flags(
    group: argparse._ActionsContainer, flags: tuple[Flag, ...], defaults: object, prefix: str
) -> None:
    for flag in flags:
        group.add_argument(
            flag.flag,
            dest=f"{prefix}{flag.field}",
            metavar=None if flag.choices else flag.flag.lstrip("-").upper().replace("-", "_"),
            type=flag.parse,
            choices=flag.choices,
            default=getattr(defaults, flag.field),
            help=flag.help,
        )


def _config_from(args: argparse.Namespace, flags: tuple[Flag, ...], prefix: str) -> dict:
    return {flag.field: getattr(args, f"{prefix}{flag.field}") for flag in flags}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.ArgumentDefaultsHelpFormatter
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (keep it loopback)"
    )
    parser.add_argument(
        "--port", type=int, default=8710, help="IFS sandbox port (0 picks a free one)"
    )
    _add_flags(parser, IFS_FLAGS, SandboxConfig(), "ifs_")
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    looker = parser.add_argument_group("Looker API sandbox")
    looker.add_argument(
        "--looker-port",
        type=int,
        default=None,
        help="Looker sandbox port (0 picks a free one); default 8720, or 0 when --port is 0",
    )
    looker.add_argument("--no-looker", action="store_true", help="do not start the Looker sandbox")
    looker.add_argument(
        "--looker-warehouse-url",
        default="duckdb:///output/warehouse.duckdb",
        help="database SQL Runner queries run on (postgresql://... or duckdb:///file)",
    )
    looker.add_argument(
        "--looker-connection", default=DEFAULT_CONNECTION, help="name of the Looker connection"
    )
    looker.add_argument(
        "--looker-lookml-dir",
        default=None,
        help=f"LookML checkout that POST /projects/{DEFAULT_MODEL}/validate lints",
    )
    _add_flags(looker, LOOKER_FLAGS, LookerConfig(), "looker_")


def config_from_args(args: argparse.Namespace) -> SandboxConfig:
    return SandboxConfig(**_config_from(args, IFS_FLAGS, "ifs_"))


def looker_config_from_args(args: argparse.Namespace) -> LookerConfig:
    return LookerConfig(
        connections={args.looker_connection: args.looker_warehouse_url},
        **_config_from(args, LOOKER_FLAGS, "looker_"),
    )


def start_looker(args: argparse.Namespace) -> LookerSandbox | None:
    """The Looker sandbox serving from a background thread, unless --no-looker."""
    if args.no_looker:
        return None
    lookml = {DEFAULT_MODEL: args.looker_lookml_dir} if args.looker_lookml_dir else None
    port = args.looker_port
    if port is None:
        port = 0 if args.port == 0 else LOOKER_PORT
    looker = LookerSandbox(
        looker_config_from_args(args),
        host=args.host,
        port=port,
        verbose=args.verbose,
        lookml_dirs=lookml,
    ).start()
    print(
        f"Looker sandbox on {looker.base_url}  client_id={looker.config.client_id}  "
        f"connection={args.looker_connection} -> {args.looker_warehouse_url}",
        flush=True,
    )
    return looker


def run(args: argparse.Namespace) -> int:
    sandbox = IfsCloudSandbox(
        config_from_args(args), host=args.host, port=args.port, verbose=args.verbose
    )
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    config = sandbox.config
    sandbox.bind()
    print(
        f"IFS Cloud sandbox on {sandbox.base_url}  realm={config.realm}  "
        f"client_id={config.client_id}  companies={','.join(config.companies)}  "
        f"tenant={config.tenant}",
        flush=True,
    )
    looker = start_looker(args)
    try:
        with contextlib.suppress(KeyboardInterrupt):
            sandbox.serve_forever()
    finally:
        if looker is not None:
            looker.stop()
    return 0

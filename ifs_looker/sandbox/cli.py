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

from .faults import RETRY_AFTER_MODES
from .ifs_cloud import IfsCloudSandbox, SandboxConfig
from .looker import DEFAULT_CONNECTION, DEFAULT_MODEL, LookerConfig, LookerSandbox

LOOKER_PORT = 8720


def _share(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not a share between 0 and 1")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = SandboxConfig()
    parser.formatter_class = argparse.ArgumentDefaultsHelpFormatter
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (keep it loopback)"
    )
    parser.add_argument(
        "--port", type=int, default=8710, help="IFS sandbox port (0 picks a free one)"
    )
    parser.add_argument(
        "--seed", type=int, default=defaults.seed, help="seed of the generated data"
    )
    parser.add_argument(
        "--companies", default=",".join(defaults.companies), help="comma-separated company codes"
    )
    parser.add_argument(
        "--voucher-rows",
        type=int,
        default=defaults.voucher_rows_per_company,
        help="GL voucher rows per company (whole balanced vouchers, so about this many)",
    )
    parser.add_argument(
        "--orders",
        type=int,
        default=defaults.orders_per_company,
        help="purchase and customer orders per company",
    )
    parser.add_argument(
        "--invoices",
        type=int,
        default=defaults.invoices_per_company,
        help="supplier invoices per company",
    )
    parser.add_argument("--realm", default=defaults.realm, help="IAM realm (namespace)")
    parser.add_argument("--client-id", default=defaults.client_id, help="IAM client id")
    parser.add_argument(
        "--token-lifetime",
        type=float,
        default=defaults.token_lifetime,
        help="seconds an access token stays valid",
    )
    parser.add_argument("--rate-429", type=_share, default=0.0, help="share of requests throttled")
    parser.add_argument(
        "--retry-after",
        choices=RETRY_AFTER_MODES,
        default=defaults.retry_after,
        help="Retry-After form on 429 responses",
    )
    parser.add_argument(
        "--retry-after-seconds",
        type=int,
        default=defaults.retry_after_seconds,
        help="how long 429 responses ask clients to wait",
    )
    parser.add_argument(
        "--rate-5xx", type=_share, default=0.0, help="share of requests answered 503/502/504"
    )
    parser.add_argument(
        "--drop-rate", type=_share, default=0.0, help="share of connections closed without answer"
    )
    parser.add_argument("--latency-ms", type=float, default=0.0, help="delay before each answer")
    parser.add_argument(
        "--server-page-size",
        type=int,
        default=None,
        help="page by itself with @odata.nextLink after this many rows",
    )
    parser.add_argument(
        "--mutations-per-request",
        type=int,
        default=0,
        help="mutation clock: inserts/updates/deletes applied before each data request",
    )
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    add_looker_arguments(parser)


def add_looker_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = LookerConfig()
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
        "--looker-client-id", default=defaults.client_id, help="Looker API client id"
    )
    looker.add_argument(
        "--looker-token-lifetime",
        type=float,
        default=defaults.token_lifetime,
        help="seconds a Looker access token stays valid",
    )
    looker.add_argument(
        "--looker-datagroups",
        default=",".join(defaults.datagroups),
        help="comma-separated datagroups (model::name)",
    )
    looker.add_argument(
        "--looker-pdts", default=",".join(defaults.pdts), help="comma-separated PDTs (model/view)"
    )
    looker.add_argument(
        "--looker-lookml-dir",
        default=None,
        help=f"LookML checkout that POST /projects/{DEFAULT_MODEL}/validate lints",
    )
    looker.add_argument(
        "--looker-rate-429", type=_share, default=0.0, help="share of Looker requests throttled"
    )
    looker.add_argument(
        "--looker-rate-5xx", type=_share, default=0.0, help="share of Looker requests failing 5xx"
    )


def config_from_args(args: argparse.Namespace) -> SandboxConfig:
    return SandboxConfig(
        seed=args.seed,
        companies=tuple(c.strip() for c in args.companies.split(",") if c.strip()),
        voucher_rows_per_company=args.voucher_rows,
        orders_per_company=args.orders,
        invoices_per_company=args.invoices,
        realm=args.realm,
        client_id=args.client_id,
        token_lifetime=args.token_lifetime,
        rate_429=args.rate_429,
        retry_after=args.retry_after,
        retry_after_seconds=args.retry_after_seconds,
        rate_5xx=args.rate_5xx,
        drop_rate=args.drop_rate,
        latency_ms=args.latency_ms,
        server_page_size=args.server_page_size,
        mutations_per_request=args.mutations_per_request,
    )


def _items(text: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in text.split(",") if item.strip())


def looker_config_from_args(args: argparse.Namespace) -> LookerConfig:
    return LookerConfig(
        client_id=args.looker_client_id,
        token_lifetime=args.looker_token_lifetime,
        connections={args.looker_connection: args.looker_warehouse_url},
        datagroups=_items(args.looker_datagroups),
        pdts=_items(args.looker_pdts),
        rate_429=args.looker_rate_429,
        rate_5xx=args.looker_rate_5xx,
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
        f"client_id={config.client_id}  companies={','.join(config.companies)}",
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

"""Run the local IFS Cloud sandbox on loopback (the Looker sandbox joins it in a later release).

Sandbox credentials: client id `ifs-looker-sandbox`, secret `sandbox-secret`, realm `ifsdemo`.
Not a substitute for a real IFS Cloud system: it exists for the demo, tests and benchmarks.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys

from .ifs_cloud import IfsCloudSandbox, SandboxConfig
from .ifs_cloud.config import RETRY_AFTER_MODES


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
    with contextlib.suppress(KeyboardInterrupt):
        sandbox.serve_forever()
    return 0

"""Looker sandbox settings: credentials, token lifetime, connections, datagroups, PDTs, faults."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..ifs_cloud.config import RETRY_AFTER_MODES

DEFAULT_CONNECTION = "ifs_warehouse"
DEFAULT_MODEL = "ifs_cloud"


@dataclass(frozen=True)
class LookerConfig:
    """Everything that shapes one Looker sandbox; the defaults are a well-behaved instance.

    `connections` maps a Looker connection name to the SQLAlchemy-style URL of the
    real database SQL Runner executes against (`postgresql://...` or `duckdb:///file`).
    The fault knobs have the IFS sandbox's names, so both share one fault injector.
    """

    client_id: str = "looker-sandbox"
    client_secret: str = "looker-sandbox-secret"  # noqa: S105 - documented sandbox credential
    token_lifetime: float = 3600.0
    connections: dict[str, str] = field(
        default_factory=lambda: {DEFAULT_CONNECTION: "duckdb:///output/warehouse.duckdb"}
    )
    datagroups: tuple[str, ...] = (f"{DEFAULT_MODEL}::ifs_nightly", f"{DEFAULT_MODEL}::ifs_gl")
    pdts: tuple[str, ...] = (f"{DEFAULT_MODEL}/gl_monthly_balances",)
    projects: tuple[str, ...] = (DEFAULT_MODEL,)
    pdt_build_seconds: float = 0.5
    seed: int = 11
    rate_429: float = 0.0
    retry_after: str = "seconds"
    retry_after_seconds: int = 1
    rate_5xx: float = 0.0
    drop_rate: float = 0.0
    latency_ms: float = 0.0
    validate: bool = True  # check every request and response against the spec subset

    def __post_init__(self) -> None:
        if self.retry_after not in RETRY_AFTER_MODES:
            raise ValueError(
                f"retry_after must be one of {RETRY_AFTER_MODES}, not {self.retry_after!r}"
            )
        for name in ("rate_429", "rate_5xx", "drop_rate"):
            share = getattr(self, name)
            if not 0.0 <= share <= 1.0:
                raise ValueError(f"{name} is a share between 0 and 1, not {share}")
        if self.token_lifetime <= 0:
            raise ValueError("token_lifetime must be positive")
        for datagroup in self.datagroups:
            if datagroup.count("::") != 1:
                raise ValueError(f"datagroup {datagroup!r} must be written model::name")
        for pdt in self.pdts:
            if pdt.count("/") != 1:
                raise ValueError(f"PDT {pdt!r} must be written model/view")

"""Looker sandbox settings: credentials, token lifetime, connections, datagroups, PDTs, faults."""

from __future__ import annotations

from dataclasses import dataclass, field

from ifs_looker_core.defaults import DEFAULT_TARGET_SCHEMA

from ..faults import FaultKnobs

DEFAULT_CONNECTION = "ifs_warehouse"
DEFAULT_MODEL = DEFAULT_TARGET_SCHEMA  # target-looker names its LookML model after the schema


@dataclass(frozen=True)
class LookerConfig(FaultKnobs):
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
    retry_after: str = "seconds"
    validate: bool = True  # check every request and response against the spec subset

    def __post_init__(self) -> None:
        self.check_faults()
        if self.token_lifetime <= 0:
            raise ValueError("token_lifetime must be positive")
        for datagroup in self.datagroups:
            if datagroup.count("::") != 1:
                raise ValueError(f"datagroup {datagroup!r} must be written model::name")
        for pdt in self.pdts:
            if pdt.count("/") != 1:
                raise ValueError(f"PDT {pdt!r} must be written model/view")

"""Sandbox settings: data volume, tenant variant, credentials, token lifetime and fault knobs."""

from __future__ import annotations

from dataclasses import dataclass

from ..faults import FaultKnobs
from .tenants import tenant_variant


@dataclass(frozen=True)
class SandboxConfig(FaultKnobs):
    """Everything that shapes one sandbox run; all knobs default to a well-behaved server."""

    seed: int = 7
    companies: tuple[str, ...] = ("US01", "DE01", "SE01")
    voucher_rows_per_company: int = 600
    orders_per_company: int = 40
    invoices_per_company: int = 40
    realm: str = "ifsdemo"
    client_id: str = "ifs-looker-sandbox"
    client_secret: str = "sandbox-secret"  # noqa: S105 - documented sandbox credential
    token_lifetime: float = 3600.0
    server_page_size: int | None = None
    mutations_per_request: int = 0
    tenant: str = "default"  # a tenants.TENANTS name; fixed when the sandbox is made

    def __post_init__(self) -> None:
        self.check_faults()
        if not self.companies:
            raise ValueError("the sandbox needs at least one company")
        if self.token_lifetime <= 0:
            raise ValueError("token_lifetime must be positive")
        if self.server_page_size is not None and self.server_page_size < 1:
            raise ValueError("server_page_size must be at least 1")
        tenant_variant(self.tenant)  # an unknown tenant is a ValueError naming the known ones

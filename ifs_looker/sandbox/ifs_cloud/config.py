"""Sandbox settings: data volume, credentials, token lifetime and fault knobs."""

from __future__ import annotations

from dataclasses import dataclass

RETRY_AFTER_MODES = ("seconds", "http-date", "none", "mixed")


@dataclass(frozen=True)
class SandboxConfig:
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
    rate_429: float = 0.0
    retry_after: str = "mixed"
    retry_after_seconds: int = 1
    rate_5xx: float = 0.0
    drop_rate: float = 0.0
    latency_ms: float = 0.0
    server_page_size: int | None = None
    mutations_per_request: int = 0

    def __post_init__(self) -> None:
        if self.retry_after not in RETRY_AFTER_MODES:
            raise ValueError(
                f"retry_after must be one of {RETRY_AFTER_MODES}, not {self.retry_after!r}"
            )
        for name in ("rate_429", "rate_5xx", "drop_rate"):
            share = getattr(self, name)
            if not 0.0 <= share <= 1.0:
                raise ValueError(f"{name} is a share between 0 and 1, not {share}")
        if not self.companies:
            raise ValueError("the sandbox needs at least one company")
        if self.token_lifetime <= 0:
            raise ValueError("token_lifetime must be positive")
        if self.server_page_size is not None and self.server_page_size < 1:
            raise ValueError("server_page_size must be at least 1")

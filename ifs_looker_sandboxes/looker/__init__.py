"""Looker API 4.0 sandbox: protocol-faithful enough for tests, the demo and benchmarks."""

from .config import DEFAULT_CONNECTION, DEFAULT_MODEL, LookerConfig
from .sandbox import LoggedRequest, LookerSandbox

__all__ = ["DEFAULT_CONNECTION", "DEFAULT_MODEL", "LoggedRequest", "LookerConfig", "LookerSandbox"]

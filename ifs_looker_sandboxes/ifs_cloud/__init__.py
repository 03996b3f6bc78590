"""A protocol-faithful local IFS Cloud: IAM tokens, OData projections, faults and a mutation clock.

It serves tests, the demo and benchmarks on loopback; it is not a substitute for
a real IFS Cloud system.
"""

from .config import SandboxConfig
from .sandbox import PATH_PREFIX, IfsCloudSandbox
from .tenants import TENANTS, TenantVariant, tenant_variant

__all__ = [
    "PATH_PREFIX",
    "TENANTS",
    "IfsCloudSandbox",
    "SandboxConfig",
    "TenantVariant",
    "tenant_variant",
]

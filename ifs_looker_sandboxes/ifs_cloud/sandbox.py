"""One running IFS Cloud sandbox: data, tokens, faults and an HTTP server on loopback."""

from __future__ import annotations

import gc
import threading
from collections.abc import Callable

from ..clock import TimeSource
from ..loopback import LoopbackServer
from .config import SandboxConfig
from .dataset import generate
from .mutation import MutationClock
from .server import SandboxHandler
from .store import DECODER, ENCODER, Store
from .tenants import Shaper, TenantVariant, tenant_variant
from .tokens import TokenIssuer

PATH_PREFIX = "/main/ifsapplications/projection/v1"


RequestLogEntry = tuple[str, str, int]  # method, path with query, status (0: dropped)


class IfsCloudSandbox(LoopbackServer[SandboxConfig]):
    """An IFS Cloud on loopback; start with `start()` or as a context manager (port 0: any).

    `tenant` is the tenant variant (`config.tenant`) whose entity types it serves: the built-in
    ones (`default`) or another real tenant's shape (`varied`, see tenants.py).

    Two clocks, not to be confused: `time` (the `time_source` argument; real time
    unless a test passes a `ManualClock`) dates tokens, changed rows and Retry-After;
    `clock` is the mutation clock that changes data between requests.
    """

    handler_class = SandboxHandler
    thread_name = "ifs-sandbox"

    def __init__(
        self,
        config: SandboxConfig | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        verbose: bool = False,
        time_source: TimeSource | None = None,
    ) -> None:
        super().__init__(config or SandboxConfig(), host, port, verbose, time_source)
        self.tenant: TenantVariant = tenant_variant(self.config.tenant)  # fixed for the run
        self.projections = self.tenant.projections
        self.projections_by_name = self.tenant.projections_by_name
        self.store = Store(self.projections, self._shapers())
        self._load()
        self.tokens = TokenIssuer(self.config.client_id, self.config.client_secret, self.time)
        self.clock = MutationClock(self.store, self.config.seed, self.time)
        self.request_log: list[RequestLogEntry] = []
        self._logged = threading.Condition()

    def _shapers(self) -> dict[str, Shaper]:
        shapers = {}
        for projection in self.projections:
            for entity_set in projection.entity_sets:
                keys = projection.entity_type(entity_set.entity_type).keys
                shaper = self.tenant.shaper(entity_set.name, keys, self.config.seed)
                if shaper is not None:
                    shapers[entity_set.name] = shaper
        return shapers

    def _load(self) -> None:
        """Generate the data set; the cyclic GC is paused: millions of rows form no cycles."""
        tables = {s: t for (_, s), t in self.store.tables.items()}
        gc.disable()
        try:
            for entity_set, row, changed_at in generate(self.config):
                tables[entity_set].put(row, changed_at)
        finally:
            gc.enable()
            gc.freeze()

    # addresses -----------------------------------------------------------------------------------

    @property
    def token_url(self) -> str:
        return f"{self.base_url}/auth/realms/{self.config.realm}/protocol/openid-connect/token"

    def service_url(self, projection: str) -> str:
        return f"{self.base_url}{PATH_PREFIX}/{projection}.svc"

    # behaviour -----------------------------------------------------------------------------------

    def tick(self) -> None:
        if self.config.mutations_per_request:
            self.clock.tick(self.config.mutations_per_request)

    def record(self, method: str, path: str, status: int) -> None:
        with self._logged:
            self.request_log.append((method, path, status))
            self._logged.notify_all()

    def wait_for_request(
        self, predicate: Callable[[RequestLogEntry], bool], timeout: float = 5.0
    ) -> RequestLogEntry | None:
        """The latest logged request once one matches (the server logs after answering)."""
        with self._logged:
            self._logged.wait_for(
                lambda: bool(self.request_log) and predicate(self.request_log[-1]), timeout
            )
            return self.request_log[-1] if self.request_log else None

    def rows(self, projection: str, entity_set: str) -> list[dict[str, object]]:
        """The rows as a client sees them now (JSON values, numbers as Decimal), in key order."""
        table = self.store.table(projection, entity_set)
        with self.store.lock:
            rows = [table.rows[k] for k in sorted(table.rows)]
        return DECODER.decode(ENCODER.encode(rows))

"""One running IFS Cloud sandbox: data, tokens, faults and an HTTP server on loopback."""

from __future__ import annotations

import dataclasses
import gc
import threading

from ..faults import FaultInjector
from ..loopback import LoopbackServer
from .config import SandboxConfig
from .dataset import generate
from .mutation import MutationClock
from .server import SandboxHandler
from .store import DECODER, ENCODER, Store
from .tokens import TokenIssuer

PATH_PREFIX = "/main/ifsapplications/projection/v1"


class IfsCloudSandbox(LoopbackServer):
    """An IFS Cloud on loopback; start with `start()` or as a context manager (port 0: any)."""

    handler_class = SandboxHandler
    thread_name = "ifs-sandbox"

    def __init__(
        self,
        config: SandboxConfig | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        verbose: bool = False,
    ) -> None:
        super().__init__(host, port, verbose)
        self.config = config or SandboxConfig()
        self.store = Store()
        self._load()
        self.tokens = TokenIssuer(self.config.client_id, self.config.client_secret)
        self.faults = FaultInjector(self.config.seed)
        self.clock = MutationClock(self.store, self.config.seed)
        self.request_log: list[tuple[str, str, int]] = []
        self._log_lock = threading.Lock()

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

    def update_config(self, **changes: object) -> None:
        """Change knobs (faults, token lifetime, mutation clock) while serving."""
        self.config = dataclasses.replace(self.config, **changes)  # type: ignore[arg-type]

    def tick(self) -> None:
        if self.config.mutations_per_request:
            self.clock.tick(self.config.mutations_per_request)

    def record(self, method: str, path: str, status: int) -> None:
        with self._log_lock:
            self.request_log.append((method, path, status))

    def rows(self, projection: str, entity_set: str) -> list[dict[str, object]]:
        """The rows as a client sees them now (JSON values, numbers as Decimal), in key order."""
        table = self.store.table(projection, entity_set)
        with self.store.lock:
            rows = [table.rows[k] for k in sorted(table.rows)]
        return DECODER.decode(ENCODER.encode(rows))

"""One running IFS Cloud sandbox: data, tokens, faults and an HTTP server on loopback."""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import sys
import threading
from collections.abc import Callable

from ..clock import TimeSource
from ..loopback import LoopbackServer
from .config import SandboxConfig
from .dataset import VoucherPlan, reference_rows, supply_chain_rows, voucher_rows
from .mutation import MutationClock
from .server import SandboxHandler
from .store import DECODER, ENCODER, Store
from .tenants import Shaper, TenantVariant, tenant_variant
from .tokens import TokenIssuer

PATH_PREFIX = "/main/ifsapplications/projection/v1"


RequestLogEntry = tuple[str, str, int]  # method, path with query, status (0: dropped)

# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_malloc_tuned = False


def keep_freed_memory() -> None:
    """Let this process's malloc keep what it frees (glibc only; once per process).

    A page of 5,000 voucher rows is a 5 MB string and again 5 MB of bytes. By default
    glibc maps blocks that large afresh and gives freed memory at the top of the heap back
    to the system, so every page touches new memory: on a virtual machine a page fault
    costs microseconds, and the faults cost more than writing the JSON. Kept, the next
    page reuses the same memory.
    """
    global _malloc_tuned
    if _malloc_tuned or not sys.platform.startswith("linux"):
        return
    _malloc_tuned = True
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(_M_MMAP_THRESHOLD, 32 * 1024 * 1024)
        libc.mallopt(_M_TRIM_THRESHOLD, 256 * 1024 * 1024)
    except (OSError, AttributeError):  # not glibc: its defaults stay
        pass


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
        keep_freed_memory()
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
        """Generate the data set, GL voucher rows last (as `dataset.generate` yields them).

        Voucher rows are planned, not put (see dataset.VoucherPlan): the table holds the plan
        and makes rows as they are read. Only if the voucher table cannot hold a plan (another
        tenant's keys, companies named twice) are they put one by one. The cyclic GC is paused
        meanwhile: the rows form no cycles.
        """
        tables = {s: t for (_, s), t in self.store.tables.items()}
        vouchers = tables["VoucherRowSet"]
        gc.disable()
        try:
            for source in (reference_rows, supply_chain_rows):
                for entity_set, row, changed_at in source(self.config):
                    tables[entity_set].put(row, changed_at)
            if vouchers.can_generate() and len(set(self.config.companies)) == len(
                self.config.companies
            ):
                vouchers.attach(VoucherPlan(self.config))
            else:
                for _, row, changed_at in voucher_rows(self.config):
                    vouchers.put(row, changed_at)
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

    def mutate(self, count: int) -> int:
        """Apply `count` changes of the mutation clock now; how many it logged (a voucher is
        several rows)."""
        before = len(self.clock.log)
        self.clock.tick(count)
        return len(self.clock.log) - before

    def record(self, method: str, path: str, status: int) -> None:
        with self._logged:
            self.request_log.append((method, path, status))
            self._logged.notify_all()

    def wait_for_request(
        self, predicate: Callable[[RequestLogEntry], bool], timeout: float = 5.0
    ) -> RequestLogEntry | None:
        """The latest logged request once one matches (a request is logged before its answer
        goes out; one whose connection is dropped, after the drop)."""
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

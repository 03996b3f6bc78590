"""What every sandbox shares: a threaded HTTP server on loopback and the handler plumbing.

A sandbox subclasses `LoopbackServer` (lifecycle: bind, start in a thread for
tests, serve in the foreground for the CLI; its config with the fault knobs, the
fault injector and the time source) and `SandboxRequestHandler` (dispatch of every
method to one `_handle(method)`, reading the request body, injecting faults,
dropping a connection), and keeps only its own protocol.
"""

from __future__ import annotations

import contextlib
import dataclasses
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, ClassVar, Generic, TypeVar

from .clock import REAL_TIME, TimeSource
from .faults import Fault, FaultInjector, FaultKnobs

Self = TypeVar("Self", bound="LoopbackServer")
Config = TypeVar("Config", bound=FaultKnobs)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64


class SandboxRequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body leave in separate writes: with Nagle on, each answer waits for a delayed ACK.
    disable_nagle_algorithm = True
    sandbox: Any  # set on the subclass made per sandbox instance

    def log_message(self, format: str, *args: object) -> None:
        if self.sandbox.verbose:
            super().log_message(format, *args)

    def _handle(self, method: str) -> None:
        raise NotImplementedError

    def _send_fault(self, fault: Fault) -> None:
        """Answer a drawn throttle (429) or server error (5xx) in the sandbox's own error style."""
        raise NotImplementedError

    def read_body(self) -> bytes:
        """The request body (Content-Length bytes; none without the header)."""
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def drop_connection(self) -> None:
        """Close the connection without an answer: the client sees a reset or an empty reply."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def inject_fault(self) -> bool:
        """Apply the latency knob, then draw a fault; True if the request was answered by it."""
        sandbox = self.sandbox
        config = sandbox.config
        if config.latency_ms:
            sandbox.time.sleep(config.latency_ms / 1000)
        fault = sandbox.faults.draw(config)
        if fault is None:
            return False
        if fault.kind == "drop":
            self.drop_connection()
        else:
            self._send_fault(fault)
        return True

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_DELETE(self) -> None:
        self._handle("DELETE")


class LoopbackServer(Generic[Config]):
    """Start with `start()` or as a context manager; `port=0` picks a free port.

    `time_source` is the sandbox's clock (real time unless a test passes a
    `ManualClock`); it is `self.time`.
    """

    handler_class: ClassVar[type[SandboxRequestHandler]]
    thread_name: ClassVar[str] = "sandbox"

    def __init__(
        self,
        config: Config,
        host: str = "127.0.0.1",
        port: int = 0,
        verbose: bool = False,
        time_source: TimeSource | None = None,
    ) -> None:
        self.config = config
        self.time: TimeSource = time_source or REAL_TIME
        self.faults = FaultInjector(config.seed, self.time)
        self.host = host
        self.requested_port = port
        self.verbose = verbose
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def update_config(self, **changes: object) -> None:
        """Change knobs (faults, token lifetime, ...) while serving."""
        self.config = dataclasses.replace(self.config, **changes)  # type: ignore[arg-type]

    def bind(self: Self) -> Self:
        """Open the listening socket (so `port` is known) without serving yet."""
        if self._server is None:
            handler = type("Handler", (self.handler_class,), {"sandbox": self})
            self._server = _Server((self.host, self.requested_port), handler)
        return self

    def start(self: Self) -> Self:
        """Serve from a background thread (tests, benchmarks, the demo)."""
        server = self.bind()._server
        assert server is not None
        self._thread = threading.Thread(
            target=server.serve_forever, args=(0.05,), name=self.thread_name, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            if self._thread is not None:
                self._server.shutdown()
                self._thread = None
            self._server.server_close()
            self._server = None

    def serve_forever(self) -> None:
        """Serve in the foreground (the CLI) until interrupted."""
        server = self.bind()._server
        assert server is not None
        try:
            server.serve_forever()
        finally:
            self.stop()

    def __enter__(self: Self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            return self.requested_port
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

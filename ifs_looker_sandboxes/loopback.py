"""What every sandbox shares: a threaded HTTP server on loopback and the handler plumbing.

A sandbox subclasses `LoopbackServer` (lifecycle: bind, start in a thread for
tests, serve in the foreground for the CLI) and `SandboxRequestHandler`
(dispatch of every method to one `_handle(method)`), and keeps only its own
protocol.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, ClassVar, TypeVar

Self = TypeVar("Self", bound="LoopbackServer")


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


class LoopbackServer:
    """Start with `start()` or as a context manager; `port=0` picks a free port."""

    handler_class: ClassVar[type[SandboxRequestHandler]]
    thread_name: ClassVar[str] = "sandbox"

    def __init__(self, host: str = "127.0.0.1", port: int = 0, verbose: bool = False) -> None:
        self.host = host
        self.requested_port = port
        self.verbose = verbose
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

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

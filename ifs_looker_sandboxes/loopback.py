"""What every sandbox shares: a threaded HTTP server on loopback and the handler plumbing.

A sandbox subclasses `LoopbackServer` (lifecycle: bind, start in a thread for
tests, serve in the foreground for the CLI; its config with the fault knobs, the
fault injector and the time source) and `SandboxRequestHandler` (dispatch of every
method to one `_handle(method)`, reading the request body, injecting faults,
dropping a connection), and keeps only its own protocol.

Hostile requests never reach `_handle`: a malformed, duplicated or too large
`Content-Length`, or a body without one (chunked), is refused before the body is
read (`refuse`, connection closed), and http.server's own refusals (414, 400 for
a broken request line, 501 for an unknown method) are JSON (`error_body`), not
http.server's HTML page.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, ClassVar, Generic, TypeVar

from .clock import REAL_TIME, TimeSource
from .faults import Fault, FaultInjector, FaultKnobs

Self = TypeVar("Self", bound="LoopbackServer")
Config = TypeVar("Config", bound=FaultKnobs)

MAX_BODY_BYTES = 16 * 1024 * 1024
_LENGTH = re.compile(r"[0-9]{1,18}")
# After refusing a body: how much of it (at most, and for how long) to discard unread, so that
# closing does not reset the connection before the client has read the answer.
_LINGER_BYTES = 4 * 1024 * 1024
_LINGER_SECONDS = 1.0


class RequestBodyError(Exception):
    """A request body refused before reading it: `status` is 400, 411 or 413."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64


class SandboxRequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body leave in separate writes: with Nagle on, each answer waits for a delayed ACK.
    disable_nagle_algorithm = True
    sandbox: Any  # set on the subclass made per sandbox instance
    max_body_bytes: ClassVar[int] = MAX_BODY_BYTES
    _body: bytes = b""

    def log_message(self, format: str, *args: object) -> None:
        if self.sandbox.verbose:
            super().log_message(format, *args)

    def _handle(self, method: str) -> None:
        raise NotImplementedError

    def _send_fault(self, fault: Fault) -> None:
        """Answer a drawn throttle (429) or server error (5xx) in the sandbox's own error style."""
        raise NotImplementedError

    def read_body(self) -> bytes:
        """The request body, read (and checked) before `_handle` runs."""
        return self._body

    def body_length(self) -> int:
        """The announced body length; RequestBodyError if malformed, too large or chunked."""
        if self.headers.get("Transfer-Encoding"):
            raise RequestBodyError(411, "A request body must have a Content-Length header.")
        lengths = {value.strip() for value in self.headers.get_all("Content-Length") or ()}
        if not lengths:
            return 0
        text = lengths.pop()
        if lengths or not _LENGTH.fullmatch(text):
            raise RequestBodyError(400, "The Content-Length header is not a valid length.")
        length = int(text)
        if length > self.max_body_bytes:
            raise RequestBodyError(
                413,
                f"The request body of {length} bytes is larger than the limit of "
                f"{self.max_body_bytes} bytes.",
            )
        return length

    def _dispatch(self, method: str) -> None:
        """Check and read the body, then `_handle`; a refused body is never read into memory."""
        try:
            length = self.body_length()
        except RequestBodyError as exc:
            self._refuse_body(exc)
            return
        self._body = self.rfile.read(length) if length else b""
        self._handle(method)

    def _refuse_body(self, exc: RequestBodyError) -> None:
        self.close_connection = True
        self.refuse(exc.status, str(exc))
        self._linger()

    def _linger(self) -> None:
        """Discard (never keep) some unread body, so closing does not reset the answer away."""
        with contextlib.suppress(OSError):
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_WR)
            self.connection.settimeout(0.2)
            deadline = time.monotonic() + _LINGER_SECONDS
            discarded = 0
            while discarded < _LINGER_BYTES and time.monotonic() < deadline:
                chunk = self.connection.recv(65536)
                if not chunk:
                    break
                discarded += len(chunk)

    def handle_expect_100(self) -> bool:
        """Refuse a bad body before the client sends it, when it waits for `100 Continue`."""
        try:
            self.body_length()
        except RequestBodyError as exc:
            self.close_connection = True
            self.refuse(exc.status, str(exc))
            return False
        return super().handle_expect_100()

    # error answers --------------------------------------------------------------------------------

    def error_body(self, status: int, message: str) -> bytes:
        """The JSON body of an error answered outside `_handle`; each sandbox words its own."""
        return json.dumps({"message": message}).encode()

    def refuse(self, status: int, message: str, headers: tuple[tuple[str, str], ...] = ()) -> None:
        """Answer an error outside `_handle` (bad body, bad method) in the sandbox's style."""
        body = self.error_body(status, message)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers:
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own refusals (414, 400, 431, 501, 505) as JSON instead of an HTML page."""
        self.log_error("code %d, message %s", code, message)
        self.close_connection = True
        if self.request_version == "HTTP/0.9":  # a broken request line: answer with a status line
            self.request_version = self.protocol_version
        if message is None:
            message = self.responses.get(code, ("Error",))[0]
        self.refuse(code, message)
        self._linger()

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
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")


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

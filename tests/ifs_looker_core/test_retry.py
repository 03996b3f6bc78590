"""The shared HTTP retry policy, against a real local server answering a scripted sequence."""

from __future__ import annotations

import random
import socket
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from ifs_looker_core.retry import (
    RetriesExhaustedError,
    RetryPolicy,
    parse_retry_after,
    redact_url,
    send_with_retries,
)


class Scripted:
    """A loopback HTTP server answering each request with the next scripted reply.

    A reply is (status, headers) or "drop" (close the connection without answering).
    """

    def __init__(self, replies: list) -> None:
        self.replies = list(replies)
        self.seen: list[dict[str, str]] = []
        script = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                script.seen.append(dict(self.headers))
                reply = script.replies.pop(0) if script.replies else (200, {})
                if reply == "drop":
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                status, headers = reply
                body = b'{"ok": true}'
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/data?client_secret=s3cr3t&x=1"


@pytest.fixture
def scripted() -> Iterator[type[Scripted]]:
    servers: list[Scripted] = []

    def make(replies: list) -> Scripted:
        server = Scripted(replies)
        servers.append(server)
        return server

    yield make  # type: ignore[misc]
    for server in servers:
        server.server.shutdown()
        server.server.server_close()


def call(server: Scripted, policy: RetryPolicy, sleeps: list[float], **kwargs):
    session = requests.Session()
    return send_with_retries(
        lambda: session.get(server.url, timeout=5),
        policy=policy,
        method="GET",
        url=server.url,
        sleep=sleeps.append,
        **kwargs,
    )


def test_retry_after_in_seconds_and_as_http_date():
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=timezone.utc)
    assert parse_retry_after("7", now) == 7.0
    assert parse_retry_after(format_datetime(now + timedelta(seconds=30), usegmt=True), now) == 30.0
    assert parse_retry_after(format_datetime(now - timedelta(seconds=30), usegmt=True), now) == 0.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None


def test_backoff_grows_exponentially_with_jitter_and_is_capped():
    policy = RetryPolicy(base_seconds=1.0, max_backoff_seconds=10.0, rng=random.Random(1))
    waits = [policy.wait_seconds(n) for n in range(6)]
    for n, wait in enumerate(waits[:4]):
        assert 2**n / 2 <= wait <= 2**n
    assert waits[5] == 10.0
    assert len({policy.wait_seconds(2) for _ in range(5)}) > 1  # jitter
    # the server's Retry-After is honoured, but never beyond the cap
    assert 3.0 <= policy.wait_seconds(0, retry_after=3.0) <= 4.0
    assert policy.wait_seconds(0, retry_after=3600.0) == 10.0


def test_throttling_and_gateway_errors_are_retried_honouring_retry_after(scripted):
    server = scripted(
        [
            (429, {"Retry-After": "2"}),
            (503, {}),
            (
                429,
                {
                    "Retry-After": format_datetime(
                        datetime.now(timezone.utc) + timedelta(seconds=4), usegmt=True
                    )
                },
            ),
            (502, {}),
            (504, {}),
            "drop",
        ]
    )
    sleeps: list[float] = []
    policy = RetryPolicy(max_retries=8, max_backoff_seconds=30, base_seconds=0.01)
    response = call(server, policy, sleeps)
    assert response.status_code == 200
    assert len(sleeps) == 6
    assert 2.0 <= sleeps[0] <= 2.02
    assert 2.0 <= sleeps[2] <= 4.02  # an HTTP date a few seconds ahead


def test_gives_up_after_max_retries_naming_url_and_last_status_without_secrets(scripted):
    server = scripted([(503, {})] * 10)
    sleeps: list[float] = []
    with pytest.raises(RetriesExhaustedError) as caught:
        call(server, RetryPolicy(max_retries=3, base_seconds=0.01), sleeps)
    message = str(caught.value)
    assert "after 4 attempts" in message
    assert "last status: 503" in message
    assert "/data?" in message
    assert "s3cr3t" not in message
    assert len(sleeps) == 3


def test_client_errors_are_returned_at_once(scripted):
    server = scripted([(400, {}), (200, {})])
    sleeps: list[float] = []
    assert call(server, RetryPolicy(base_seconds=0.01), sleeps).status_code == 400
    assert sleeps == []


def test_401_refreshes_credentials_once_then_retries(scripted):
    server = scripted([(401, {}), (200, {})])
    refreshed: list[bool] = []
    response = call(
        server,
        RetryPolicy(base_seconds=0.01),
        [],
        on_unauthorized=lambda: refreshed.append(True) or True,
    )
    assert response.status_code == 200
    assert refreshed == [True]

    server = scripted([(401, {}), (401, {}), (200, {})])
    refreshed.clear()
    response = call(
        server,
        RetryPolicy(base_seconds=0.01),
        [],
        on_unauthorized=lambda: refreshed.append(True) or True,
    )
    assert response.status_code == 401  # a second 401 in a row is the caller's to report
    assert refreshed == [True]


def test_redact_url_masks_credentials():
    url = (
        "https://user:pw@ifs.example.com:8443/p/v1/X.svc/Set"
        "?$filter=Company eq 'US01'&access_token=abc&api_key=k"
    )
    text = redact_url(url)
    assert "pw" not in text
    assert "abc" not in text
    assert "k&" not in text and not text.endswith("=k")
    assert "$filter=Company eq 'US01'" in text
    assert text.startswith("https://ifs.example.com:8443/p/v1/X.svc/Set?")

"""Looker API sessions: `POST /login` issues an access token that expires, `/logout` ends it."""

from __future__ import annotations

import hmac
import secrets
import threading

from ..clock import REAL_TIME, TimeSource


class LookerTokens:
    """Access tokens issued for one API client id/secret pair; lifetimes run on `time_source`."""

    def __init__(
        self, client_id: str, client_secret: str, time_source: TimeSource = REAL_TIME
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.time = time_source
        self._expiry: dict[str, float] = {}
        self._lock = threading.Lock()
        self.issued_count = 0

    def login(
        self, client_id: str | None, client_secret: str | None, lifetime: float
    ) -> str | None:
        """A new token, or None when the credentials are wrong."""
        if client_id != self.client_id or not hmac.compare_digest(
            (client_secret or "").encode(), self.client_secret.encode()
        ):
            return None
        token = secrets.token_urlsafe(30)
        with self._lock:
            self._expiry[token] = self.time.monotonic() + lifetime
            self.issued_count += 1
        return token

    def valid(self, authorization: str | None) -> str | None:
        """The token if `Authorization: token <t>` (or `Bearer <t>`) is live, else None."""
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() not in ("token", "bearer") or not token:
            return None
        with self._lock:
            expiry = self._expiry.get(token.strip())
        if expiry is None or self.time.monotonic() >= expiry:
            return None
        return token.strip()

    def logout(self, token: str) -> None:
        with self._lock:
            self._expiry.pop(token, None)

    def expire_all(self) -> None:
        """Every issued token stops working now (tests: a 401 in the middle of a run)."""
        with self._lock:
            self._expiry.clear()

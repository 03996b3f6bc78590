"""The IAM side: client-credentials tokens with a configurable lifetime."""

from __future__ import annotations

import base64
import hmac
import secrets
import threading
from dataclasses import dataclass

from ..clock import REAL_TIME, TimeSource


class TokenError(Exception):
    """A refused token request, with the OAuth error body IFS IAM (Keycloak) sends."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.body = {"error": error, "error_description": description}


@dataclass
class Issued:
    expires_at: float


class TokenIssuer:
    """Issues and checks bearer tokens; lifetimes run on `time_source` (the sandbox's clock)."""

    def __init__(
        self, client_id: str, client_secret: str, time_source: TimeSource = REAL_TIME
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.time = time_source
        self._tokens: dict[str, Issued] = {}
        self._lock = threading.Lock()
        self.issued_count = 0

    def issue(
        self, form: dict[str, str], basic_auth: str | None, lifetime: float
    ) -> dict[str, object]:
        """Check a token request and return the token response body."""
        if form.get("grant_type") != "client_credentials":
            raise TokenError(400, "unsupported_grant_type", "Unsupported grant_type")
        client_id, client_secret = form.get("client_id"), form.get("client_secret")
        if basic_auth:
            decoded = base64.b64decode(basic_auth).decode(errors="replace")
            client_id, _, client_secret = decoded.partition(":")
        if client_id != self.client_id or not hmac.compare_digest(
            (client_secret or "").encode(), self.client_secret.encode()
        ):
            raise TokenError(
                401, "unauthorized_client", "Invalid client or Invalid client credentials"
            )
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._tokens[token] = Issued(self.time.monotonic() + lifetime)
            self.issued_count += 1
        return {
            "access_token": token,
            "expires_in": max(1, round(lifetime)),
            "refresh_expires_in": 0,
            "token_type": "Bearer",
            "not-before-policy": 0,
            "scope": form.get("scope") or "openid microprofile-jwt",
        }

    def check(self, authorization: str | None) -> str | None:
        """None if the bearer token is valid now, else why not."""
        if not authorization or not authorization.startswith("Bearer "):
            return "Authentication required."
        issued = self._tokens.get(authorization[len("Bearer ") :])
        if issued is None:
            return "Invalid access token."
        if self.time.monotonic() >= issued.expires_at:
            return "Access token expired."
        return None

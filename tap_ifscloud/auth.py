"""IFS IAM client-credentials tokens, refreshed before they expire and after a 401.

The SDK's OAuthAuthenticator refreshes only after expiry and treats a 401 as
fatal (SPEC §12). IFS IAM clients are often configured with a 180 s token
lifetime, so a long page read can outlive its token: this provider refreshes
ahead of expiry (60 s or 10% of the lifetime, whichever is smaller) and once
more when IFS answers 401. One provider serves every stream of the tap.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import requests

from ifs_looker_core.redaction import redact_url
from ifs_looker_core.retry import RetriesExhaustedError, RetryPolicy, send_with_retries
from tap_ifscloud.errors import AuthenticationError

logger = logging.getLogger("tap-ifscloud.auth")

DEFAULT_SCOPE = "openid microprofile-jwt"
MAX_REFRESH_MARGIN_SECONDS = 60.0


def refresh_margin(lifetime: float) -> float:
    """How long before expiry a token is replaced."""
    return min(MAX_REFRESH_MARGIN_SECONDS, 0.1 * lifetime)


class IFSTokenProvider(requests.auth.AuthBase):
    """Bearer tokens from IFS IAM (Keycloak) for the client-credentials grant."""

    def __init__(
        self,
        *,
        token_url: str,
        client_id: str,
        client_secret: str,
        scope: str = DEFAULT_SCOPE,
        session: requests.Session | None = None,
        policy: RetryPolicy | None = None,
        timeout: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.token_url = token_url
        self.client_id = client_id
        self._client_secret = client_secret
        self.scope = scope
        self._session = session or requests.Session()
        self._policy = policy or RetryPolicy()
        self._timeout = timeout
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._refresh_at = 0.0
        self.refresh_count = 0

    def __repr__(self) -> str:
        url = redact_url(self.token_url)
        return f"IFSTokenProvider(token_url={url!r}, client_id={self.client_id!r})"

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self.token()}"
        return request

    def token(self) -> str:
        """A token that stays valid for at least the refresh margin."""
        with self._lock:
            if self._token is None or self._clock() >= self._refresh_at:
                self._fetch(reason="expiring" if self._token else "first use")
            assert self._token is not None
            return self._token

    def refresh_after_unauthorized(self, rejected: str | None) -> bool:
        """Replace a token IFS rejected with 401 (unless another thread already did)."""
        with self._lock:
            if rejected is None or self._token == rejected or self._token is None:
                self._fetch(reason="401 from IFS")
        return True

    def _fetch(self, *, reason: str) -> None:
        started = self._clock()
        form = {
            "grant_type": "client_credentials",
            "client_id": self.client_id,
            "client_secret": self._client_secret,
            "scope": self.scope,
        }
        try:
            response = send_with_retries(
                lambda: self._session.post(
                    self.token_url,
                    data=form,
                    headers={"Accept": "application/json"},
                    timeout=self._timeout,
                ),
                policy=self._policy,
                method="POST",
                url=self.token_url,
                log=logger,
            )
        except RetriesExhaustedError as exc:
            raise AuthenticationError(f"IFS IAM token request failed: {exc}") from None
        if response.status_code != 200:
            raise AuthenticationError(self._refusal_message(response))
        try:
            body = response.json()
            token = body["access_token"]
            lifetime = float(body.get("expires_in") or 300)
        except (ValueError, KeyError, TypeError):
            raise AuthenticationError(
                f"IFS IAM at {redact_url(self.token_url)} answered without an access_token"
            ) from None
        self._token = token
        self._refresh_at = started + lifetime - refresh_margin(lifetime)
        self.refresh_count += 1
        logger.info(
            "Obtained IFS access token for client '%s' (%s; valid %.0f s, renewed %.1f s early)",
            self.client_id,
            reason,
            lifetime,
            refresh_margin(lifetime),
        )

    def _refusal_message(self, response: requests.Response) -> str:
        detail = ""
        try:
            body = response.json()
            if isinstance(body, dict):
                parts = [str(body.get(k)) for k in ("error", "error_description") if body.get(k)]
                detail = ": " + ": ".join(parts) if parts else ""
        except ValueError:
            detail = ""
        detail = detail.replace(self._client_secret, "***") if self._client_secret else detail
        hint = " (check client_id and client_secret)" if response.status_code in (400, 401) else ""
        return (
            f"IFS IAM at {redact_url(self.token_url)} refused client '{self.client_id}' "
            f"(HTTP {response.status_code}){detail}{hint}"
        )

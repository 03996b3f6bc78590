"""IFS IAM client-credentials tokens, held in the shared core's token cache.

The SDK's OAuthAuthenticator refreshes only after expiry and treats a 401 as
fatal (SPEC §12). IFS IAM clients are often configured with a 180 s token
lifetime, so a long page read can outlive its token. `ifs_looker_core.token_cache`
holds the rules (renew `renewal_margin` before expiry, once more after a 401, one
token per process); this module is the IFS IAM request that issues a token, and
its error messages (which never carry the secret).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import requests

from ifs_looker_core.redaction import redact_url
from ifs_looker_core.retry import RetriesExhaustedError, RetryPolicy, send_with_retries
from ifs_looker_core.token_cache import IssuedToken, TokenCache, renewal_margin
from tap_ifscloud.errors import AuthenticationError

logger = logging.getLogger("tap-ifscloud.auth")

DEFAULT_SCOPE = "openid microprofile-jwt"
DEFAULT_LIFETIME_SECONDS = 300.0  # when IFS IAM leaves out `expires_in`


class IFSTokenProvider:
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
        self._secret = client_secret
        self.scope = scope
        self._http = session or requests.Session()
        self._policy = policy or RetryPolicy()
        self._timeout = timeout
        self.cache = TokenCache(self.issue, clock=clock)

    def __repr__(self) -> str:
        url = redact_url(self.token_url)
        return f"IFSTokenProvider(token_url={url!r}, client_id={self.client_id!r})"

    def token(self) -> str:
        """A token that stays valid for at least the renewal margin."""
        return self.cache.token()

    @property
    def refresh_count(self) -> int:
        """How many tokens IFS IAM has issued to this provider."""
        return self.cache.issued_count

    def issue(self, reason: str) -> IssuedToken:
        """Ask IFS IAM for a new token (the cache calls this when one is due)."""
        form = {
            "grant_type": "client_credentials",
            "client_id": self.client_id,
            "client_secret": self._secret,
            "scope": self.scope,
        }
        try:
            response = send_with_retries(
                lambda: self._http.post(
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
            lifetime = float(body.get("expires_in") or DEFAULT_LIFETIME_SECONDS)
        except (ValueError, KeyError, TypeError):
            raise AuthenticationError(
                f"IFS IAM at {redact_url(self.token_url)} answered without an access_token"
            ) from None
        logger.info(
            "Obtained IFS access token for client '%s' (%s; valid %.0f s, renewed %.1f s early)",
            self.client_id,
            reason,
            lifetime,
            renewal_margin(lifetime),
        )
        return IssuedToken(value=token, lifetime_seconds=lifetime)

    def _refusal_message(self, response: requests.Response) -> str:
        detail = ""
        try:
            body = response.json()
            if isinstance(body, dict):
                parts = [str(body.get(k)) for k in ("error", "error_description") if body.get(k)]
                detail = ": " + ": ".join(parts) if parts else ""
        except ValueError:
            detail = ""
        detail = detail.replace(self._secret, "***") if self._secret else detail
        hint = " (check client_id and client_secret)" if response.status_code in (400, 401) else ""
        return (
            f"IFS IAM at {redact_url(self.token_url)} refused client '{self.client_id}' "
            f"(HTTP {response.status_code}){detail}{hint}"
        )

"""Looker API 4.0 client: login, token reuse and renewal, retries, SQL Runner, datagroups, PDTs.

The session token lives in the shared `TokenCache` (ifs_looker_core.token_cache), the
same rules as the tap's IFS tokens: one login serves every request until shortly
before the token expires (`renewal_margin`, counted from when the login was
requested), and a 401 logs in again once and resends once, however many threads
met it. 429/5xx/connection errors follow the shared retry policy
(ifs_looker_core.retry). Tokens and secrets never appear in logs or exception
messages: errors name the method, the path and Looker's message.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import requests

from ifs_looker_core.retry import RetriesExhaustedError, RetryPolicy, send_with_retries
from ifs_looker_core.token_cache import IssuedToken, TokenCache, send_authorized

logger = logging.getLogger("target-looker.looker")

API_PATH = "/api/4.0"
DEFAULT_TOKEN_LIFETIME_SECONDS = 3600.0  # Looker's default, when `expires_in` is missing
USER_AGENT = "target-looker (ifs-looker-connector)"


class LookerAPIError(RuntimeError):
    """Looker refused a request; `status` is the HTTP status (0 when it never answered)."""

    def __init__(self, method: str, path: str, status: int, message: str) -> None:
        self.method, self.path, self.status, self.looker_message = method, path, status, message
        super().__init__(f"Looker API {method} {path} failed: HTTP {status}: {message}")


class LookerAuthError(LookerAPIError):
    """Login was refused: wrong base URL, client id or client secret."""


class LookerSqlError(LookerAPIError):
    """SQL Runner ran the SQL and the database refused it (HTTP 200 with `looker_error`)."""


@dataclass(frozen=True)
class LookerCredentials:
    base_url: str  # https://acme.cloud.looker.com (without /api/4.0)
    client_id: str
    client_secret: str = field(repr=False)

    @property
    def api_url(self) -> str:
        base = self.base_url.rstrip("/")
        return base if base.endswith(API_PATH) else base + API_PATH


def _message(response: requests.Response) -> str:
    """Looker's error message from `{"message", "documentation_url"}`, else the reason."""
    try:
        body = response.json()
    except ValueError:
        return response.reason or "no message"
    if isinstance(body, dict) and body.get("message"):
        details = [
            f"{e.get('field')}: {e.get('message')}"
            for e in body.get("errors") or []
            if isinstance(e, dict)
        ]
        return body["message"] + (f" ({'; '.join(details)})" if details else "")
    return response.reason or "no message"


class LookerClient:
    """A Looker API session. Use as a context manager so the session is logged out.

    Safe to share between threads: the token cache serialises logins, and each
    request is its own HTTP exchange.
    """

    def __init__(
        self,
        credentials: LookerCredentials,
        *,
        policy: RetryPolicy | None = None,
        timeout: float = 120.0,
        session: requests.Session | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.credentials = credentials
        self.policy = policy or RetryPolicy()
        self.timeout = timeout
        self._session = session or requests.Session()
        self._session.headers["User-Agent"] = USER_AGENT
        self._sleep = sleep
        self._tokens = TokenCache(self._login, clock=clock)

    def __repr__(self) -> str:
        return f"LookerClient(api_url={self.credentials.api_url!r})"

    def __enter__(self) -> LookerClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # session -------------------------------------------------------------------------------------

    @property
    def login_count(self) -> int:
        """Logins so far: the first, each renewal before expiry and each after a 401."""
        return self._tokens.issued_count

    def login(self) -> None:
        """Make sure a session is open (log in unless a valid token is held).

        For callers that want wrong credentials or an unreachable Looker to fail
        before any work; requests log in by themselves when they need to.
        """
        try:
            self._tokens.token()
        except RetriesExhaustedError as exc:
            raise LookerAPIError("POST", "/login", 0, str(exc)) from None
        except requests.RequestException as exc:
            raise LookerAPIError(
                "POST", "/login", 0, f"request failed: {type(exc).__name__}"
            ) from None

    def _login(self, reason: str) -> IssuedToken:
        """POST /login (form-encoded credentials): the token cache's `issue`."""
        creds = self.credentials
        url = creds.api_url + "/login"
        response = send_with_retries(
            lambda: self._session.post(
                url,
                data={"client_id": creds.client_id, "client_secret": creds.client_secret},
                timeout=self.timeout,
            ),
            policy=self.policy,
            method="POST",
            url=url,
            sleep=self._sleep,
            log=logger,
        )
        if response.status_code != 200:
            raise LookerAuthError(
                "POST",
                "/login",
                response.status_code,
                f"{_message(response)}: Looker refused the API client id/secret "
                f"(client id {creds.client_id!r})",
            )
        try:
            body = response.json()
            token = str(body["access_token"])
            lifetime = float(body.get("expires_in") or DEFAULT_TOKEN_LIFETIME_SECONDS)
        except (ValueError, KeyError, TypeError, AttributeError):
            raise LookerAuthError(
                "POST",
                "/login",
                200,
                "the answer has no access_token (is looker_base_url a Looker instance?)",
            ) from None
        logger.info(
            "Logged in to Looker at %s (%s; token valid %d s)", creds.base_url, reason, lifetime
        )
        return IssuedToken(token, lifetime)

    def logout(self) -> None:
        """DELETE /logout; a session that already expired counts as logged out."""
        token = self._tokens.take()
        if token is None:
            return
        try:
            response = self._session.delete(
                self.credentials.api_url + "/logout",
                headers={"Authorization": f"token {token}"},
                timeout=self.timeout,
            )
        except requests.RequestException as exc:
            logger.warning("Looker logout failed: %s", type(exc).__name__)
            return
        if response.status_code not in (204, 401):
            logger.warning("Looker logout answered HTTP %d", response.status_code)

    def close(self) -> None:
        self.logout()
        self._session.close()

    # requests ------------------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: Mapping[str, str] | None = None,
    ) -> Any:
        """Send an authenticated API request; the parsed JSON body (None for 204).

        A login that fails on the way (Looker unreachable, credentials refused) fails
        this request: LookerAuthError, or LookerAPIError naming this method and path.
        """
        url = self.credentials.api_url + path
        data = None if json_body is None else json.dumps(json_body, default=str)
        content_type = {"Content-Type": "application/json"} if json_body is not None else {}

        def send(token: str) -> requests.Response:
            return self._session.request(
                method,
                url,
                params=params,
                data=data,
                headers={"Authorization": f"token {token}", **content_type},
                timeout=self.timeout,
            )

        try:
            response = send_authorized(
                self._tokens,
                send,
                policy=self.policy,
                method=method,
                url=url,
                sleep=self._sleep,
                log=logger,
            )
        except RetriesExhaustedError as exc:
            raise LookerAPIError(method, path, 0, str(exc)) from None
        except requests.RequestException as exc:
            raise LookerAPIError(method, path, 0, f"request failed: {type(exc).__name__}") from None
        if response.status_code == 204:
            return None
        if response.status_code >= 400:
            raise LookerAPIError(method, path, response.status_code, _message(response))
        if not response.content:
            return None
        return json.loads(response.text, parse_float=Decimal)

    # operations ----------------------------------------------------------------------------------

    def connection(self, name: str) -> dict:
        return self.request("GET", f"/connections/{quote(name, safe='')}")

    def test_connection(self, name: str) -> list[dict]:
        return self.request("PUT", f"/connections/{quote(name, safe='')}/test")

    def datagroups(self) -> list[dict]:
        return self.request("GET", "/datagroups")

    def update_datagroup(self, datagroup_id: str, *, stale_before: int) -> dict:
        return self.request(
            "PATCH",
            f"/datagroups/{quote(str(datagroup_id), safe='')}",
            json_body={"stale_before": int(stale_before)},
        )

    def start_pdt_build(self, model: str, view: str) -> dict:
        return self.request(
            "GET",
            f"/derived_table/{quote(model, safe='')}/{quote(view, safe='')}/start",
            params={"source": "target-looker"},
        )

    def pdt_build_status(self, materialization_id: str) -> dict:
        return self.request("GET", f"/derived_table/{quote(materialization_id, safe='')}/status")

    def validate_project(self, project_id: str) -> dict:
        return self.request("POST", f"/projects/{quote(project_id, safe='')}/validate")

    def create_sql_query(self, connection_name: str, sql: str) -> str:
        """POST /sql_queries; returns the slug to run."""
        body = self.request(
            "POST", "/sql_queries", json_body={"connection_name": connection_name, "sql": sql}
        )
        return body["slug"]

    def run_sql_query(self, slug: str) -> list[dict]:
        """POST /sql_queries/{slug}/run/json; SQL errors (HTTP 200 `looker_error`) raise."""
        path = f"/sql_queries/{quote(slug, safe='')}/run/json"
        rows = self.request("POST", path)
        if isinstance(rows, dict) and "looker_error" in rows:
            rows = [rows]
        errors = [
            r["looker_error"] for r in rows or [] if isinstance(r, dict) and "looker_error" in r
        ]
        if errors:
            raise LookerSqlError("POST", path, 200, "; ".join(str(e) for e in errors))
        return rows or []

    def run_sql(self, connection_name: str, sql: str) -> list[dict]:
        """Create and run one SQL Runner query: one database round trip for `sql`."""
        return self.run_sql_query(self.create_sql_query(connection_name, sql))

"""Looker API 4.0 client: login, token reuse and renewal, retries, SQL Runner, datagroups, PDTs.

One login per client; the token is reused until shortly before it expires (60 s,
or 10% of its lifetime when that is shorter, so short-lived sandbox tokens work),
and a 401 triggers one re-login and one resend. 429/5xx/connection errors follow
the shared retry policy (ifs_looker_core.retry). Tokens and secrets never appear in logs
or exception messages: errors name the method, the path and Looker's message.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import requests

from ifs_looker_core.retry import RetriesExhaustedError, RetryPolicy, send_with_retries

logger = logging.getLogger("target-looker.looker")

API_PATH = "/api/4.0"
MAX_RELOGIN_MARGIN_SECONDS = 60.0
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


def relogin_margin(lifetime: float) -> float:
    """How long before expiry the client logs in again."""
    return min(MAX_RELOGIN_MARGIN_SECONDS, 0.1 * lifetime)


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
    """A Looker API session. Use as a context manager so the session is logged out."""

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
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._token: str | None = None
        self._relogin_at = 0.0
        self.login_count = 0

    def __repr__(self) -> str:
        return f"LookerClient(api_url={self.credentials.api_url!r})"

    def __enter__(self) -> LookerClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # session -------------------------------------------------------------------------------------

    def login(self) -> None:
        """POST /login (form-encoded credentials); remembers the token and when to renew it."""
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
        body = response.json()
        lifetime = float(body.get("expires_in") or 3600)
        with self._lock:
            self._token = body["access_token"]
            self._relogin_at = self._clock() + lifetime - relogin_margin(lifetime)
            self.login_count += 1
        logger.info("Logged in to Looker at %s (token valid %d s)", creds.base_url, lifetime)

    def _current_token(self) -> str:
        with self._lock:
            fresh = self._token is not None and self._clock() < self._relogin_at
            token = self._token
        if not fresh:
            self.login()
            with self._lock:
                token = self._token
        assert token is not None
        return token

    def logout(self) -> None:
        """DELETE /logout; a session that already expired counts as logged out."""
        with self._lock:
            token, self._token = self._token, None
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
        """Send an authenticated API request; the parsed JSON body (None for 204)."""
        url = self.credentials.api_url + path
        used: list[str] = []

        def send() -> requests.Response:
            token = self._current_token()
            used.append(token)
            return self._session.request(
                method,
                url,
                params=params,
                data=None if json_body is None else json.dumps(json_body, default=str),
                headers={
                    "Authorization": f"token {token}",
                    **({"Content-Type": "application/json"} if json_body is not None else {}),
                },
                timeout=self.timeout,
            )

        def relogin() -> bool:
            with self._lock:
                stale = self._token is None or (used and self._token == used[-1])
            if stale:
                self.login()
            return True

        try:
            response = send_with_retries(
                send,
                policy=self.policy,
                method=method,
                url=url,
                on_unauthorized=relogin,
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

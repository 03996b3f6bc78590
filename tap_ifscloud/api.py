"""One authenticated, retrying HTTP session to IFS Cloud's OData projections.

Every request carries a fresh-enough bearer token and
`X-Ifs-Time-Zone-Aware-Request: true` (so `Z` timestamps mean UTC), goes
through the shared retry policy, and turns IFS's error bodies into messages a
person can act on. Response JSON is decoded with Decimal for every non-integer
number, so amounts stay exact.
"""

from __future__ import annotations

import decimal
import ipaddress
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import msgspec
import requests

from ifs_looker_core.redaction import redact_url
from ifs_looker_core.retry import RetriesExhaustedError, RetryPolicy
from ifs_looker_core.token_cache import send_authorized
from tap_ifscloud.auth import DEFAULT_SCOPE, IFSTokenProvider
from tap_ifscloud.errors import ConfigurationError, IFSRequestError, IFSResponseError
from tap_ifscloud.metadata import MetadataError, ProjectionMetadata, parse_edmx
from tap_ifscloud.odata import encode_query

logger = logging.getLogger("tap-ifscloud.api")

DEFAULT_PATH_PREFIX = "/main/ifsapplications/projection/v1"
_DECODER = msgspec.json.Decoder(float_hook=decimal.Decimal)
_PATH_SEGMENT = re.compile(r"^[A-Za-z0-9._~-]+$")


def normalize_path_prefix(value: Any, setting: str = "path_prefix") -> str:
    """`/main/ifsapplications/projection/v1` from any slash variant of it; a prefix that is
    not plain path segments (a query, `..`, a host) is a ConfigurationError naming `setting`."""
    if not isinstance(value, str) or not value.strip("/ "):
        raise ConfigurationError(
            f"{setting} must be a URL path such as {DEFAULT_PATH_PREFIX}, got {value!r}"
        )
    segments = value.strip().strip("/").split("/")
    if any(not _PATH_SEGMENT.match(s) or s in (".", "..") for s in segments):
        raise ConfigurationError(
            f"{setting} {value!r} is not a plain URL path (letters, digits, '.', '_', '~', '-' "
            f"between slashes), e.g. {DEFAULT_PATH_PREFIX}"
        )
    return "/" + "/".join(segments)


@dataclass(frozen=True)
class Connection:
    """Where and how to reach one IFS Cloud system (from the tap's settings)."""

    base_url: str
    token_url: str
    client_id: str
    client_secret: str
    scope: str = DEFAULT_SCOPE
    path_prefix: str = DEFAULT_PATH_PREFIX
    request_timeout: float = 300.0
    allow_insecure_http: bool = False

    def __repr__(self) -> str:
        return (
            f"Connection(base_url={self.base_url!r}, token_url={redact_url(self.token_url)!r}, "
            f"client_id={self.client_id!r})"
        )

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Connection:
        base_url = str(config.get("base_url") or "").rstrip("/")
        if not base_url:
            raise ConfigurationError("base_url is required (https://HOST of the IFS Cloud system)")
        token_url = config.get("token_url")
        if not token_url:
            realm = config.get("realm")
            if not realm:
                raise ConfigurationError("set either realm (IFS IAM namespace) or token_url")
            token_url = f"{base_url}/auth/realms/{realm}/protocol/openid-connect/token"
        for name in ("client_id", "client_secret"):
            if not config.get(name):
                raise ConfigurationError(f"{name} is required")
        prefix = normalize_path_prefix(config.get("path_prefix") or DEFAULT_PATH_PREFIX)
        connection = cls(
            base_url=base_url,
            token_url=token_url,
            client_id=config["client_id"],
            client_secret=config["client_secret"],
            scope=config.get("scope") or DEFAULT_SCOPE,
            path_prefix=prefix,
            request_timeout=float(config.get("request_timeout") or 300),
            allow_insecure_http=bool(config.get("allow_insecure_http")),
        )
        connection.check_transport()
        return connection

    def check_transport(self) -> None:
        """https is required except on loopback, unless explicitly allowed (SPEC §9)."""
        for url in (self.base_url, self.token_url):
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ConfigurationError(f"{redact_url(url)} is not an http(s) URL")
            if (
                parts.scheme == "http"
                and not self.allow_insecure_http
                and not _loopback(parts.hostname)
            ):
                raise ConfigurationError(
                    f"{redact_url(url)} uses plain http to a non-loopback host; use https "
                    "(or set allow_insecure_http for a trusted network)"
                )

    def projection_url(self, projection: str, path_prefix: str | None = None) -> str:
        """The service root of a projection, under `path_prefix` (a stream's own) or the
        system's."""
        return f"{self.base_url}{path_prefix or self.path_prefix}/{projection}.svc"


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def retry_policy(config: dict[str, Any]) -> RetryPolicy:
    return RetryPolicy(
        max_retries=int(config.get("max_retries", 8)),
        max_backoff_seconds=float(config.get("max_backoff_seconds", 60)),
        base_seconds=min(1.0, float(config.get("max_backoff_seconds", 60))),
    )


class IFSApi:
    """GET JSON and `$metadata` from IFS with auth, retries and IFS-style errors."""

    HEADERS = {
        "Accept": "application/json",
        "X-Ifs-Time-Zone-Aware-Request": "true",
        "User-Agent": "tap-ifscloud",
    }

    def __init__(self, connection: Connection, policy: RetryPolicy) -> None:
        self.connection = connection
        self.policy = policy
        self.session = requests.Session()
        self.tokens = IFSTokenProvider(
            token_url=connection.token_url,
            client_id=connection.client_id,
            client_secret=connection.client_secret,
            scope=connection.scope,
            session=self.session,
            policy=policy,
            timeout=connection.request_timeout,
        )
        self._metadata_cache: dict[tuple[str, str], ProjectionMetadata] = {}

    def get(
        self, url: str, params: dict[str, Any] | None = None
    ) -> tuple[requests.Response, bytes]:
        """GET with a current token; retries transient failures, renews the token once
        on a 401; raises on other errors. Returns the response and its body, read in
        one piece inside the retried request (so a connection lost mid-body is retried,
        as with requests' own read, which takes 10 kB at a time and costs more than
        decoding a large page)."""
        full_url = f"{url}?{encode_query(params)}" if params else url
        body: list[bytes] = [b""]

        def send(token: str) -> requests.Response:
            headers = {**self.HEADERS, "Authorization": f"Bearer {token}"}
            response = self.session.get(
                full_url, headers=headers, timeout=self.connection.request_timeout, stream=True
            )
            if response.status_code == 200:
                with response:  # read to the end: the connection goes back to the pool
                    body[0] = b"".join(response.iter_content(chunk_size=None))
            else:
                _ = response.content  # read, as without stream=True: IFS's error message
            return response

        try:
            response = send_authorized(
                self.tokens.cache,
                send,
                policy=self.policy,
                method="GET",
                url=full_url,
                log=logger,
            )
        except RetriesExhaustedError as exc:
            raise IFSRequestError(str(exc), url=redact_url(full_url)) from None
        if response.status_code != 200:
            raise IFSRequestError(
                describe_error(response, full_url), response.status_code, url=redact_url(full_url)
            )
        return response, body[0]

    def get_json(
        self,
        url: str,
        params: dict[str, Any] | None = None,
        *,
        decode: Callable[[bytes], Any] | None = None,
    ) -> dict[str, Any]:
        """The JSON object IFS answers, decoded by `decode` (default: Decimal for every
        non-integer number)."""
        response, content = self.get(url, params)
        try:
            body = (decode or _DECODER.decode)(content)
        except msgspec.DecodeError as exc:
            raise IFSResponseError(
                f"IFS answered GET {redact_url(response.url or url)} with malformed JSON ({exc})",
                url=redact_url(response.url or url),
            ) from None
        if not isinstance(body, dict):
            raise IFSResponseError(
                f"IFS answered GET {redact_url(response.url or url)} with JSON that is not an "
                "OData object",
                url=redact_url(response.url or url),
            )
        return body

    def metadata_url(self, projection: str, path_prefix: str | None = None) -> str:
        return f"{self.connection.projection_url(projection, path_prefix)}/$metadata"

    def metadata(self, projection: str, path_prefix: str | None = None) -> ProjectionMetadata:
        """A projection's `$metadata` (under `path_prefix`, or the system's), fetched once
        per run: discovery, the sync's drift check and `--test` share one request."""
        cache_key = (path_prefix or self.connection.path_prefix, projection)
        if cache_key not in self._metadata_cache:
            url = self.metadata_url(projection, path_prefix)
            try:
                content = self.get(url)[1]
            except IFSRequestError as exc:
                if exc.status == 404:
                    raise ConfigurationError(
                        f"unknown projection '{projection}': IFS has no $metadata for it ({exc})",
                        url=redact_url(url),
                    ) from None
                raise
            try:
                self._metadata_cache[cache_key] = parse_edmx(content, projection)
            except MetadataError as exc:
                raise IFSResponseError(str(exc), url=redact_url(url)) from None
        return self._metadata_cache[cache_key]


def describe_error(response: requests.Response, url: str) -> str:
    """IFS's own error message (code, message, details) with the redacted URL."""
    text = f"IFS answered GET {redact_url(url)} with HTTP {response.status_code}"
    try:
        body = response.json()
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        code = error.get("code")
        message = error.get("message") or ""
        details = [d.get("message") for d in error.get("details") or [] if isinstance(d, dict)]
        text += f" ({code})" if code else ""
        text += f": {message}" if message else ""
        extra = [d for d in details if d and d != message]
        if extra:
            text += " [" + "; ".join(extra) + "]"
    elif response.text:
        text += ": " + response.text[:300]
    return text

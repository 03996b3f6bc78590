"""`tap-ifscloud --test`: can this configuration read every selected stream?

Authenticates, reads the `$metadata` of each selected stream's projection and
one page of each selected stream (first company). Each stream's check says whether
its projection and entity set exist and which URL was tried, so a wrong name or
path prefix shows as such, stream by stream. `run_connection_test` returns one
result per check; `log_result` writes them as the command's report. Any failure
makes the command exit non-zero, so `meltano config tap-ifscloud test` and CI can
rely on it; `ifs-looker check` uses the results directly.
"""

from __future__ import annotations

import logging
import typing as t
from dataclasses import dataclass

from tap_ifscloud.errors import TapIFSCloudError

if t.TYPE_CHECKING:
    from tap_ifscloud.client import IFSStream
    from tap_ifscloud.tap import TapIFSCloud

logger = logging.getLogger("tap-ifscloud.test")

AUTHENTICATION = "authentication"
STREAM_CONFIGURATION = "stream configuration"


@dataclass(frozen=True)
class Check:
    """One check: `authentication`, `stream configuration` or `stream <name>`."""

    name: str
    ok: bool
    detail: str  # what worked, or the error (never a secret)
    url: str | None = None  # the system checked, or the entity set read


@dataclass(frozen=True)
class ConnectionTestResult:
    authentication: Check
    streams: tuple[Check, ...] = ()  # selected streams, in catalog order

    @property
    def ok(self) -> bool:
        return self.authentication.ok and all(check.ok for check in self.streams)

    @property
    def checks(self) -> tuple[Check, ...]:
        return (self.authentication, *self.streams)


def run_connection_test(tap: TapIFSCloud) -> ConnectionTestResult:
    """Token, then `$metadata` and one page per selected stream; nothing is logged."""
    try:
        tap.api.tokens.token()
    except TapIFSCloudError as exc:
        return ConnectionTestResult(Check(AUTHENTICATION, False, str(exc)))
    connection = tap.api.connection
    authentication = Check(
        AUTHENTICATION,
        True,
        f"token issued to client '{connection.client_id}'",
        url=connection.base_url,
    )
    tap.collect_stream_errors = True  # a stream that does not check out is reported, not fatal
    try:
        streams = [s for s in tap.streams.values() if s.selected]
    except TapIFSCloudError as exc:
        return ConnectionTestResult(
            authentication, (Check(STREAM_CONFIGURATION, False, str(exc), url=exc.url),)
        )
    finally:
        tap.collect_stream_errors = False
    company = tap.companies[0]
    errors = getattr(tap, "stream_errors", {})
    return ConnectionTestResult(
        authentication,
        tuple(_check_stream(stream, company, errors.get(stream.name)) for stream in streams),
    )


def _check_stream(stream: IFSStream, company: str, error: TapIFSCloudError | None) -> Check:
    name = f"stream {stream.name}"
    if error is not None:
        return Check(name, False, _with_url(str(error), error.url), url=error.url)
    definition = stream.definition
    metadata_url = stream.api.metadata_url(definition.projection, definition.path_prefix)
    try:
        page = stream.read_first_page(company)
    except TapIFSCloudError as exc:
        return Check(name, False, _with_url(str(exc), exc.url), url=exc.url)
    return Check(
        name,
        True,
        f"$metadata of {definition.projection} read ({metadata_url}), entity set "
        f"{page.entity_set} exists; first page for {company}: {len(page.records)} row(s) "
        f"from {page.url}",
        url=page.url,
    )


def _with_url(detail: str, url: str | None) -> str:
    """The error, naming the URL tried unless it already does."""
    if not url or url in detail:
        return detail
    return f"{detail} (URL tried: {url})"


def log_result(result: ConnectionTestResult) -> None:
    """One line per check, then the verdict (the `--test` report on stderr)."""
    authentication = result.authentication
    if authentication.ok:
        logger.info("OK     %s at %s", authentication.name, authentication.url)
    for check in result.checks:
        if not check.ok:
            logger.error("FAILED %s: %s", check.name, check.detail)
        elif check is not authentication:
            logger.info("OK     %s: %s", check.name, check.detail)
    logger.info("Connection test %s", "passed" if result.ok else "FAILED")

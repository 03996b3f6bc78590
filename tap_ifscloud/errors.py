"""Errors the tap reports to the user: each names the problem and carries no secret."""

from __future__ import annotations


class TapIFSCloudError(Exception):
    """Base for errors that end a run with a clear message and a non-zero exit.

    `url` is the IFS address the error is about (redacted), when there is one, so a
    report such as `--test` can name the URL it tried.
    """

    def __init__(self, message: str = "", *, url: str | None = None) -> None:
        super().__init__(message)
        self.url = url


class ConfigurationError(TapIFSCloudError):
    """The tap's configuration does not match the IFS system (or itself)."""


class AuthenticationError(TapIFSCloudError):
    """IFS IAM refused the client credentials or the token endpoint failed."""


class IFSRequestError(TapIFSCloudError):
    """IFS answered a request with an error the tap cannot retry (400, 403, 404, ...)."""

    def __init__(self, message: str, status: int | None = None, *, url: str | None = None) -> None:
        super().__init__(message, url=url)
        self.status = status


class IFSResponseError(TapIFSCloudError):
    """IFS answered 200 with a body that is not the OData JSON the tap expects."""


class MetadataUnavailableError(TapIFSCloudError):
    """A projection's `$metadata` could not be read, so its streams' schemas are unknown."""

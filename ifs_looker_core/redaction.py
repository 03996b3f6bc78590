"""Keeping secrets out of what people read: logs, errors, reports.

URLs are shown without user info and with credential-like query values masked;
free text (a library's error message, say) has every known secret value masked.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

MASK = "***"
_SENSITIVE_PARAM_WORDS = ("token", "secret", "password", "key", "code", "signature", "auth")
# Shorter values would mask ordinary words; no real secret is that short.
_MIN_SECRET_LENGTH = 4


def redact_url(url: str) -> str:
    """The URL without user info and with credential-like query values masked."""
    parts = urlsplit(url)
    netloc = parts.hostname or ""
    if parts.port:
        netloc = f"{netloc}:{parts.port}"
    query = [
        (k, MASK if any(w in k.lower() for w in _SENSITIVE_PARAM_WORDS) else v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
    ]
    # for people reading logs and errors: readable, not for sending
    text = urlencode(query, safe="$,()': ", quote_via=quote)
    return urlunsplit((parts.scheme, netloc, parts.path, text, ""))


def url_password(url: str) -> str | None:
    """The password in a `scheme://user:password@host/...` URL, if it has one."""
    try:
        return urlsplit(url).password
    except ValueError:
        return None


class Redactor:
    """Masks each of a fixed set of secret values wherever it appears in a text."""

    def __init__(self, secrets: Iterable[str | None]) -> None:
        self._values = sorted(
            {s for s in secrets if s and len(s) >= _MIN_SECRET_LENGTH}, key=len, reverse=True
        )

    def __call__(self, text: str) -> str:
        for value in self._values:
            text = text.replace(value, MASK)
        return text

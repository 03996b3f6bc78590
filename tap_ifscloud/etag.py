"""IFS entity tags: which version of a row the warehouse holds.

IFS sends `@odata.etag` as `W/"<base64>"`; the base64 decodes to
`W/"<ROWID>:<objversion>"`. The objversion (a `YYYYMMDDHH24MISS` timestamp, or
an integer counter for some entities) is what the target's version guard
compares, so it is carried on every record next to the raw tag.
"""

from __future__ import annotations

import binascii
from base64 import b64decode

ETAG_ANNOTATION = "@odata.etag"
ETAG_COLUMN = "_ifs_etag"
OBJVERSION_COLUMN = "_ifs_objversion"


def decode_objversion(etag: str | None) -> str | None:
    """The objversion inside an IFS etag, or None when the tag is absent or not IFS-shaped."""
    if not etag:
        return None
    inner = _strip_weak(etag)
    try:
        decoded = b64decode(inner, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    decoded = _strip_weak(decoded)
    _, sep, objversion = decoded.rpartition(":")
    return objversion if sep and objversion else None


def _strip_weak(tag: str) -> str:
    if tag.startswith("W/"):
        tag = tag[2:]
    if len(tag) >= 2 and tag[0] == '"' and tag[-1] == '"':
        tag = tag[1:-1]
    return tag

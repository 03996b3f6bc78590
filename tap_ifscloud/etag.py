"""IFS entity tags: which version of a row the warehouse holds.

IFS sends `@odata.etag` as `W/"<base64>"`; the base64 decodes to
`W/"<ROWID>:<objversion>"`. The objversion (a `YYYYMMDDHH24MISS` timestamp, or
an integer counter for some entities) is what the target's version guard
compares, so it is carried on every record next to the raw tag.
"""

from __future__ import annotations

import binascii

ETAG_ANNOTATION = "@odata.etag"
ETAG_COLUMN = "_ifs_etag"
OBJVERSION_COLUMN = "_ifs_objversion"


def decode_objversion(etag: str | None) -> str | None:
    """The objversion inside an IFS etag, or None when the tag is absent or not IFS-shaped."""
    if not etag:
        return None
    # Once per record: slices and comparisons rather than method calls, and
    # binascii.a2b_base64 directly (what base64.b64decode calls).
    inner = etag[3:-1] if etag[:3] == 'W/"' and etag[-1:] == '"' else etag
    try:
        decoded = binascii.a2b_base64(inner).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    if decoded[-1:] == '"':
        decoded = decoded[:-1]
    _, sep, objversion = decoded.rpartition(":")
    return objversion if sep and objversion else None

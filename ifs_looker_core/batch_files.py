"""Singer batch files as tap-ifscloud writes them and target-looker reads them.

JSON Lines (one record per line), plain or gzip, in local files named by `file://` URLs:
the tap decides by these what it writes a page at a time, the target what it accepts.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import url2pathname

JSONL = "jsonl"
PLAIN_COMPRESSIONS = (None, "none")
GZIP = "gzip"
COMPRESSIONS = (*PLAIN_COMPRESSIONS, GZIP)


def local_path(url: str) -> Path:
    """The path a `file://` URL names on this machine.

    Raises ValueError saying what is not supported: another scheme, or another host.
    """
    parts = urlsplit(url)
    if parts.scheme.lower() != "file":
        raise ValueError(
            f"URL scheme {parts.scheme or 'none'!r} is not supported "
            "(only file:// URLs of local files)"
        )
    if parts.netloc not in ("", "localhost"):
        raise ValueError(f"host {parts.netloc!r} is not this machine (only local files)")
    return Path(url2pathname(parts.path))

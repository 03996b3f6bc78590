"""IFS-style row versions: `W/"<base64 of W/"ROWID:objversion">"`.

objversion is a `YYYYMMDDHH24MISS` timestamp for most entities and an integer
counter for some; it only ever grows for a row.
"""

from __future__ import annotations

import base64
from datetime import datetime, timedelta
from functools import lru_cache

TIMESTAMP_FORMAT = "%Y%m%d%H%M%S"


def rowid(number: int) -> str:
    """An Oracle-looking 18-character ROWID, unique per number."""
    return f"AAAfEeAAF{number:09X}"


def make_etag(row_id: str, objversion: str) -> str:
    inner = f'W/"{row_id}:{objversion}"'
    return 'W/"' + base64.b64encode(inner.encode()).decode() + '"'


@lru_cache(maxsize=4096)
def first_objversion(kind: str, changed_at: datetime) -> str:
    return "1" if kind == "counter" else changed_at.strftime(TIMESTAMP_FORMAT)


def next_objversion(kind: str, previous: str, changed_at: datetime) -> str:
    """A strictly greater objversion, even for two changes within one second."""
    if kind == "counter":
        return str(int(previous) + 1)
    earliest = datetime.strptime(previous, TIMESTAMP_FORMAT) + timedelta(seconds=1)
    stamp = max(changed_at.replace(tzinfo=None, microsecond=0), earliest)
    return stamp.strftime(TIMESTAMP_FORMAT)

"""`tap-ifscloud --test`: can this configuration read every selected stream?

Authenticates, reads the `$metadata` of each selected stream's projection and
one page of each selected stream (first company), and reports per stream. Any
failure makes the command exit non-zero, so `meltano config tap-ifscloud test`
and CI can rely on it.
"""

from __future__ import annotations

import logging
import typing as t

from tap_ifscloud.errors import TapIFSCloudError

if t.TYPE_CHECKING:
    from tap_ifscloud.tap import TapIFSCloud

logger = logging.getLogger("tap-ifscloud.test")


def run_connection_test(tap: TapIFSCloud) -> bool:
    """Log one line per check; True when everything worked."""
    try:
        tap.api.tokens.token()
    except TapIFSCloudError as exc:
        logger.error("FAILED authentication: %s", exc)
        return False
    logger.info("OK     authentication at %s", tap.api.connection.base_url)

    try:
        streams = list(tap.streams.values())
    except TapIFSCloudError as exc:
        logger.error("FAILED stream configuration: %s", exc)
        return False
    ok = True
    for stream in streams:
        if not stream.selected:
            continue
        try:
            read = stream.live_layout().reads[0]
            company = tap.companies[0]
            rows = list(
                stream._read_entity_set(read, company, None, stream._wanted_columns(), max_pages=1)
            )
        except TapIFSCloudError as exc:
            ok = False
            logger.error("FAILED stream %s: %s", stream.name, exc)
            continue
        logger.info(
            "OK     stream %s: $metadata of %s read, first page of %s for %s: %d row(s)",
            stream.name,
            stream.definition.projection,
            read.entity_set,
            company,
            len(rows),
        )
    logger.info("Connection test %s", "passed" if ok else "FAILED")
    return ok

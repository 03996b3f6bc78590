"""Key-set paging over one OData entity set, loss-free while the data changes.

Rows are requested in ascending (replication field, keys) order and each page
asks for the rows strictly after the last row already read, so inserts, updates
and deletes between pages can neither skip nor repeat a row the way `$skip`
paging does (SPEC §3, §4.3).

A server that pages by itself returns fewer rows than `$top` plus an
`@odata.nextLink`; the link is followed. Such links are usually `$skip`-based,
which loses a row whenever an earlier row moves or disappears between two
requests, so every linked page is checked: a one-row key-set probe after the
last row read must return the linked page's first row. If it does not, the
linked page is dropped and reading continues by key-set from the last row.

A row that lacks one of the ordering values (null, or left out of the JSON) gives
no position to continue after. If a page ends with such rows, the next page is
asked for from the page's last complete row (or the previous position) with
`$skip` over the rows read after it: paging still makes progress and skips
nothing, with `$skip`'s weaker guarantee only for those pages. Key-set paging
resumes at the next page that ends with a complete row.

The next request is sent as soon as the current page is decoded, so IFS
prepares page N+1 while page N's rows are written out.
"""

from __future__ import annotations

import logging
import typing as t
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

from ifs_looker_core.redaction import redact_url
from tap_ifscloud import odata
from tap_ifscloud.errors import IFSResponseError

logger = logging.getLogger("tap-ifscloud.paging")

NEXT_LINK = "@odata.nextLink"
GetJson = Callable[..., dict[str, t.Any]]


@dataclass(frozen=True)
class _Fetched:
    body: dict[str, t.Any]
    via_link: bool
    probe: tuple | None = None  # first row after the position, for linked pages


@dataclass(frozen=True)
class _Position:
    """Where the next page starts: after `after` (the last complete ordering key read,
    None at the start), then `skip` rows further (rows without a complete key)."""

    after: tuple | None = None
    skip: int = 0


class KeysetReader:
    """Pages of rows of one entity set for one filter."""

    def __init__(
        self,
        get_json: GetJson,
        url: str,
        *,
        base_filter: str,
        order_fields: Sequence[tuple[str, str]],
        select: Sequence[str],
        page_size: int,
        max_pages: int | None = None,
        name: str = "ifs",
    ) -> None:
        self._get_json = get_json
        self.url = url
        self._base = base_filter
        self._order_fields = tuple(order_fields)
        self._order_names = [n for n, _ in order_fields]
        self._params = {
            "$select": ",".join(select),
            "$orderby": odata.order_by(self._order_names),
        }
        self.page_size = page_size
        self.max_pages = max_pages
        self._name = name
        self._skip_logged = False

    # requests (run on the prefetch thread) -----------------------------------------------

    def _query(self, position: _Position, top: int) -> dict[str, t.Any]:
        keyset = odata.after(self._order_fields, position.after) if position.after else None
        query = {"$filter": odata.and_all([self._base, keyset]) or None, **self._params}
        query["$top"] = str(top)
        if position.skip:
            query["$skip"] = str(position.skip)
        return self._get_json(self.url, query)

    def _keyset_page(self, position: _Position) -> _Fetched:
        return _Fetched(self._query(position, self.page_size), via_link=False)

    def _linked_page(self, link: str, position: _Position) -> _Fetched:
        body = self._get_json(link)
        probe_rows = self._query(position, 1).get("value") or []
        probe = self._order_key(probe_rows[0]) if probe_rows else None
        return _Fetched(body, via_link=True, probe=probe)

    # paging ------------------------------------------------------------------------------

    def _order_key(self, row: dict[str, t.Any]) -> tuple:
        return tuple(row.get(n) for n in self._order_names)

    def _advance(self, position: _Position, rows: list[dict[str, t.Any]]) -> _Position:
        """The position after `rows`: their last row's ordering key when it is complete
        (the usual case, one look at one row); otherwise the last complete row's, plus
        `$skip` over the rows after it."""
        if not rows:
            return position
        last = self._order_key(rows[-1])
        if None not in last:
            return _Position(last)
        for index in range(len(rows) - 2, -1, -1):
            key = self._order_key(rows[index])
            if None not in key:
                position = _Position(key, len(rows) - 1 - index)
                break
        else:
            position = _Position(position.after, position.skip + len(rows))
        if not self._skip_logged:
            self._skip_logged = True
            logger.info(
                "%s: a page ended with a row that lacks one of the ordering fields %s; "
                "continuing with $skip=%d after the last complete row until a page ends with "
                "a complete row",
                redact_url(self.url),
                ", ".join(self._order_names),
                position.skip,
            )
        return position

    def pages(self) -> Iterator[list[dict[str, t.Any]]]:
        """Lists of rows in order; each row exactly once while the data changes."""
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"{self._name}-page")
        try:
            position = _Position()
            pending: Future[_Fetched] | None = pool.submit(self._keyset_page, position)
            rows_in_chunk = 0
            pages = 0
            while pending is not None:
                fetched = pending.result()
                pages += 1
                rows = _rows(fetched.body, self.url)
                served = len(rows)
                if fetched.via_link:
                    rows = self._continuation(rows, position, fetched.probe)
                    if rows is None:  # the server's paging lost its place: re-read by key-set
                        pending = pool.submit(self._keyset_page, position)
                        rows_in_chunk = 0
                        continue
                rows_in_chunk += served
                position = self._advance(position, rows)
                pending = None
                if self.max_pages is None or pages < self.max_pages:
                    link = self._next_link(fetched.body)
                    if link:
                        pending = pool.submit(self._linked_page, link, position)
                    elif rows_in_chunk >= self.page_size:
                        pending = pool.submit(self._keyset_page, position)
                        rows_in_chunk = 0
                yield rows
        finally:
            pool.shutdown(wait=False, cancel_futures=True)

    def _continuation(
        self, rows: list[dict], position: _Position, probe: tuple | None
    ) -> list[dict] | None:
        """A linked page's rows after `position`, or None when it skipped a row."""
        if position.after is not None and not position.skip:
            floor = _sort_key(position.after)
            rows = [r for r in rows if _sort_key(self._order_key(r)) > floor]
        first = self._order_key(rows[0]) if rows else None
        if first == probe:
            return rows
        logger.info(
            "%s: a server-driven page did not continue where the last one ended (data changed "
            "between pages); continuing by key-set instead",
            redact_url(self.url),
        )
        return None

    def _next_link(self, body: dict[str, t.Any]) -> str | None:
        """The absolute nextLink; refused if it leads away from the IFS host
        (the bearer token must not travel elsewhere)."""
        link = body.get(NEXT_LINK)
        if not link:
            return None
        absolute = urljoin(self.url, link)
        if urlsplit(absolute)[:2] != urlsplit(self.url)[:2]:
            raise IFSResponseError(
                f"IFS answered {redact_url(self.url)} with a nextLink to another host "
                f"({redact_url(absolute)}); not following it"
            )
        return absolute


def _rows(body: dict[str, t.Any], url: str) -> list[dict[str, t.Any]]:
    rows = body.get("value")
    if not isinstance(rows, list):
        raise IFSResponseError(f"IFS answered {redact_url(url)} without an OData 'value' list")
    return rows


def _sort_key(values: Sequence[t.Any]) -> tuple:
    """Ascending order with nulls first, as IFS sorts."""
    return tuple((v is not None, v) for v in values)

"""Paginators the taps share, and the guard that keeps a page from being emitted twice."""

from __future__ import annotations

import typing as t
from urllib.parse import parse_qs, urlsplit

from singer_sdk.pagination import BaseAPIPaginator

if t.TYPE_CHECKING:
    import requests

RowsOf = t.Callable[["requests.Response"], list]
TotalOf = t.Callable[["requests.Response"], "int | None"]


class OffsetTotalPaginator(BaseAPIPaginator[int]):
    """``offset``/``limit`` paging that trusts the rows served, not the rows asked for.

    A server may cap a page below the ``limit`` asked (rewards invoices serve 10 when
    asked for 100), so the next offset is ``offset + rows served``, and a short page
    ends the list only when there is no total to say otherwise. With a total, the list
    ends at ``offset + rows >= total``; without one, on a page shorter than the limit.
    An empty page always ends it.
    """

    def __init__(self, limit: int, rows_of: RowsOf, total_of: TotalOf, start: int = 0) -> None:
        super().__init__(start)
        self.limit = limit
        self._rows_of = rows_of
        self._total_of = total_of

    def get_next(self, response: requests.Response) -> int | None:
        rows = len(self._rows_of(response))
        if rows == 0:
            return None
        following = self.current_value + rows
        total = self._total_of(response)
        if total is not None:
            return following if following < total else None
        return following if rows >= self.limit else None


HasMore = t.Callable[["requests.Response"], bool]


class PageNumberPaginator(BaseAPIPaginator[int]):
    """1-based page numbers, where the reply itself says whether another page follows.

    ``has_more`` reads that from the reply (inventory's ``page_context.has_more_page``,
    reporting's ``page < total_pages``). The paginator never asks for the page after
    one that said no more: the contract sandboxes log such a request as a violation,
    and a real API may answer it with an error or, worse, with the first page again.
    An empty page ends the list whatever the reply claims.
    """

    def __init__(self, has_more: HasMore, rows_of: RowsOf, start: int = 1) -> None:
        super().__init__(start)
        self._has_more = has_more
        self._rows_of = rows_of

    def get_next(self, response: requests.Response) -> int | None:
        if not self._rows_of(response) or not self._has_more(response):
            return None
        return self.current_value + 1


class RepeatGuard:
    """Ends a stream whose page repeats what this sync already emitted.

    Two ways a page can repeat: a list that ignores paging parameters serves the same
    rows at every offset (the whole page repeats: the stream ends), and a newest-first
    list that grows during the sync shifts rows from one page onto the next (those
    rows are dropped, the rest are kept). Only the previous page's keys are kept, so
    memory stays flat however long the stream.
    """

    def __init__(self, key_of: t.Callable[[dict], t.Hashable]) -> None:
        self._key_of = key_of
        self._previous: set[t.Hashable] = set()

    def admit(self, page: list[dict]) -> tuple[list[dict], bool]:
        """Return the page's new records, and whether the whole page was a repeat."""
        keys = [self._key_of(record) for record in page]
        previous, self._previous = self._previous, set(keys)
        if not previous:
            return page, False
        fresh = [record for record, key in zip(page, keys, strict=True) if key not in previous]
        return fresh, bool(page) and not fresh


LinksOf = t.Callable[["requests.Response"], "list | None"]


class LinkTokenPaginator(BaseAPIPaginator["str | None"]):
    """An opaque token read from the ``href`` of the reply's ``rel: next`` link.

    The token is the API's own (``?next_page_token=eyJ...``): it is sent back exactly as
    given, never computed, and no ``next`` link ends the list. Reading the token rather
    than requesting the ``href`` itself keeps the stream's own parameters and base URL
    on every request.
    """

    def __init__(self, links_of: LinksOf, token_param: str, rel: str = "next") -> None:
        super().__init__(None)
        self._links_of = links_of
        self.token_param = token_param
        self.rel = rel

    def get_next(self, response: requests.Response) -> str | None:
        for link in self._links_of(response) or ():
            if isinstance(link, dict) and link.get("rel") == self.rel:
                query = parse_qs(urlsplit(str(link.get("href") or "")).query)
                values = query.get(self.token_param) or [None]
                return values[0] or None
        return None


CursorOf = t.Callable[["requests.Response"], t.Any]


class CursorPaginator(BaseAPIPaginator["str | None"]):
    """The next request starts at the id the reply names (``start_id`` from ``next_id``).

    No cursor, or an empty one, ends the list; the same cursor twice in a row is a loop
    the SDK stops.
    """

    def __init__(self, cursor_of: CursorOf) -> None:
        super().__init__(None)
        self._cursor_of = cursor_of

    def get_next(self, response: requests.Response) -> str | None:
        cursor = self._cursor_of(response)
        return None if cursor in (None, "") else str(cursor)

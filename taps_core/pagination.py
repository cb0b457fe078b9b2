"""Paginators the taps share, and the guard that keeps a page from being emitted twice."""

from __future__ import annotations

import dataclasses
import typing as t
from urllib.parse import parse_qs, urljoin, urlsplit

from singer_sdk.pagination import BaseAPIPaginator

from taps_core.errors import APIError, request_label

if t.TYPE_CHECKING:
    import requests
    from singer_sdk.streams.rest import HTTPRequest, PageContext

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


NextUrlOf = t.Callable[["requests.Response"], "str | None"]


class NextPageUrl(str):
    """A URL the API handed out for its next page: to be sent byte for byte."""

    __slots__ = ()


def _origin(url: str) -> tuple[str, str, int | None]:
    """Scheme, host and port (the scheme's default made explicit) of ``url``."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), parts.port or _DEFAULT_PORTS.get(scheme)


_DEFAULT_PORTS = {"http": 80, "https": 443}


class NextPageUrlPaginator(BaseAPIPaginator["str | None"]):
    """Pages by the full URL the reply names for the next page (``nextPage``).

    The token is that URL, to be requested exactly as given (query included: see
    :class:`FollowsNextPageUrl`): the API built it, and a rebuilt one may differ in what
    the API reads from it. ``None``, an empty string or an absent field ends the list.
    The URL must point at the API's own origin (scheme, host and port of ``base_url``):
    the request carries the token and the tap's headers, which must go nowhere else. A
    relative URL is read against the page that named it. ``what`` names the stream in
    the error (``tap-bookings stream 'account'``).
    """

    def __init__(self, next_url_of: NextUrlOf, base_url: str, what: str = "") -> None:
        super().__init__(None)
        self._next_url_of = next_url_of
        self._base_url = base_url
        self._origin = _origin(base_url)
        self._what = what

    def get_next(self, response: requests.Response) -> str | None:
        url = self._next_url_of(response)
        if not url:
            return None
        if isinstance(url, str) and not urlsplit(url).scheme:
            url = urljoin(response.url, url)  # only a relative one: urljoin may re-spell
        if not isinstance(url, str) or _origin(url) != self._origin:
            label = request_label(response.request.method, response.url)
            msg = (
                f"{self._what + ': ' if self._what else ''}{label} named a next page "
                f"outside {self._base_url} ({urlsplit(str(url)).netloc or url!r}); the tap "
                "sends its credentials only to base_url, so it stops here. Check the "
                "base_url setting."
            )
            raise APIError(msg)
        return NextPageUrl(url)


class FollowsNextPageUrl:
    """Stream mixin: a page token that is a URL is requested as it is, nothing re-added.

    The SDK builds each request from ``get_url`` plus ``get_url_params``; for a
    next-page URL that would append the first page's parameters a second time or
    re-encode the ones it carries. Here the URL replaces both, and the prepared
    request keeps it as given: ``requests`` would re-spell it (``%7E`` becomes ``~``),
    which an API that compares the URL, or signs it, may refuse. Only a URL that
    cannot travel as it is (not ASCII, or with spaces) is left to requests to quote.
    Put the mixin before the stream base class; ``get_url_params`` then only
    describes the first page.
    """

    def get_http_request(self, *, page: PageContext) -> HTTPRequest:
        request = super().get_http_request(page=page)  # type: ignore[misc]
        token = page.next_page_token
        if isinstance(token, str) and token:
            return dataclasses.replace(request, url=NextPageUrl(token), params={})
        return request

    def build_prepared_request(self, *args: t.Any, **kwargs: t.Any) -> requests.PreparedRequest:
        prepared = super().build_prepared_request(*args, **kwargs)  # type: ignore[misc]
        url = kwargs.get("url")
        if isinstance(url, NextPageUrl) and url.isascii() and url.isprintable() and " " not in url:
            prepared.url = str(url)
        return prepared


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

"""Paginators the taps share, and the guard that keeps a page from being emitted twice."""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
import tempfile
import typing as t
from array import array
from urllib.parse import parse_qs, urljoin, urlsplit

from singer_sdk.pagination import BaseAPIPaginator

from taps_core.errors import APIError, request_label

if t.TYPE_CHECKING:
    import requests
    from singer_sdk.streams.rest import HTTPRequest, PageContext

_log = logging.getLogger(__name__)

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

    def following(self, response: requests.Response) -> range | None:
        """The offsets after this reply's page, where its total says where the list ends.

        Each page is as long as this one (the limit asked, or the server's own cap),
        so they are known now; none is at or past the total. Without a total, only
        the rows served say whether another page follows: None.
        """
        rows = len(self._rows_of(response))
        total = self._total_of(response)
        if not rows or total is None:
            return None
        return range(self.current_value + rows, total, rows)


HasMore = t.Callable[["requests.Response"], bool]
LastPageOf = t.Callable[["requests.Response"], "int | None"]


class PageNumberPaginator(BaseAPIPaginator[int]):
    """1-based page numbers, where the reply itself says whether another page follows.

    ``has_more`` reads that from the reply (inventory's ``page_context.has_more_page``,
    reporting's ``page < total_pages``). The paginator never asks for the page after
    one that said no more: the contract sandboxes log such a request as a violation,
    and a real API may answer it with an error or, worse, with the first page again.
    An empty page ends the list whatever the reply claims.
    """

    def __init__(
        self,
        has_more: HasMore,
        rows_of: RowsOf,
        start: int = 1,
        last_page_of: LastPageOf | None = None,
    ) -> None:
        super().__init__(start)
        self._has_more = has_more
        self._rows_of = rows_of
        self._last_page_of = last_page_of

    def get_next(self, response: requests.Response) -> int | None:
        if not self._rows_of(response) or not self._has_more(response):
            return None
        return self.current_value + 1

    def following(self, response: requests.Response) -> range | None:
        """The page numbers after this one up to the last, where the reply names it.

        ``last_page_of`` reads the page count (reporting's ``total_pages``); a list
        that only says whether another page follows (``has_more_page``) is None.
        """
        if self._last_page_of is None or not self._rows_of(response):
            return None
        last = self._last_page_of(response)
        if last is None:
            return None
        return range(self.current_value + 1, last + 1)


class KeyHashes:
    """A set of 64-bit key hashes that holds about 2 to 4 bytes a key in memory, exactly.

    A guard must remember every key a sync emitted, so what it holds a key is what a long
    sync pays: a Python ``set`` of ints costs some 70 bytes a key, a flat table of the
    hashes themselves 16 to 32 (16 MiB for a million rows, the tap's only memory that
    grew with the rows). Yet it must be exact: a row dropped because a shorter
    fingerprint matched would be a row lost, silently. So the set is split in two:

    - in memory, an ``array('h')`` of 16-bit fingerprints (the hash's top 16 bits, zero
      taken as one: zero marks an empty slot), open addressing with linear probing from
      the slot the hash's low bits name, at most half full, so that a miss (the common
      case: a new row) costs about two probes, as the table of full hashes did. An empty
      slot reached proves the key new; a slot with its fingerprint only makes it doubtful;
    - the full hashes, appended in the order they came to an anonymous temporary file
      (``tempfile.TemporaryFile``: no name, gone when closed) once :attr:`SPILL_AT` of
      them have come, so that a short list (a child stream's, one a parent) never opens
      one. The file holds 8 bytes a key; memory only the few thousand not written yet.

    A doubtful key is first looked up in the hashes last added, held exactly (two sets
    of :attr:`RECENT`, the newest and the one before), because the repeats of a list
    that grows newest-first come from the page just read. Only a doubtful key not found
    there is looked up in the file: all of a batch's doubtful keys in one pass over it,
    a chunk at a time. A new key meets a fingerprint equal to its own about once in
    50,000 or more (at most 1.5 occupied slots a miss at half full, 1 in 65,535 each),
    so a sync of a million new rows searches its file some 10 to 20 times. A key found
    far back (a list that serves its start again) brings the :attr:`REPLAY` hashes that
    followed it into memory too, so that a list replaying a long stretch costs a pass
    over the file for each such stretch, not one a page.

    The values must be hashes whose top and low bits both vary (SipHash, a tuple's
    hash), not small ints, which are their own hash: their fingerprints would all be
    one, and every slot shared would send a key to the file. Growing the table rebuilds
    it from the file, since a fingerprint does not say which slot it came from;
    :meth:`reserve` sizes it once from a list's stated total. A hash of zero is taken
    as one, as the table of full hashes did before.
    """

    #: Hashes in each of the two sets of those last added, held exactly (by default).
    RECENT = 2048
    #: Hashes kept in memory before they are appended to the file (and it is opened).
    SPILL_AT = 4096
    #: Hashes brought into memory from after a key found far back in the file.
    REPLAY = 8192
    #: Bytes read from the file at once when it is searched (a multiple of 8): little, as
    #: a chunk and its ints are held while it is searched, and count in the peak memory.
    CHUNK = 1 << 18

    __slots__ = (
        "_file",
        "_mask",
        "_older",
        "_recent",
        "_recent_size",
        "_replayed",
        "_slots",
        "_spill_at",
        "_spilled",
        "_tail",
        "_used",
        "file_passes",
    )

    def __init__(self, capacity: int = 1024, recent: int | None = None) -> None:
        self._file: t.BinaryIO | None = None
        self._recent_size = self.RECENT if recent is None else recent
        self._start(capacity)

    def _start(self, capacity: int) -> None:
        """Empty, with room for half of ``capacity`` values (a power of two, at least)."""
        size = 1 << max(capacity - 1, 1).bit_length()
        self._slots = array("h", [0]) * size
        self._mask = size - 1
        self._used = 0
        self._tail = array("q")  # the hashes not yet in the file, oldest first
        self._spilled = 0  # hashes in the file
        self._spill_at = self.SPILL_AT
        self._recent: set[int] = set()
        self._older: set[int] = set()
        self._replayed: set[int] = set()
        #: How many times the file was searched (each a pass over it, or less).
        self.file_passes = 0

    def __len__(self) -> int:
        return self._used

    def __contains__(self, value: int) -> bool:
        value = value or 1
        if value in self._recent or value in self._older or value in self._replayed:
            return True
        slots, mask = self._slots, self._mask
        mark = value >> 48 or 1
        i = value & mask
        while True:
            held = slots[i]
            if held == mark:
                return bool(self._held_before({value}))
            if not held:
                return False
            i = (i + 1) & mask

    def add_new(self, values: list[int]) -> list[int]:
        """Add each value; return the positions of those already held (a value twice in
        ``values`` is held the second time). Usually empty: no list is built a value."""
        if (self._used + len(values)) * 2 > len(self._slots):
            self._grow(self._used + len(values))
        if 0 in values:
            values = [value or 1 for value in values]
        slots, mask = self._slots, self._mask
        recent, older, replayed = self._recent, self._older, self._replayed
        held_before: list[int] = []
        doubtful: list[int] = []  # positions whose fingerprint is held, key unconfirmed
        for n, value in enumerate(values):
            i = value & mask
            held = slots[i]
            if not held:
                slots[i] = value >> 48 or 1
                continue
            mark = value >> 48 or 1
            while held:
                if held == mark:
                    if value in recent or value in older or value in replayed:
                        held_before.append(n)
                    else:
                        doubtful.append(n)
                    break
                i = (i + 1) & mask
                held = slots[i]
            else:
                slots[i] = mark
        if doubtful:
            self._settle(values, doubtful, held_before)
        self._used += len(values) - len(held_before)
        self._remember(values, held_before)
        return held_before

    def reserve(self, count: int) -> None:
        """Make room for ``count`` values at once: no rebuilding from the file later."""
        if count * 2 > len(self._slots):
            self._grow(count)

    def bytes_held(self) -> int:
        """The memory this set holds (its table, sets and buffer), not the file."""
        sets = (self._recent, self._older, self._replayed)
        return (
            len(self._slots) * self._slots.itemsize
            + len(self._tail) * self._tail.itemsize
            + sum(sys.getsizeof(held) + sum(map(sys.getsizeof, held)) for held in sets)
        )

    def close(self) -> None:
        """Forget every value and delete the file, at the end of a sync."""
        if self._file is not None:
            self._file.close()
            self._file = None
        self._start(2)

    def _settle(self, values: list[int], doubtful: list[int], held_before: list[int]) -> None:
        """Tell the doubtful positions held before from those a fingerprint only matched.

        A value is held if it was added before this batch (the file, the buffer) or
        earlier in the batch: its first position in ``values`` comes first.
        """
        before = self._held_before({values[n] for n in doubtful})
        slots, mask = self._slots, self._mask
        for n in doubtful:
            value = values[n]
            if value in before or values.index(value) < n:
                held_before.append(n)
                continue
            i = value & mask
            while slots[i]:
                i = (i + 1) & mask
            slots[i] = value >> 48 or 1
        held_before.sort()

    def _remember(self, values: list[int], held_before: list[int]) -> None:
        """Keep the batch's values exactly: new ones for good, all of them as recent."""
        if held_before:
            drop = set(held_before)
            self._tail.extend(value for n, value in enumerate(values) if n not in drop)
        else:
            self._tail.fromlist(values)
        self._recent.update(values)
        if len(self._recent) >= self._recent_size:
            self._older, self._recent = self._recent, set()
        if len(self._tail) >= self._spill_at:
            self._spill()

    def _spill(self) -> None:
        """Append the buffer to the file, opened the first time.

        Where no temporary file can be opened (no writable temporary directory), the
        hashes stay in the buffer, exact still, at 8 bytes a key, as the guard held
        them before it had a file.
        """
        if self._file is None:
            try:
                self._file = tempfile.TemporaryFile()  # noqa: SIM115 (closed by close())
            except OSError as error:
                _log.warning("The repeat guard keeps its keys in memory: %s", error)
                self._spill_at = sys.maxsize
                return
        self._file.write(self._tail)
        self._file.flush()
        self._spilled += len(self._tail)
        self._tail = array("q")

    def _held_before(self, wanted: set[int]) -> set[int]:
        """Those of ``wanted`` added before: in the buffer, or found in one pass of the file."""
        found = wanted.intersection(self._tail)
        missing = wanted - found
        if not missing or self._file is None:
            return found
        self.file_passes += 1
        first: int | None = None  # the position in the file of the first one found
        for offset, chunk in self._file_chunks():
            if len(missing) <= 4:  # a search a value, in C, beats making a chunk's ints
                hits = {}
                for value in missing:
                    needle = array("q", [value]).tobytes()
                    at = chunk.find(needle)
                    while at >= 0 and at % 8:  # an 8-byte value starts every 8 bytes
                        at = chunk.find(needle, at + 1)
                    if at >= 0:
                        hits[value] = at // 8
            else:
                numbers = array("q")
                numbers.frombytes(chunk)
                hits = {value: numbers.index(value) for value in missing.intersection(numbers)}
            if hits:
                found.update(hits)
                missing.difference_update(hits)
                if first is None:
                    first = offset // 8 + min(hits.values())
                if not missing:
                    break
        if first is not None:
            self._replay_from(self._file.fileno(), first)
        return found

    def _file_chunks(self) -> t.Iterator[tuple[int, bytes]]:
        """The file's bytes, :attr:`CHUNK` at a time, each with its offset."""
        assert self._file is not None
        fd = self._file.fileno()
        end = self._spilled * 8
        for offset in range(0, end, self.CHUNK):
            chunk = os.pread(fd, min(self.CHUNK, end - offset), offset)
            if not chunk:
                raise OSError("the repeat guard's file ended early")
            yield offset, chunk

    def _replay_from(self, fd: int, position: int) -> None:
        """Hold the hashes that followed one found far back, for the pages that follow."""
        count = min(self.REPLAY, self._spilled - position)
        numbers = array("q")
        numbers.frombytes(os.pread(fd, count * 8, position * 8))
        self._replayed = set(numbers)

    def _history(self) -> t.Iterator[array]:
        """Every value added, oldest first, a chunk at a time: the file, then the buffer."""
        if self._file is not None:
            for _, chunk in self._file_chunks():
                numbers = array("q")
                numbers.frombytes(chunk)
                yield numbers
        yield self._tail

    def _grow(self, needed: int) -> None:
        size = len(self._slots)
        while needed * 2 > size:
            size *= 2
        self._slots = array("h")  # the old table goes first: it is not needed to rebuild
        slots = self._slots = array("h", [0]) * size
        mask = self._mask = size - 1
        for numbers in self._history():
            for value in numbers:
                i = value & mask
                while slots[i]:
                    i = (i + 1) & mask
                slots[i] = value >> 48 or 1


#: The most keys the guard makes room for on the word of a reply's total (8 MiB).
RESERVE_AT_MOST = 1 << 21


class RepeatGuard:
    """Emits each record once per sync and ends a list that only repeats itself.

    It remembers a 64-bit hash of the key of every record emitted in the sync
    (:class:`KeyHashes`: a 16-bit fingerprint of each in memory, the hashes themselves
    in a temporary file that :meth:`close` deletes), so a row served twice is dropped
    however far apart the two pages are, and no row is dropped on a fingerprint alone.
    A newest-first list that grows during the sync pushes rows already read onto the
    pages that follow: when more than a page arrives between two requests, a whole page
    repeats, and that is no reason to stop, since the rows not yet read follow it. A
    page that brings nothing new ends the list only when the list shows it is not
    growing:

    - the paginator asks again for a page it already asked for (a cursor that cycles);
    - the reply states the list's size, and more rows came back in this sync than the
      list grew by since its first page (each new row at the head pushes one row read
      onto the next page; a list that ignores offset and limit serves the same rows at
      every offset without growing);
    - the reply states no size, and the page equals one that already came back since
      the last page that brought something new: pages cycling A, B, A, B, A end on
      that third A, each row emitted once. So one repeated page is read past, because
      exactly a page of new rows between two requests looks the same, and pages that
      repeat different stretches of what was read (new rows arriving in bursts) are
      read past too, though no more of them in a row than the rows read could fill.
      A repeated page longer than the limit asked shows a list that ignores paging
      (the contract's unpaged rewards lists), which ends at once.

    ``hashes_of`` gives the hashes of a page's keys (``CollectionStream._key_hashes``).
    """

    def __init__(self, hashes_of: t.Callable[[list[dict]], list[int]]) -> None:
        self._hashes_of = hashes_of
        self._emitted = KeyHashes()
        self._asked = KeyHashes(64, recent=64)  # a token asked again is rare: the file tells
        self._first_total: int | None = None  # the list's size on the first page
        self._repeated = 0  # rows served again in this sync (new rows at the head push
        # one row already read onto the next page each, so no more than the list grew)
        # the pages that only repeated, since the last page that brought something new
        self._repeat_pages: set[int] = set()

    def admit(
        self,
        page: list[dict],
        *,
        total: int | None = None,
        token: t.Any = None,
        again: int = 0,
        limit: int | None = None,
    ) -> tuple[list[dict], str | None]:
        """The page's records not emitted before, and why the list ends here (or None).

        ``total`` is the list's size as this reply states it (None: it does not say);
        ``token`` the paginator's value this page was asked for; ``again`` how many
        rows the paginator asked for a second time on purpose (an overlap); ``limit``
        how many rows the page was asked for, where the paginator says.
        """
        if total is not None and self._first_total is None:
            self._first_total = total
            self._emitted.reserve(min(total, RESERVE_AT_MOST))
        try:
            token_hash = hash((token,))  # an int is its own hash: the tuple's spreads its bits
        except TypeError:
            token_hash = hash(repr(token))
        first_ask = not self._asked.add_new([token_hash])
        hashes = self._hashes_of(page)
        held = self._emitted.add_new(hashes)
        if not held:
            fresh = page
        else:
            drop = set(held)
            fresh = [record for n, record in enumerate(page) if n not in drop]
            self._repeated += len(held) - min(again, len(held))
        if fresh or not page:
            if self._repeat_pages:
                self._repeat_pages.clear()
            return fresh, None
        if not first_ask:
            return [], "the paginator asked again for a page it had read"
        if total is not None and self._first_total is not None:
            if self._repeated <= total - self._first_total:
                return [], None
            return [], "more rows came back than the list grew by"
        if limit is not None and len(page) > limit:
            return [], "the list ignores the limit asked, so it ignores paging"
        unasked = hashes[again:]  # not the overlap rows: they repeat by design
        signature = hash(tuple(unasked))
        if signature in self._repeat_pages:
            return [], "the same page came back twice"
        self._repeat_pages.add(signature)
        if len(self._repeat_pages) > len(self._emitted) // max(len(unasked), 1) + 1:
            return [], "more pages repeated than the rows read could fill"
        return [], None

    def close(self) -> None:
        """End the sync: forget its keys, delete their file."""
        self._emitted.close()
        self._asked.close()


class OverlappingOffsetPaginator(OffsetTotalPaginator):
    """Offset paging where each page after the first re-reads the last row of the one before.

    For a list without ids, whose key is a row's content plus its position among
    identical rows: with one row of overlap, a page that starts with a row identical to
    the last one read tells "the same row, pushed onto this page by a new arrival" (the
    overlap row then sits one place further down) from "a second, identical row" (the
    overlap row is first). The page is asked with ``limit + overlap`` rows, so each
    request still advances by ``limit``.
    """

    def __init__(
        self, limit: int, rows_of: RowsOf, total_of: TotalOf, overlap: int = 1, start: int = 0
    ) -> None:
        super().__init__(limit, rows_of, total_of, start)
        self.overlap = overlap

    def asked_again(self, value: int | None) -> int:
        """How many rows of the page asked at ``value`` were asked before on purpose."""
        return min(self.overlap, value or 0)

    @staticmethod
    def window(value: int | None, limit: int, overlap: int) -> tuple[int, int]:
        """The ``(offset, limit)`` to ask for the page whose first new row is at ``value``."""
        back = min(overlap, value or 0)
        return (value or 0) - back, limit + back

    def get_next(self, response: requests.Response) -> int | None:
        offset, asked = self.window(self.current_value, self.limit, self.overlap)
        rows = len(self._rows_of(response))
        following = offset + rows
        if rows == 0 or following <= self.current_value:
            return None
        total = self._total_of(response)
        if total is not None:
            return following if following < total else None
        return following if rows >= asked else None

    def following(self, response: requests.Response) -> range | None:
        """As :meth:`OffsetTotalPaginator.following`, for full pages: each advances by
        ``limit`` (it re-reads ``overlap`` rows of the one before)."""
        offset, asked = self.window(self.current_value, self.limit, self.overlap)
        rows = len(self._rows_of(response))
        total = self._total_of(response)
        if total is None or rows < asked:
            return None
        return range(offset + rows, total, self.limit)


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

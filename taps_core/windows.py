"""Lists an API serves only by date window: walk the windows, split what is too large.

Some APIs answer only for a bounded range (``start_date``..``end_date`` at most 31 days
apart) and refuse a range that matches too many rows. A stream declares the window's
query parameters and the error name that means "too many"; the walk is done here once:

- windows of ``window_days`` run from the bookmark (or ``start_date``, or
  :attr:`DateWindowStream.default_lookback_days` back) to ``end_date`` if one is set
  and past, else to the moment the sync began; each ends where the next begins, so
  with an API that reads them half-open (``start <= t < end``) no row falls in two and
  none between;
- a window the API refuses as too large is split in two and each half read in turn,
  recursively; the refused window is never asked again unchanged;
- the bookmark is the end of the last finished window, and a STATE message follows
  every window, so a sync killed half-way resumes at its last finished window instead
  of from the beginning.

Why one bookmark and not the SDK's partitions: partitions are fixed before the sync and
would leave one state entry per window ever read; and the SDK's own bookmark, the
greatest replication value seen, only becomes resumable at the end of an unsorted
stream. Here the stream moves the bookmark itself, at window ends, where it is exact:
every row before it has been emitted.
"""

from __future__ import annotations

import typing as t
from datetime import datetime, timedelta, timezone

from taps_core import prefetch
from taps_core.client import CollectionStream
from taps_core.errors import APIError

if t.TYPE_CHECKING:
    from singer_sdk.helpers.types import Context

Window = tuple[datetime, datetime]


def rfc3339(moment: datetime) -> str:
    """``2024-01-31T00:00:00Z``: whole seconds, UTC."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class DateWindowStream(CollectionStream):
    """A list read window by window; subclasses declare the parameters and paging.

    The window reaches :meth:`get_url_params` (and ``prepare_request_payload``) through
    the context, as ``context["window_start"]`` and ``context["window_end"]``, already
    written as the API wants them (:meth:`format_bound`).
    """

    #: Setting that holds the window length in days.
    window_setting: t.ClassVar[str] = "window_days"
    default_window_days: t.ClassVar[int] = 7
    #: Setting that holds the instant the last window ends at (default: the sync's start).
    #: A run bounded by it (one month of a backfill) reads nothing of the next month,
    #: whose run begins at that same instant: windows are half-open.
    end_setting: t.ClassVar[str] = "end_date"
    #: Where to begin with neither state nor ``start_date``.
    default_lookback_days: t.ClassVar[int] = 30
    #: Error names meaning "this window matches too much: ask for a smaller one". They
    #: belong in ``permanent_error_names`` too, so that they are never retried as is.
    split_error_names: t.ClassVar[frozenset[str]] = frozenset()
    #: No window shorter than this is asked for; one still too large fails the sync.
    min_window: t.ClassVar[timedelta] = timedelta(seconds=2)
    #: The windows end when the stream's read begins: its first request is not known
    #: earlier (its windows' first pages are fetched ahead once it begins).
    first_request_known_ahead: t.ClassVar[bool] = False

    @property
    def window_length(self) -> timedelta:
        return timedelta(
            days=float(self.config.get(self.window_setting) or self.default_window_days)
        )

    def format_bound(self, moment: datetime) -> str:
        """A window bound as the API reads it (RFC 3339 in UTC unless overridden)."""
        return rfc3339(moment)

    def window_origin(self, context: Context | None) -> datetime:
        """The bookmark, else ``start_date`` (the later of the two), else the lookback."""
        start = self.get_starting_timestamp(context)
        if start is None:
            start = self._horizon - timedelta(days=self.default_lookback_days)
        if start.tzinfo is None:
            start = start.replace(tzinfo=timezone.utc)
        return start.astimezone(timezone.utc)

    def window_horizon(self) -> datetime:
        """``end_date`` if set and not in the future, else now (whole seconds, UTC)."""
        now = datetime.now(timezone.utc).replace(microsecond=0)
        value = self.config.get(self.end_setting)
        if not value:
            return now
        end = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        if end.tzinfo is None:
            end = end.replace(tzinfo=timezone.utc)
        return min(end.astimezone(timezone.utc), now)

    def windows(self, origin: datetime, horizon: datetime) -> t.Iterator[Window]:
        """Consecutive windows from ``origin`` to ``horizon``: no gap, no overlap."""
        step = self.window_length
        start = origin
        while start < horizon:
            end = min(start + step, horizon)
            yield start, end
            start = end

    def plan_ahead(self) -> t.Iterator[tuple[Context | None, t.Any]] | None:
        """The first pages of the windows that will be read as they are known now.

        The last window ends when the stream's read begins, so only the windows that
        end before this moment (or all of them, under an ``end_date`` already past) are
        the same then. With neither bookmark nor ``start_date`` the windows start a
        lookback before that moment: none is known, and none is offered.
        """
        if self.partitions is not None or self.parent_stream_type is not None:
            return None
        with self.as_its_sync_begins(None):  # the stream's starting value (request_ahead)
            origin = self.window_origin(None) if self.get_starting_timestamp(None) else None
        if origin is None:
            return None
        # "now" before the horizon: a second that ticks between the two must not make
        # the horizon look like an end_date already past (its last window would end
        # earlier than the read's)
        now = datetime.now(timezone.utc).replace(microsecond=0)
        horizon = self.window_horizon()
        final = horizon < now  # an end_date in the past: the read's horizon is this one
        token = self.get_new_paginator().current_value
        return (
            (self._window_context(None, window), token)
            for window in self.windows(origin, horizon)
            if final or window[1] < horizon
        )

    def request_records(self, context: Context | None) -> t.Iterable[dict]:
        self._horizon = self.window_horizon()
        origin = self.window_origin(context)
        with prefetch.lane_in_use(self) as lane:
            if lane is not None:  # every window's first page is asked for, come what may
                start = self.get_new_paginator().current_value
                firsts = (
                    (self._window_context(context, window), start)
                    for window in self.windows(origin, self._horizon)
                )
                # as many at once as can be in flight: one window that fails stops
                # the sync, and what was fetched beyond it is wasted
                lane.plan(self, firsts, cap=lane.width, front=False)
            for window in self.windows(origin, self._horizon):
                yield from self._read_window(window, context)

    def _read_window(self, window: Window, context: Context | None) -> t.Iterator[dict]:
        """One window, split as often as the API asks; the bookmark moves per piece."""
        pending = [window]
        while pending:
            piece = pending.pop()
            emitted = 0
            try:
                for record in super().request_records(self._window_context(context, piece)):
                    emitted += 1
                    yield record
            except APIError as error:
                if error.cause not in self.split_error_names:
                    raise
                first, second = self._split(piece, error, emitted)
                self.logger.info(
                    "Stream %s: %s..%s matches too many rows (%s); reading it in two halves",
                    self.name,
                    self.format_bound(piece[0]),
                    self.format_bound(piece[1]),
                    error.cause,
                )
                pending += [second, first]
                continue
            self._finish_window(piece)

    def _window_context(self, context: Context | None, window: Window) -> dict:
        return {
            **(context or {}),
            "window_start": self.format_bound(window[0]),
            "window_end": self.format_bound(window[1]),
        }

    def _split(self, window: Window, error: APIError, emitted: int) -> tuple[Window, Window]:
        start, end = window
        middle = start + timedelta(seconds=int((end - start).total_seconds() // 2))
        if emitted or end - start < self.min_window or not start < middle < end:
            why = (
                f"after {emitted} of its records were emitted"
                if emitted
                else "and it cannot be split any further"
            )
            msg = (
                f"{self.tap_name} stream '{self.name}': the window "
                f"{self.format_bound(start)}..{self.format_bound(end)} was refused as "
                f"{error.cause} {why}: {error}"
            )
            raise APIError(msg, status=error.status) from None
        return (start, middle), (middle, end)

    def _finish_window(self, window: Window) -> None:
        """Every row before the window's end is out: that is the bookmark now."""
        if not self.replication_key:
            return
        state = self.stream_state
        state["replication_key"] = self.replication_key
        state["replication_key_value"] = window[1].isoformat()
        self.state_manager.is_flushed = False
        self._write_state_message()

    def _increment_stream_state(
        self, latest_record: dict, *, context: Context | None = None
    ) -> None:
        """The bookmark moves at window ends (:meth:`_finish_window`), not per record.

        A record's own value is no resumable bookmark here: rows of one window may come
        in any order, and a bookmark inside a window would re-read, or skip, rows that
        share its instant.
        """

    _horizon: datetime = datetime.max.replace(tzinfo=timezone.utc)

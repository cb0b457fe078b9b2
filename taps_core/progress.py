"""Progress of a running sync, for the person watching it.

Every ``progress_interval_seconds`` (30 by default) a stream that is still reading
logs one line with its records so far and the rate, and, where the API gives the
list's length (a stream that defines ``total_count(response)``, as rewards'
``total_count`` does), the share done and the time left::

    orders: 120,000 / 300,000 (40%), 15,200 records/s, about 12 s left

Each stream ends with its count and time (``orders: 300,000 records in 19.7 s``) and
the sync with one summary line. The work is done once a *page*, never once a record:
a clock read and a comparison per page, so the record path's speed does not move.
"""

from __future__ import annotations

import logging
import time
import typing as t

if t.TYPE_CHECKING:
    import requests

DEFAULT_INTERVAL = 30.0

_current: t.Any = None


def current_stream() -> t.Any:
    """The stream reading now (for log lines that do not say which)."""
    return _current


def duration(seconds: float) -> str:
    """``0.4 s``, ``12 s``, ``3 min 20 s``, ``2 h 5 min``."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def _seconds(value: t.Any) -> float:
    try:
        return float(value) if value is not None else DEFAULT_INTERVAL
    except (TypeError, ValueError):
        return DEFAULT_INTERVAL  # the settings check names a bad value; progress goes on


class Tracker:
    """One stream's count and clock, for the lines above."""

    def __init__(self, stream: t.Any) -> None:
        self.name: str = stream.name
        self.logger: logging.Logger = stream.logger
        self.interval = _seconds(stream.config.get("progress_interval_seconds"))
        self.total_of: t.Callable[[requests.Response], int | None] | None = getattr(
            stream, "total_count", None
        )
        self.started = time.monotonic()
        self.next_report = self.started + self.interval
        self.count = 0
        self.finished = False

    def page(self, rows: int, response: requests.Response) -> None:
        """Count a page; past the interval, log a progress line."""
        self.count += rows
        now = time.monotonic()
        if now >= self.next_report:
            self.next_report = now + self.interval
            self._report(now, response)

    def _report(self, now: float, response: requests.Response) -> None:
        total = None
        if self.total_of is not None:
            try:
                total = self.total_of(response)
            except Exception:  # a progress line must never fail a sync
                total = None
        elapsed = max(now - self.started, 1e-9)
        rate = self.count / elapsed
        text = f"{self.name}: {self.count:,}"
        if total:
            text += f" / {total:,} ({min(100, 100 * self.count // total)}%)"
        else:
            text += " records"
        text += f", {rate:,.0f} records/s"
        if total and rate > 0 and total > self.count:
            text += f", about {duration((total - self.count) / rate)} left"
        self.logger.info(text)

    def finish(self) -> float:
        """Log the stream's final line; its time in seconds."""
        self.finished = True
        elapsed = time.monotonic() - self.started
        self.logger.info("%s: %s records in %s", self.name, f"{self.count:,}", duration(elapsed))
        return elapsed


def tracker(stream: t.Any) -> Tracker:
    """The stream's tracker for this sync, started on first use."""
    global _current
    found = stream.__dict__.get("_progress")
    if found is None or found.finished:
        found = Tracker(stream)
        stream.__dict__["_progress"] = found
        summary = _summary(stream._tap)
        if summary["started"] is None:
            summary["started"] = found.started
    _current = stream
    return found


def tracker_of(stream: t.Any) -> Tracker | None:
    return stream.__dict__.get("_progress")


def _summary(tap: t.Any) -> dict:
    summary = tap.__dict__.get("_progress_summary")
    if summary is None:
        summary = {"started": None, "streams": 0, "records": 0}
        tap.__dict__["_progress_summary"] = summary
    return summary


def finish(stream: t.Any) -> None:
    """The stream has synced: its final line, counted into the sync's summary."""
    global _current
    found = tracker_of(stream)
    if found is None or found.finished:
        return
    found.finish()
    summary = _summary(stream._tap)
    summary["streams"] += 1
    summary["records"] += found.count
    _current = None


def summarise(stream: t.Any) -> None:
    """After the sync's last stream, one line for the whole sync."""
    tap = stream._tap
    names = list(tap.streams)
    if not names or names[-1] != stream.name:
        return
    summary = _summary(tap)
    if summary["started"] is None:
        return
    tap.logger.info(
        "%s: %d streams synced, %s records in %s.",
        tap.name,
        summary["streams"],
        f"{summary['records']:,}",
        duration(time.monotonic() - summary["started"]),
    )

"""Edges of overlapped requests (taps_core.prefetch): the clock, the workers' lifetime.

Each test names a way the overlapped sync could part from the sequential one, or leave
something behind it, and proves it does not.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from tap_reporting.tap import TapReporting
from taps_core import windows


class _TickingClock(datetime):
    """``datetime`` whose ``now`` moves one second on at every call, from ``start``."""

    start: datetime

    @classmethod
    def now(cls, tz=None):
        moment = cls.start
        cls.start = moment + timedelta(seconds=1)
        return moment if tz is None else moment.astimezone(tz)


def test_a_second_that_ticks_while_windows_are_offered_keeps_the_window_ending_now_back(
    monkeypatch,
):
    """Without an end_date the last window ends when the read begins: a second that
    ticks between the horizon and "now" must not offer that window, which the read
    asks for with a later end."""
    start = datetime(2026, 1, 1, 12, 0, 0, 500_000, tzinfo=timezone.utc)
    _TickingClock.start = start
    monkeypatch.setattr(windows, "datetime", _TickingClock)
    config = {
        "client_id": "id",
        "client_secret": "secret",
        "base_url": "http://127.0.0.1:9",
        "window_days": 31,
        "start_date": (start - timedelta(days=40)).isoformat(),
    }
    planned = TapReporting(config=config).streams["transactions"].plan_ahead()
    assert planned is not None
    offered = [(context["window_start"], context["window_end"]) for context, _ in planned]
    assert offered == [("2025-11-22T12:00:00Z", "2025-12-23T12:00:00Z")]

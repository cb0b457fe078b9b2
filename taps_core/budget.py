"""A request budget: data requests spaced evenly so an API's rate limit is never hit.

An API that allows N requests a minute and answers the next one with 429 and a
``Retry-After`` of a second or so cannot be ridden out by retrying: the window lasts
a minute, and the retries (3 at most) are spent inside it. Pacing is the only way
through, and pacing by bursts is not enough either: a limit counted in a sliding
window (or by a server that counts a little differently from us) is crossed by a burst
at a window's edge. So requests are spaced evenly, one every ``60 / N`` seconds: any
window of 60 seconds (and any window of ``60 / N * k`` seconds) then holds at most N
(k) of them, whether the server counts fixed minutes, sliding minutes or seconds.

The spacing has a small margin (:data:`SAFETY_MARGIN`): requests leave on schedule, but
their arrival at the server jitters by a few milliseconds, and a request that arrives
early by a hair must not make the hundred-and-first of a window.

One budget serves a whole sync (every stream of it shares the API's limit) and is
safe to use from several threads: each caller takes the next free slot under a lock
and sleeps outside it, so concurrent requests are spaced exactly as sequential ones.
"""

from __future__ import annotations

import threading
import time
import typing as t

#: Spacing is this much wider than the budget strictly needs (2%: 0.612 s between
#: requests at 100 a minute, 0.102 s at 600).
SAFETY_MARGIN = 1.02


class RequestBudget:
    """At most ``per_minute`` requests in any 60 seconds, spaced evenly; 0 or less is off."""

    def __init__(
        self,
        per_minute: float,
        *,
        clock: t.Callable[[], float] = time.monotonic,
        sleep: t.Callable[[float], None] = time.sleep,
    ) -> None:
        self.per_minute = per_minute
        self.interval = 60.0 / per_minute * SAFETY_MARGIN if per_minute > 0 else 0.0
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._next_slot: float | None = None

    def acquire(self) -> float:
        """Wait for this request's slot; returns the seconds waited.

        The first request goes at once; each later one at least ``interval`` after the
        one before. Time the tap spends between requests counts towards the wait, so a
        slow sync is not slowed further.

        The spacing is kept between departures, not only between the slots handed out:
        a thread that wakes late for its slot (the GIL, a busy core) leaves no sooner
        than ``interval`` after the request that left before it, whoever's slot was
        first. Overlapped requests reserve their slots ahead of time, and a late start
        would otherwise bring two requests closer than the budget allows.
        """
        if self.interval <= 0:
            return 0.0
        with self._lock:
            now = self._clock()
            slot = now if self._next_slot is None else max(now, self._next_slot)
            self._next_slot = slot + self.interval
        started = now
        wait = slot - now
        if wait > 0:
            self._sleep(wait)
        while True:
            with self._lock:
                now = self._clock()
                earliest = now if self._last_left is None else self._last_left + self.interval
                if now >= earliest:
                    self._last_left = now
                    self._next_slot = max(self._next_slot or now, now + self.interval)
                    return max(wait, now - started)
            self._sleep(earliest - now)

    _last_left: float | None = None

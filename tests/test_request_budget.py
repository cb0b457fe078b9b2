"""The request budget of taps_core: evenly spaced, shared by threads, off at 0."""

from __future__ import annotations

import itertools
import threading
import time

from taps_core.budget import RequestBudget


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_no_sliding_minute_holds_more_than_the_budget_and_none_come_in_a_burst():
    clock = FakeClock()
    budget = RequestBudget(100, clock=clock, sleep=clock.sleep)
    sent = []
    for _ in range(250):
        budget.acquire()
        sent.append(clock.now)
    gaps = [b - a for a, b in itertools.pairwise(sent)]
    assert min(gaps) >= 0.6
    for i, start in enumerate(sent):
        assert sum(1 for at in sent[i:] if at < start + 60) <= 100
    assert sent[-1] - sent[0] < 249 * 0.6 * 1.05  # paced, not slowed beyond the margin


def test_time_spent_between_requests_counts_towards_the_wait():
    clock = FakeClock()
    budget = RequestBudget(60, clock=clock, sleep=clock.sleep)
    assert budget.acquire() == 0
    clock.now += 5  # the tap took longer than the spacing: no wait
    assert budget.acquire() == 0
    assert 1.0 <= budget.acquire() <= 1.05


def test_zero_turns_pacing_off():
    clock = FakeClock()
    budget = RequestBudget(0, clock=clock, sleep=clock.sleep)
    assert all(budget.acquire() == 0 for _ in range(1000))
    assert clock.now == 1000.0


def test_threads_share_one_schedule():
    """Four threads of ten requests take as long as forty requests in a row, not ten."""
    budget = RequestBudget(1200)  # one every 0.05 s
    started = time.monotonic()
    threads = [
        threading.Thread(target=lambda: [budget.acquire() for _ in range(10)]) for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    assert 39 * budget.interval <= elapsed < 39 * budget.interval + 1.5

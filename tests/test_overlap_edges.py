"""Edges of overlapped requests (taps_core.prefetch): the clock, the workers' lifetime.

Each test names a way the overlapped sync could part from the sequential one, or leave
something behind it, and proves it does not.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest

from api_sandbox import Fault, Sandbox
from tap_reporting.tap import TapReporting
from taps_core import windows
from taps_core.errors import APIError
from tests.support import catalog_selecting, run_cli, sync_in_process, tap_case


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


def _prefetch_workers() -> set[threading.Thread]:
    return {thread for thread in threading.enumerate() if thread.name.startswith("prefetch-")}


def _workers_left(before: set[threading.Thread], seconds: float = 5) -> set[threading.Thread]:
    """The workers started since ``before`` still alive after at most ``seconds``."""
    deadline = time.monotonic() + seconds
    while _prefetch_workers() - before and time.monotonic() < deadline:
        time.sleep(0.02)
    return _prefetch_workers() - before


def test_an_in_process_sync_leaves_no_worker_thread_behind():
    """An orchestrator that runs syncs in its own process must not gain eight idle
    threads a sync."""
    case = tap_case("reporting")
    before = _prefetch_workers()
    latency = Fault("latency", seconds=0.02, times=None)
    with Sandbox(seed=42, faults=[latency]) as sandbox:
        config = case.config(sandbox, max_concurrent_requests=8)
        catalog = catalog_selecting(case.tap_class, config, "list_disputes", "list_payments")
        result = sync_in_process(case.tap_class, config, catalog=catalog)
        assert sandbox.in_flight["peak"] > 1  # the workers did fetch ahead
    assert result.records("list_payments")
    assert not _workers_left(before)


def test_a_failed_in_process_sync_sends_nothing_the_streams_to_come_had_queued():
    """list_disputes is refused (404, no retry) while the streams after it have their
    first pages queued: once the sync has raised, only the requests the two workers had
    begun reach the API, and the workers end."""
    case = tap_case("reporting")
    refused = Fault("status", api="reporting", path="/v1/customer/disputes", status=404, times=None)
    latency = Fault("latency", seconds=0.2, times=None)
    before = _prefetch_workers()
    with Sandbox(seed=42, faults=[refused, latency]) as sandbox:
        config = case.config(sandbox, max_concurrent_requests=2, start_date="2025-01-01T00:00:00Z")
        with pytest.raises(APIError, match="list_disputes"):
            sync_in_process(case.tap_class, config)
        sent = len(sandbox.requests)
        time.sleep(1.0)  # what a worker would still send, late
        assert len(sandbox.requests) <= sent + 2
    assert not _workers_left(before)


def _requests_asked(sandbox: Sandbox) -> Counter:
    return Counter(
        (r.method, r.path, json.dumps(r.query, sort_keys=True)) for r in sandbox.requests
    )


def test_windows_read_while_the_api_was_fast_are_not_fetched_again_once_it_slows():
    """200 one-day windows of one page each: the first 150 replies come at once (not
    worth fetching ahead, the plan of windows waits where it was), the rest slowly.
    When fetching ahead resumes, the windows the reader has passed, long ago, are not
    asked again: the overlapped sync asks exactly what the sequential one does."""
    case = tap_case("reporting")
    origin = datetime(2025, 1, 1, tzinfo=timezone.utc)
    asked = {}
    for concurrent in (1, 8):
        slow_later = Fault("latency", api="reporting", seconds=0.03, skip=150, times=None)
        with Sandbox(seed=42, faults=[slow_later]) as sandbox:
            config = case.config(
                sandbox,
                max_concurrent_requests=concurrent,
                start_date=origin.isoformat(),
                end_date=(origin + timedelta(days=200)).isoformat(),
                window_days=1,
            )
            catalog = catalog_selecting(case.tap_class, config, "transactions")
            result = sync_in_process(case.tap_class, config, catalog=catalog)
            asked[concurrent] = _requests_asked(sandbox)
        assert result.records("transactions")
    assert max(asked[1].values()) == 1
    assert asked[8] == asked[1]


def test_children_read_while_the_api_was_fast_are_not_fetched_again_once_it_slows():
    """300 products, one show_product_details request each: the children planned on
    the early pages of list_products wait while replies come at once, and once they
    slow, the children the reader has long passed are not asked again."""
    case = tap_case("reporting")
    slow_later = Fault("latency", api="reporting", seconds=0.015, skip=150, times=None)
    counts = {"reporting": {"list_products": 300}}
    with Sandbox(seed=42, counts=counts, faults=[slow_later]) as sandbox:
        config = case.config(sandbox, max_concurrent_requests=8)
        catalog = catalog_selecting(case.tap_class, config, "show_product_details")
        result = sync_in_process(case.tap_class, config, catalog=catalog)
        asked = _requests_asked(sandbox)
    assert len(result.records("show_product_details")) == 300
    assert [request for request, times in asked.items() if times > 1] == []
    assert sum(1 for _, path, _ in asked if path.startswith("/v1/catalogs/products/")) == 300


def test_a_stream_to_come_says_its_incremental_sync_starts_once_as_it_starts(tmp_path):
    """Its requests built ahead write its starting bookmark for a moment (the state is
    put back): the SDK's "Starting incremental sync" line must not come with each of
    them, long before the stream begins."""
    case = tap_case("reporting")
    start = (datetime.now(timezone.utc) - timedelta(days=200, hours=3)).replace(microsecond=0)
    latency = Fault("latency", seconds=0.02, times=None)
    with Sandbox(seed=42, faults=[latency]) as sandbox:
        config = case.config(sandbox, max_concurrent_requests=8, start_date=start.isoformat())
        catalog = tmp_path / "catalog.json"
        selected = catalog_selecting(case.tap_class, config, "list_disputes", "transactions")
        catalog.write_text(json.dumps(selected))
        result = run_cli(case.executable, config, tmp_path, "--catalog", str(catalog))
        early = [r.path for r in sandbox.requests].index("/v1/reporting/transactions")
        assert early < len(sandbox.requests) - 5  # windows went ahead
    assert result.returncode == 0, result.stderr[-2000:]
    said = [line for line in result.stderr.splitlines() if "Starting incremental sync" in line]
    assert [line.split("'")[1] for line in said] == ["list_disputes", "transactions"]

"""Overlapped requests (issue 20): the same output as one request at a time, sooner.

Every tap syncs in full against a sandbox that delays each data reply, once with
``max_concurrent_requests: 1`` and once with the default (8); the sandbox counts the
data requests it answers at once. What is compared is what a target reads (stdout) and
what the API saw (the requests, as a multiset: overlapped ones arrive in any order).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from api_sandbox import Fault, Sandbox
from tap_reporting.tap import TapReporting
from taps_core.prefetch import Job, Pool
from tests.support import TAPS, catalog_selecting, run_cli, tap_case

LATENCY = 0.02  # on every data reply: small, but enough for requests to overlap
TAP_IDS = [case.api for case in TAPS]

_TIME_EXTRACTED = re.compile(r',"time_extracted":"[^"]*"')
_STAMP = re.compile(
    r'"(replication_key_signpost|replication_key_value|end_date)": ?\[?"([^"]*)"\]?'
)


def comparable(stdout: str, started: datetime) -> str:
    """stdout without what differs by the clock between two syncs.

    ``time_extracted``; and the instants that are "now" (a signpost, the end of the
    last date window): any bookmark later than the test's start.
    """

    def now_stamp(match: re.Match) -> str:
        try:
            moment = datetime.fromisoformat(match[2].replace("Z", "+00:00"))
        except ValueError:
            return match[0]
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        return f'"{match[1]}":"NOW"' if moment >= started else match[0]

    return _STAMP.sub(now_stamp, _TIME_EXTRACTED.sub("", stdout))


def _request_signature(sandbox: Sandbox, started: datetime) -> Counter:
    """The requests as a multiset; "now" (the last date window's end) as ``NOW``."""
    return Counter(
        (r.api, r.method, r.path, comparable(json.dumps(r.query), started), r.body, r.status)
        for r in sandbox.requests
    )


class Run:
    def __init__(self, case, concurrent: int, tmp_path: Path) -> None:
        latency = Fault("latency", seconds=LATENCY, times=None)
        with Sandbox(seed=42, faults=[latency]) as sandbox:
            config = case.config(sandbox, max_concurrent_requests=concurrent)
            self.started = datetime.now(timezone.utc) - timedelta(seconds=1)
            began = time.monotonic()
            self.result = run_cli(case.executable, config, tmp_path)
            self.seconds = time.monotonic() - began
            self.peak = sandbox.in_flight["peak"]
            self.requests = _request_signature(sandbox, self.started)
            self.violations = list(getattr(sandbox.engine.api(case.api), "violations", []))


@pytest.fixture(scope="module", params=TAPS, ids=TAP_IDS)
def runs(request, tmp_path_factory) -> tuple[Run, Run]:
    case = request.param
    sequential = Run(case, 1, tmp_path_factory.mktemp(f"{case.api}-1"))
    overlapped = Run(case, 8, tmp_path_factory.mktemp(f"{case.api}-8"))
    return sequential, overlapped


def test_an_overlapped_sync_writes_what_the_sequential_one_writes(runs):
    sequential, overlapped = runs
    for run in runs:
        assert run.result.returncode == 0, run.result.stderr[-2000:]
    assert comparable(overlapped.result.stdout, sequential.started) == comparable(
        sequential.result.stdout, sequential.started
    )
    assert sequential.result.stdout.count('"type":"RECORD"') > 0


def test_an_overlapped_sync_sends_exactly_the_requests_of_the_sequential_one(runs):
    """No page past the end, none twice, none the contract logs as a violation."""
    sequential, overlapped = runs
    assert overlapped.requests == sequential.requests
    assert overlapped.violations == sequential.violations == []


def test_requests_overlap_only_when_allowed(runs):
    """Every tap overlaps: the pages of a list whose next requests are known (rewards,
    reporting), or else the first pages of the streams still to come."""
    sequential, overlapped = runs
    assert sequential.peak == 1
    assert 1 < overlapped.peak <= 8


def test_a_failing_page_stops_an_overlapped_sync_where_the_sequential_one_stops(tmp_path):
    """A persistent 500 on the third page of orders while the pages after it, and
    other streams, are fetched: the same one line, exit 1, not one record after it."""
    case = tap_case("rewards")
    third_page = Fault(
        "status", api="rewards", path="/v2/orders", query="offset=200", status=500, times=None
    )
    results = {}
    for concurrent in (1, 8):
        latency = Fault("latency", seconds=LATENCY, times=None)
        counts = {"rewards": {"orders": 3000}}
        with Sandbox(seed=42, counts=counts, faults=[third_page, latency]) as sandbox:
            config = case.config(sandbox, max_concurrent_requests=concurrent)
            began = time.monotonic()
            (tmp_path / str(concurrent)).mkdir()
            result = run_cli(case.executable, config, tmp_path / str(concurrent), timeout=30)
            seconds = time.monotonic() - began
            peak = sandbox.in_flight["peak"]
        results[concurrent] = result
        assert result.returncode == 1, result.stderr[-2000:]
        assert seconds < 10, "the process lingered after the failure"
        assert "Traceback" not in result.stderr
    sequential, overlapped = results[1], results[8]
    assert peak > 1
    failure = sequential.stderr.strip().splitlines()[-1]
    assert "GET /rewards/v2/orders answered 500 Internal Server Error after 4 attempts" in failure
    assert overlapped.stderr.strip().splitlines()[-1].split("|")[-1] == failure.split("|")[-1]
    orders = overlapped.sync.records("orders")
    assert len(orders) == 200
    assert comparable(overlapped.stdout, datetime.now(timezone.utc)) == comparable(
        sequential.stdout, datetime.now(timezone.utc)
    )


def test_overlapped_requests_keep_within_the_budget(tmp_path):
    """At 1,200 a minute (20 a second), any second holds at most 20 requests, no 429
    comes back from a limit of 20 a sliding second, and overlap uses the budget: the
    replies take 0.1 s, so one request at a time could not send more than 10 a second."""
    case = tap_case("rewards")
    limit = Fault("rate_limit", api="rewards", per_second=20, window=1.0, times=None)
    latency = Fault("latency", seconds=0.1, times=None)
    counts = {"rewards": {"orders": 6000}}
    with Sandbox(seed=42, counts=counts, faults=[limit, latency]) as sandbox:
        config = case.config(sandbox, max_requests_per_minute=1200)
        catalog = tmp_path / "catalog.json"
        catalog.write_text(json.dumps(catalog_selecting(case.tap_class, config, "orders")))
        result = run_cli(case.executable, config, tmp_path, "--catalog", str(catalog))
        times = sorted(r.time for r in sandbox.requests)
        statuses = Counter(r.status for r in sandbox.requests)
    assert result.returncode == 0, result.stderr[-2000:]
    assert statuses == {200: 60}
    most = max(sum(1 for u in times if s <= u < s + 1.0) for s in times)
    assert most <= 20
    rate = (len(times) - 1) / (times[-1] - times[0])
    assert rate > 15, f"{rate:.1f} requests a second"


def test_a_token_that_expires_with_eight_requests_in_flight_is_renewed_once(tmp_path):
    case = tap_case("reporting")
    latency = Fault("latency", seconds=0.05, times=None)
    expiry = Fault("token_expiry", api="reporting", after=20, times=1)
    with Sandbox(seed=42, faults=[latency, expiry]) as sandbox:
        config = case.config(sandbox)
        result = run_cli(case.executable, config, tmp_path)
        issuer = sandbox.engine.api("reporting").token_issuer
        refused = [r for r in sandbox.requests if r.status == 401]
        peak = sandbox.in_flight["peak"]
    assert result.returncode == 0, result.stderr[-2000:]
    assert peak >= 4
    assert len(refused) > 1, "the expiry did not meet several requests in flight"
    assert issuer.issued == 2


def test_an_incremental_sync_from_a_state_asks_and_writes_the_same_overlapped(tmp_path):
    """Bookings: every stream incremental (``ModifiedAfter`` from the bookmark, read as
    each stream's sync begins), next-page URLs walked ahead. The next streams' first
    requests are built early from their own bookmarks, and no STATE shows it."""
    case = tap_case("bookings")
    outputs, asked = {}, {}
    with Sandbox(seed=42) as sandbox:
        config = case.config(sandbox, max_concurrent_requests=1)
        for name in ("first", "1", "8"):
            (tmp_path / name).mkdir()
        first = run_cli(case.executable, config, tmp_path / "first")
        assert first.returncode == 0, first.stderr[-2000:]
        state = first.sync.last_state
        for stream in ("booking", "invoice"):  # two streams with something new since
            sandbox.mutate("bookings", stream, new=3, modified=2)
        started = datetime.now(timezone.utc) - timedelta(seconds=1)
        for concurrent in (1, 8):
            sandbox.clear_requests()
            config = case.config(sandbox, max_concurrent_requests=concurrent)
            result = run_cli(case.executable, config, tmp_path / str(concurrent), state=state)
            assert result.returncode == 0, result.stderr[-2000:]
            outputs[concurrent] = comparable(result.stdout, started)
            asked[concurrent] = _request_signature(sandbox, started)
    assert outputs[8] == outputs[1]
    assert asked[8] == asked[1]
    assert any("ModifiedAfter" in key[3] for key in asked[1])
    assert '"type":"RECORD"' in outputs[1]


def test_the_windows_of_a_stream_still_to_come_are_fetched_while_an_earlier_one_is_read(
    tmp_path,
):
    """Reporting transactions (date windows) after disputes (pages by next-page link):
    the windows known before transactions' read begins (all but the one that ends
    "now") go while disputes' pages are walked, from a state's bookmark too; the
    requests and the output stay those of the sequential sync."""
    case = tap_case("reporting")
    bookmark = (datetime.now(timezone.utc) - timedelta(days=150)).replace(microsecond=0)
    states = {
        "start_date": None,
        "state": {
            "bookmarks": {
                "transactions": {
                    "replication_key": "transaction_updated_date",
                    "replication_key_value": bookmark.isoformat(),
                }
            }
        },
    }
    outputs, asked, early = {}, {}, {}
    for begin, state in states.items():
        for concurrent in (1, 8):
            latency = Fault("latency", seconds=LATENCY, times=None)
            with Sandbox(seed=42, faults=[latency]) as sandbox:
                config = case.config(sandbox, max_concurrent_requests=concurrent)
                catalog = tmp_path / "catalog.json"
                selected = catalog_selecting(
                    case.tap_class, config, "list_disputes", "transactions"
                )
                catalog.write_text(json.dumps(selected))
                started = datetime.now(timezone.utc) - timedelta(seconds=1)
                work = tmp_path / f"{begin}-{concurrent}"
                work.mkdir()
                result = run_cli(
                    case.executable, config, work, "--catalog", str(catalog), state=state
                )
                assert result.returncode == 0, result.stderr[-2000:]
                outputs[begin, concurrent] = comparable(result.stdout, started)
                asked[begin, concurrent] = _request_signature(sandbox, started)
                arrivals = [r.path for r in sorted(sandbox.requests, key=lambda r: r.time)]
            last_dispute = max(i for i, path in enumerate(arrivals) if "disputes" in path)
            early[begin, concurrent] = arrivals.index("/v1/reporting/transactions") < last_dispute
    for begin in states:
        assert outputs[begin, 8] == outputs[begin, 1]
        assert asked[begin, 8] == asked[begin, 1]
        assert early[begin, 8], "no window was fetched while disputes were read"
        assert not early[begin, 1]
    assert len(asked["state", 1]) < len(asked["start_date", 1])  # the bookmark was read


def _windows_offered(**settings) -> list[tuple[str, str]] | None:
    """The transactions windows a reporting tap offers ahead of their read, as bounds."""
    config = {
        "client_id": "id",
        "client_secret": "secret",
        "base_url": "http://127.0.0.1:9",
        "window_days": 31,
        **settings,
    }
    stream = TapReporting(config=config).streams["transactions"]
    planned = stream.plan_ahead()
    if planned is None:
        return None
    return [(context["window_start"], context["window_end"]) for context, _ in planned]


def test_only_the_windows_that_end_before_now_are_offered_ahead():
    """The last window ends when the read begins, later than now: it is not known yet."""
    start = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(days=100)
    windows = _windows_offered(start_date=start.isoformat())
    assert windows is not None
    assert [w[0] for w in windows] == [
        (start + timedelta(days=31 * n)).strftime("%Y-%m-%dT%H:%M:%SZ") for n in range(3)
    ]
    assert all(
        end == (start + timedelta(days=31 * (n + 1))).strftime("%Y-%m-%dT%H:%M:%SZ")
        for n, (_, end) in enumerate(windows)
    )


def test_every_window_is_offered_ahead_under_an_end_date_already_past():
    windows = _windows_offered(start_date="2024-01-01T00:00:00Z", end_date="2024-03-15T00:00:00Z")
    assert windows == [
        ("2024-01-01T00:00:00Z", "2024-02-01T00:00:00Z"),
        ("2024-02-01T00:00:00Z", "2024-03-03T00:00:00Z"),
        ("2024-03-03T00:00:00Z", "2024-03-15T00:00:00Z"),
    ]


def test_no_window_is_offered_ahead_when_the_windows_start_a_lookback_before_now():
    assert _windows_offered() is None


def test_replies_fetched_for_streams_to_come_leave_room_for_the_stream_being_read():
    """Streams to come hold at most half the buffer, and workers take the stream being
    read first: its pages never wait behind replies that cannot be taken before it ends."""
    pool = Pool(1, buffered=3)  # two for the streams to come
    gate, busy, ran = threading.Event(), threading.Event(), []

    def send(prepared, context):
        busy.set()
        gate.wait(5)
        ran.append(context)
        return context

    jobs = [Job(None, f"to come {n}", None, priority=n + 1) for n in range(3)]
    assert pool.submit(jobs[0], send, upcoming=True)
    assert busy.wait(5)  # the one worker is in the first job's request
    assert pool.submit(jobs[1], send, upcoming=True)
    assert not pool.submit(jobs[2], send, upcoming=True)  # the share of streams to come
    being_read = Job(None, "being read", None)
    assert pool.submit(being_read, send)
    gate.set()
    for job in (*jobs[:2], being_read):
        job.done.wait(5)
    assert ran == ["to come 0", "being read", "to come 1"]

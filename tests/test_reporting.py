"""tap-reporting against the sandbox: date windows, splits, resumption, tokens, retries."""

from __future__ import annotations

import itertools
import json
import math
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone

import pytest

from api_sandbox import Fault, Sandbox
from tap_reporting.tap import TapReporting
from tests.support import (
    assert_matches_ground_truth,
    catalog_selecting,
    run_cli,
    sync_in_process,
    tap_case,
)

REPORTING = tap_case("reporting")
TRANSACTIONS = "/v1/reporting/transactions"
SENTINEL = "SENTINEL-reporting-secret-83c1"


def _at(value: str) -> datetime:
    """A time as the tap or the sandbox wrote it, as an aware datetime."""
    text = value.replace("Z", "+00:00")
    if text[-5] in "+-" and text[-3] != ":":
        text = text[:-2] + ":" + text[-2:]
    return datetime.fromisoformat(text)


def _text(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@contextmanager
def recent_transactions(days: float, count: int, seed: int = 11) -> Iterator[Sandbox]:
    """A sandbox whose ``count`` transactions sit in the last ``days`` (until an hour ago)."""
    now = time.time()
    with Sandbox(seed=seed, counts={"reporting": {"transactions": count}}) as sb:
        sb.engine.api("reporting").place_transactions(now - days * 86400, now - 3600)
        yield sb


def _windows(sb: Sandbox) -> list[tuple[datetime, datetime, int, int]]:
    """Every transactions request: (start, end, page, status), in the order sent."""
    return [
        (
            _at(r.query["start_date"][0]),
            _at(r.query["end_date"][0]),
            int(r.query["page"][0]),
            r.status,
        )
        for r in sb.requests
        if r.path == TRANSACTIONS
    ]


def _transactions_only(sb: Sandbox, **settings) -> tuple[dict, dict]:
    config = REPORTING.config(sb, **settings)
    return config, catalog_selecting(TapReporting, config, "transactions")


def _bookmarks(result) -> list[str]:
    """Each transactions bookmark the STATE messages give, in order (the final STATE
    repeats the last one without the SDK's interim markers)."""
    out = []
    for message in result.messages:
        if message["type"] == "STATE":
            value = message["value"]["bookmarks"].get("transactions", {})
            if "replication_key_value" in value:
                out.append(value["replication_key_value"])
    return [bookmark for bookmark, _ in itertools.groupby(out)]


def _errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "| ERROR" in line]


# -- date windows ----------------------------------------------------------------------------


def test_windows_from_100_days_back_cover_the_range_once_each_and_resume_at_the_bookmark():
    with recent_transactions(days=99, count=300) as sb:
        start = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(days=100)
        config, catalog = _transactions_only(sb, start_date=_text(start), window_days=7)
        result = sync_in_process(TapReporting, config, catalog=catalog)
        synced_at = datetime.now(timezone.utc)
        truth = sb.records("reporting", "transactions")
        assert_matches_ground_truth(
            REPORTING, "transactions", result.records("transactions"), truth
        )

        asked = _windows(sb)
        assert len(asked) == len(set(asked)), "a window or page was sent twice"
        # In the order of the windows: overlapped, their first pages are sent ahead.
        windows = sorted((s, e) for s, e, page, _ in asked if page == 1)
        assert len(windows) == math.ceil(100 / 7)
        assert windows[0][0] == start
        for (_, end), (following, _) in itertools.pairwise(windows):
            assert end == following, "a gap or an overlap between two windows"
        assert all(end - begin <= timedelta(days=7) for begin, end in windows)
        assert synced_at - timedelta(minutes=1) < windows[-1][1] <= synced_at
        assert sb.engine.api("reporting").violations == []
        # A STATE after every window, its bookmark that window's end.
        assert [_at(b) for b in _bookmarks(result)] == [end for _, end in windows]

        changed = sb.mutate("reporting", "transactions", new=2, modified=1)
        time.sleep(1.1)  # changes made now lie inside the next sync's range
        sb.clear_requests()
        second = sync_in_process(TapReporting, config, catalog=catalog, state=result.last_state)
        again = sorted(_windows(sb))
        assert again and again[0][0] == windows[-1][1], "the second sync starts at the bookmark"
        assert sorted(r["transaction_id"] for r in second.records("transactions")) == sorted(
            changed
        )


def test_a_window_over_the_row_limit_is_split_in_halves_and_loses_nothing():
    with recent_transactions(days=60, count=400) as sb:
        sb.engine.api("reporting").row_limit = 60
        start = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(days=62)
        config, catalog = _transactions_only(sb, start_date=_text(start), window_days=31)
        result = sync_in_process(TapReporting, config, catalog=catalog)
        assert_matches_ground_truth(
            REPORTING,
            "transactions",
            result.records("transactions"),
            sb.records("reporting", "transactions"),
        )
        asked = _windows(sb)
        refused = [(s, e) for s, e, _, status in asked if status == 400]
        # In time order: overlapped, windows' first pages leave in any order.
        served = sorted((s, e) for s, e, page, status in asked if status == 200 and page == 1)
        assert refused, "the row limit should have refused some windows"
        assert len(asked) == len(set(asked)), "a refused window was asked again unchanged"
        assert sb.engine.api("reporting").violations == []
        for begin, end in refused:  # each refused window was asked for as its two halves
            middle = begin + (end - begin) // 2
            halves = {(begin, middle), (middle, end)}
            assert halves <= {(s, e) for s, e, _, _ in asked}, (begin, end)
        assert served[0][0] == start
        for (_, end), (following, _) in itertools.pairwise(served):
            assert end == following
        assert [_at(b) for b in _bookmarks(result)] == [end for _, end in served]


def test_windows_end_at_end_date_and_read_only_the_transactions_before_it():
    """A backfill month: start_date..end_date bounds every window, none reaches past it."""
    with recent_transactions(days=60, count=300) as sb:
        now = datetime.now(timezone.utc).replace(microsecond=0)
        start, end = now - timedelta(days=61), now - timedelta(days=20, seconds=7)
        config, catalog = _transactions_only(
            sb, start_date=_text(start), end_date=_text(end), window_days=7
        )
        result = sync_in_process(TapReporting, config, catalog=catalog)
        asked = _windows(sb)
        # In time order: overlapped, windows' first pages leave in any order.
        windows = sorted((s, e) for s, e, page, _ in asked if page == 1)
        assert windows[0][0] == start and windows[-1][1] == end
        assert all(start <= s < e <= end for s, e, _, _ in asked), "a window left the range"
        inside = [
            r
            for r in sb.records("reporting", "transactions")
            if _at(r["transaction_info"]["transaction_updated_date"]) < end
        ]
        assert 0 < len(inside) < len(sb.records("reporting", "transactions"))
        assert_matches_ground_truth(
            REPORTING, "transactions", result.records("transactions"), inside
        )
        assert _at(_bookmarks(result)[-1]) == end, "the bookmark stops at end_date"


def test_a_window_still_too_large_at_its_smallest_fails_with_one_line(sandbox, tmp_path):
    sandbox.engine.api("reporting").row_limit = 0
    start = datetime(2024, 1, 1, tzinfo=timezone.utc)
    config, catalog = _transactions_only(sandbox, start_date=_text(start))
    (tmp_path / "catalog.json").write_text(json.dumps(catalog))
    result = run_cli(
        REPORTING.executable, config, tmp_path, "--catalog", str(tmp_path / "catalog.json")
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    (line,) = _errors(result.stderr)
    assert "RESULTSET_TOO_LARGE" in line and "cannot be split any further" in line, line
    asked = _windows(sandbox)
    assert len(asked) == len(set(asked)) < 40
    assert sandbox.engine.api("reporting").violations == []


def test_a_window_of_more_than_one_page_is_read_page_by_page():
    """Pages 2 and 3 of one window hold new rows: the repeat guard must see their keys."""
    with recent_transactions(days=29, count=1100) as sb:
        start = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(days=30)
        config, catalog = _transactions_only(sb, start_date=_text(start), window_days=31)
        result = sync_in_process(TapReporting, config, catalog=catalog)
        assert sorted(page for _, _, page, _ in _windows(sb)) == [1, 2, 3]  # in any order
        assert_matches_ground_truth(
            REPORTING,
            "transactions",
            result.records("transactions"),
            sb.records("reporting", "transactions"),
        )


def test_a_sync_killed_after_its_second_window_resumes_there_and_loses_nothing(tmp_path):
    with recent_transactions(days=60, count=240) as sb:
        # Slow windows, so the sync is still running when it is killed.
        sb.add_fault(
            Fault(kind="latency", api="reporting", path=TRANSACTIONS, seconds=0.2, times=None)
        )
        start = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(days=63)
        config, catalog = _transactions_only(sb, start_date=_text(start), window_days=7)
        (tmp_path / "config.json").write_text(json.dumps(config))
        (tmp_path / "catalog.json").write_text(json.dumps(catalog))
        with (tmp_path / "stderr.txt").open("w") as stderr:
            proc = subprocess.Popen(
                [
                    REPORTING.executable,
                    *("--config", str(tmp_path / "config.json")),
                    *("--catalog", str(tmp_path / "catalog.json")),
                ],
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
            )
            assert proc.stdout is not None
            committed: list[dict] = []  # what a target keeps: records up to the last STATE
            pending: list[dict] = []
            states: list[dict] = []
            for line in proc.stdout:
                message = json.loads(line)
                if message["type"] == "RECORD":
                    pending.append(message["record"])
                elif message["type"] == "STATE" and "replication_key_value" in message["value"][
                    "bookmarks"
                ].get("transactions", {}):
                    committed += pending
                    pending = []
                    states.append(message["value"])
                    if len(states) == 2:
                        proc.send_signal(signal.SIGKILL)
                        break
            proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL
        # Overlapped, every window's first page may be out before the kill: the exit
        # status above says the kill came first.
        bookmark = _at(states[-1]["bookmarks"]["transactions"]["replication_key_value"])
        assert bookmark == start + timedelta(days=14)

        sb.clear_faults()
        sb.clear_requests()
        resumed = run_cli(
            REPORTING.executable,
            config,
            tmp_path,
            "--catalog",
            str(tmp_path / "catalog.json"),
            state=states[-1],
        )
        assert resumed.returncode == 0, resumed.stderr[-2000:]
        second_run = sorted(_windows(sb))
        assert second_run[0][0] == bookmark
        assert all(begin >= bookmark for begin, _, _, _ in second_run), "a finished window again"
        union = committed + resumed.sync.records("transactions")
        assert_matches_ground_truth(
            REPORTING, "transactions", union, sb.records("reporting", "transactions")
        )


# -- the other paging kinds ------------------------------------------------------------------


def test_disputes_follow_the_next_links_token_exactly_and_end_without_one(sandbox):
    config = REPORTING.config(sandbox)
    catalog = catalog_selecting(TapReporting, config, "list_disputes")
    result = sync_in_process(TapReporting, config, catalog=catalog)
    truth = sandbox.records("reporting", "list_disputes")
    assert_matches_ground_truth(REPORTING, "list_disputes", result.records("list_disputes"), truth)
    asked = [r.query for r in sandbox.requests if r.path == "/v1/customer/disputes"]
    api = sandbox.engine.api("reporting")
    sent = [q["next_page_token"][0] for q in asked if "next_page_token" in q]
    assert "next_page_token" not in asked[0]
    assert sent == api.issued_dispute_tokens and len(sent) == 2
    assert all(q["page_size"] == ["50"] for q in asked)
    assert api.violations == []

    bookmark = result.last_state["bookmarks"]["list_disputes"]["replication_key_value"]
    assert _at(bookmark) == max(_at(r["update_time"]) for r in truth)
    sandbox.clear_requests()
    again = sync_in_process(TapReporting, config, catalog=catalog, state=result.last_state)
    (query,) = [r.query for r in sandbox.requests if r.path == "/v1/customer/disputes"]
    assert _at(query["update_time_after"][0]) == _at(bookmark)
    assert [r["dispute_id"] for r in again.records("list_disputes")] == [
        r["dispute_id"] for r in truth if _at(r["update_time"]) >= _at(bookmark)
    ]


@pytest.mark.parametrize("spelling", ["+0000", "+00:00", "Z"])
def test_a_disputes_bookmark_reads_the_same_in_any_utc_spelling(sandbox, spelling):
    config = REPORTING.config(sandbox)
    catalog = catalog_selecting(TapReporting, config, "list_disputes")
    state = {
        "bookmarks": {
            "list_disputes": {
                "replication_key": "update_time",
                "replication_key_value": "2025-01-15T10:20:30" + spelling,
            }
        }
    }
    result = sync_in_process(TapReporting, config, catalog=catalog, state=state)
    (first, *_) = [r.query for r in sandbox.requests if r.path == "/v1/customer/disputes"]
    assert first["update_time_after"] == ["2025-01-15T10:20:30Z"]
    expected = [
        r["dispute_id"]
        for r in sandbox.records("reporting", "list_disputes")
        if r["update_time"] >= "2025-01-15T10:20:30+0000"
    ]
    assert [r["dispute_id"] for r in result.records("list_disputes")] == expected


def test_product_details_ask_once_per_product_even_with_only_the_details_selected(sandbox):
    config = REPORTING.config(sandbox)
    catalog = catalog_selecting(TapReporting, config, "show_product_details")
    result = sync_in_process(TapReporting, config, catalog=catalog)
    truth = sandbox.records("reporting", "show_product_details")
    assert result.records("list_products") == [], "the parent is read, not emitted"
    assert_matches_ground_truth(
        REPORTING, "show_product_details", result.records("show_product_details"), truth
    )
    paths = [r.path for r in sandbox.requests]
    asked = [p.rsplit("/", 1)[1] for p in paths if p.startswith("/v1/catalogs/products/")]
    assert sorted(asked) == sorted(r["id"] for r in truth)
    assert paths.count("/v1/catalogs/products") == 2  # 40 products, pages of 20
    assert "partitions" not in result.last_state["bookmarks"].get("show_product_details", {})
    assert sandbox.engine.api("reporting").violations == []


def test_search_invoices_posts_a_json_body_and_payments_chain_their_cursor(sandbox):
    config = REPORTING.config(sandbox)
    catalog = catalog_selecting(TapReporting, config, "search_invoices", "list_payments")
    result = sync_in_process(TapReporting, config, catalog=catalog)
    for stream in ("search_invoices", "list_payments"):
        truth = sandbox.records("reporting", stream)
        assert_matches_ground_truth(REPORTING, stream, result.records(stream), truth)
    searches = [r for r in sandbox.requests if r.path == "/v2/invoicing/search-invoices"]
    assert [(r.method, json.loads(r.body), r.query["page"]) for r in searches] == [
        ("POST", {}, ["1"]),
        ("POST", {}, ["2"]),
    ]
    assert all(r.query["total_required"] == ["true"] for r in searches)
    payments = [r.query for r in sandbox.requests if r.path == "/v1/payments/payment"]
    ids = [r["id"] for r in sandbox.records("reporting", "list_payments")]
    assert [q.get("start_id") for q in payments] == [None, [ids[20]], [ids[40]]]


# -- tokens ----------------------------------------------------------------------------------


def test_one_token_serves_the_whole_sync(sandbox):
    sync_in_process(TapReporting, REPORTING.config(sandbox))
    assert sandbox.engine.api("reporting").token_issuer.issued == 1
    assert all(r.status == 200 for r in sandbox.requests)


def test_a_token_revoked_mid_sync_is_renewed_and_nothing_is_lost(sandbox):
    sandbox.add_fault(Fault(kind="token_expiry", api="reporting", after=10, times=1))
    result = sync_in_process(TapReporting, REPORTING.config(sandbox))
    assert sandbox.engine.api("reporting").token_issuer.issued == 2
    # Each request in flight with the revoked token is refused once; one new token.
    assert 1 <= [r.status for r in sandbox.requests].count(401) <= 8
    for stream in sandbox.streams("reporting"):
        truth = sandbox.records("reporting", stream)
        assert_matches_ground_truth(REPORTING, stream, result.records(stream), truth)


def test_a_token_whose_lifetime_ends_mid_sync_is_renewed(sandbox):
    sandbox.engine.api("reporting").token_issuer.lifetime = 1
    sandbox.add_fault(Fault(kind="latency", api="reporting", seconds=0.05, times=None))
    # One request at a time: overlapped, the sync ends before the token's lifetime does.
    config, catalog = _transactions_only(sandbox, max_concurrent_requests=1)
    result = sync_in_process(TapReporting, config, catalog=catalog)
    assert sandbox.engine.api("reporting").token_issuer.issued >= 2
    assert_matches_ground_truth(
        REPORTING,
        "transactions",
        result.records("transactions"),
        sandbox.records("reporting", "transactions"),
    )


# -- retries and failures --------------------------------------------------------------------


def _balances_cli(sandbox, tmp_path, **settings):
    config = REPORTING.config(sandbox, **settings)
    catalog = tmp_path / "catalog.json"
    catalog.write_text(json.dumps(catalog_selecting(TapReporting, config, "balances")))
    return run_cli(REPORTING.executable, config, tmp_path, "--catalog", str(catalog))


def test_a_plain_400_is_retried_3_times_then_fails_with_one_clear_line(sandbox, tmp_path):
    sandbox.add_fault(
        Fault(kind="status", api="reporting", path="/v1/reporting/balances", status=400, times=None)
    )
    result = _balances_cli(sandbox, tmp_path)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    (line,) = _errors(result.stderr)
    for part in ("tap-reporting", "'balances'", "GET /reporting/v1/reporting/balances", "400"):
        assert part in line, line
    assert "after 4 attempts" in line, line
    assert "retry 3 of 3" in result.stderr
    assert [r.path for r in sandbox.requests].count("/v1/reporting/balances") == 4


def test_a_plain_400_once_is_retried_and_the_sync_completes(sandbox, tmp_path):
    sandbox.add_fault(
        Fault(kind="status", api="reporting", path="/v1/reporting/balances", status=400, times=1)
    )
    result = _balances_cli(sandbox, tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert len(result.sync.records("balances")) == 1
    assert [r.status for r in sandbox.requests if r.path == "/v1/reporting/balances"] == [400, 200]


def test_a_400_naming_invalid_request_is_reported_at_once(sandbox, tmp_path):
    body = json.dumps({"name": "INVALID_REQUEST", "message": "Request is not well-formed."})
    sandbox.add_fault(
        Fault(
            kind="status",
            api="reporting",
            path="/v1/reporting/balances",
            status=400,
            body=body,
            times=None,
        )
    )
    result = _balances_cli(sandbox, tmp_path)
    assert result.returncode == 1
    (line,) = _errors(result.stderr)
    assert "Request is not well-formed." in line and "400" in line, line
    assert "retry" not in result.stderr
    assert [r.path for r in sandbox.requests].count("/v1/reporting/balances") == 1


@pytest.mark.parametrize("days", [0, 32])
def test_window_days_outside_1_to_31_is_a_settings_error(sandbox, tmp_path, days):
    config = REPORTING.config(sandbox, window_days=days)
    result = run_cli(REPORTING.executable, config, tmp_path)
    assert result.returncode == 1
    (line,) = _errors(result.stderr)
    assert "window_days" in line, line
    assert sandbox.requests == []


def test_wrong_client_credentials_fail_at_the_token_without_showing_the_secret(sandbox, tmp_path):
    result = _balances_cli(sandbox, tmp_path, client_secret=SENTINEL)
    assert result.returncode == 1
    (line,) = _errors(result.stderr)
    assert "401" in line and "/reporting/v1/oauth2/token" in line, line
    assert SENTINEL not in result.stderr + result.stdout
    assert [r.path for r in sandbox.requests] == ["/v1/oauth2/token"]


def test_colonless_offsets_are_emitted_as_rfc3339_and_the_lifted_keys_equal_the_nested(shared):
    config, catalog = _transactions_only(shared)
    catalog = catalog_selecting(TapReporting, config, "transactions", "balances")
    result = sync_in_process(TapReporting, config, catalog=catalog)
    records = result.records("transactions")
    assert records
    for record in records:
        info = record["transaction_info"]
        assert record["transaction_id"] == info["transaction_id"]
        assert record["transaction_updated_date"] == info["transaction_updated_date"]
        assert info["transaction_updated_date"].endswith("+00:00")
        assert info["transaction_initiation_date"].endswith("+00:00")
    (balance,) = result.records("balances")
    assert balance["as_of_time"] == "2025-06-30T00:00:00+00:00"
    truth = {r["currency"]: r for r in shared.records("reporting", "balances")[0]["balances"]}
    for entry in balance["balances"]:  # decimal strings stay the API's text
        assert entry["total_balance"] == truth[entry["currency"]]["total_balance"]
        assert isinstance(entry["total_balance"]["value"], str)

"""The seeds' retry policy: 429/5xx/resets/truncation retried, Retry-After honoured."""

from __future__ import annotations

import email.utils
import logging
import time

import pytest
import requests

from api_sandbox import Fault
from taps_core.errors import RetryableResponseError
from taps_core.retry import RetryPolicy, call_with_retries, parse_retry_after
from tests.support import (
    assert_matches_ground_truth,
    catalog_selecting,
    run_cli,
    sync_in_process,
    tap_case,
)

REWARDS = tap_case("rewards")


def _orders_only(sandbox, **config):
    config = REWARDS.config(sandbox, **config)
    return config, catalog_selecting(REWARDS.tap_class, config, "orders")


def _orders_requests(sandbox):
    return [r for r in sandbox.requests if r.path == "/v2/orders"]


def test_retry_after_seconds_is_waited_for(sandbox):
    sandbox.add_fault(
        Fault(kind="status", api="rewards", path="/v2/orders", status=429, retry_after="2")
    )
    config, catalog = _orders_only(sandbox)
    result = sync_in_process(REWARDS.tap_class, config, catalog=catalog)
    assert_matches_ground_truth(
        REWARDS, "orders", result.records("orders"), sandbox.records("rewards", "orders")
    )
    first, retry = _orders_requests(sandbox)[:2]
    assert first.status == 429 and retry.status == 200
    assert 1.9 <= retry.time - first.time <= 3.5


def test_retry_after_is_capped_by_max_retry_wait_seconds(sandbox):
    sandbox.add_fault(
        Fault(kind="status", api="rewards", path="/v2/orders", status=429, retry_after="120")
    )
    config, catalog = _orders_only(sandbox, max_retry_wait_seconds=0.5)
    started = time.monotonic()
    result = sync_in_process(REWARDS.tap_class, config, catalog=catalog)
    assert time.monotonic() - started < 10
    first, retry = _orders_requests(sandbox)[:2]
    assert 0.4 <= retry.time - first.time <= 2.0
    assert len(result.records("orders")) == len(sandbox.records("rewards", "orders"))


@pytest.mark.parametrize(
    "fault",
    [
        Fault(kind="status", status=503, times=2),
        Fault(kind="status", status=500),
        Fault(kind="status", status=502),
        Fault(kind="status", status=504),
        Fault(kind="status", status=429),
        Fault(kind="reset"),
        Fault(kind="truncate"),
        Fault(kind="malformed"),
    ],
    ids=["503-twice", "500", "502", "504", "429-no-retry-after", "reset", "truncated", "malformed"],
)
def test_transient_failures_are_retried_and_the_sync_completes(sandbox, fault):
    fault.api, fault.path, fault.skip = "rewards", "/v2/orders", 1  # fail the second page
    sandbox.add_fault(fault)
    config, catalog = _orders_only(sandbox)
    result = sync_in_process(REWARDS.tap_class, config, catalog=catalog)
    assert_matches_ground_truth(
        REWARDS, "orders", result.records("orders"), sandbox.records("rewards", "orders")
    )
    faulted = [r for r in _orders_requests(sandbox) if r.fault]
    assert len(faulted) == (fault.times or 1)


def test_a_fault_past_three_retries_fails_clearly_and_exits_non_zero(sandbox, tmp_path):
    sandbox.add_fault(
        Fault(kind="status", api="rewards", path="/v2/orders", status=503, times=None)
    )
    result = run_cli(REWARDS.executable, REWARDS.config(sandbox), tmp_path)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    for part in ("tap-rewards", "'orders'", "GET /rewards/v2/orders", "503", "after 4 attempts"):
        assert part in last, last
    assert len(_orders_requests(sandbox)) == 4


def test_a_persistent_reset_fails_clearly(sandbox, tmp_path):
    sandbox.add_fault(Fault(kind="reset", api="rewards", path="/v2/orders", times=None))
    result = run_cli(REWARDS.executable, REWARDS.config(sandbox), tmp_path)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "GET /rewards/v2/orders failed after 4 attempts" in result.stderr


def test_backoff_doubles_from_the_factor_and_stops_after_three_retries():
    waits: list[float] = []
    attempts = []

    def failing():
        attempts.append(1)
        raise requests.exceptions.ConnectionError("boom")

    with pytest.raises(requests.exceptions.ConnectionError):
        call_with_retries(
            failing,
            RetryPolicy(),
            logger=logging.getLogger("test"),
            what="GET /x",
            sleep=waits.append,
        )
    assert waits == [2.0, 4.0, 8.0]
    assert len(attempts) == 4


def test_retry_after_header_replaces_the_computed_wait():
    response = requests.Response()
    response.status_code = 429
    response.headers["Retry-After"] = "7"
    policy = RetryPolicy()
    assert policy.wait_for(RetryableResponseError(response, "429"), 1) == 7.0
    response.headers["Retry-After"] = "600"
    assert policy.wait_for(RetryableResponseError(response, "429"), 1) == 60.0


def test_retry_after_parses_seconds_and_http_dates():
    now = time.time()
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(
        email.utils.formatdate(now + 30, usegmt=True), now=now
    ) == pytest.approx(30, abs=1)
    assert parse_retry_after(email.utils.formatdate(now - 30, usegmt=True), now=now) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_the_sandbox_rate_limit_is_ridden_out_with_retry_after(sandbox):
    sandbox.add_fault(Fault(kind="rate_limit", api="rewards", per_second=2, times=None))
    config, catalog = _orders_only(sandbox)
    result = sync_in_process(REWARDS.tap_class, config, catalog=catalog)
    assert_matches_ground_truth(
        REWARDS, "orders", result.records("orders"), sandbox.records("rewards", "orders")
    )
    statuses = [r.status for r in _orders_requests(sandbox)]
    assert statuses.count(200) == 3
    assert 429 in statuses


def test_a_request_slower_than_the_timeout_is_retried(sandbox, caplog):
    sandbox.add_fault(Fault(kind="latency", api="rewards", path="/v2/orders", seconds=2.5, times=1))
    config, catalog = _orders_only(sandbox, request_timeout=1)
    result = sync_in_process(REWARDS.tap_class, config, catalog=catalog)
    assert_matches_ground_truth(
        REWARDS, "orders", result.records("orders"), sandbox.records("rewards", "orders")
    )
    assert "GET /rewards/v2/orders failed (timed out); retry 1 of 3" in caplog.text

"""tap-rewards pages as the contract says: capped pages, totals, exact multiples, empties."""

from __future__ import annotations

import pytest

from api_sandbox import Sandbox
from tap_rewards.tap import TapRewards
from tests.support import assert_matches_ground_truth, catalog_selecting, sync_in_process, tap_case

REWARDS = tap_case("rewards")


def _sync_streams(sandbox, *streams: str):
    config = REWARDS.config(sandbox)
    catalog = catalog_selecting(TapRewards, config, *streams)
    sandbox.clear_requests()
    return sync_in_process(TapRewards, config, catalog=catalog)


def _requests(sandbox, path: str):
    return [r for r in sandbox.requests if r.path == path]


def test_invoices_capped_at_ten_a_page_lose_nothing(shared):
    result = _sync_streams(shared, "invoices")
    truth = shared.records("rewards", "invoices")
    assert len(truth) > 10
    assert_matches_ground_truth(REWARDS, "invoices", result.records("invoices"), truth)
    asked = _requests(shared, "/v2/invoices")
    assert [r.query["limit"] for r in asked] == [["100"]] * len(asked)
    assert [int(r.query["offset"][0]) for r in asked] == list(range(0, len(truth), 10))


# orders carry total_count (pages of 100): the list ends at offset + rows >= total.
# balance_transactions do not (pages of 10): a short or empty page ends the list.
PAGING_CASES = [
    ("orders", "/v2/orders", 0, 1),
    ("orders", "/v2/orders", 1, 1),
    ("orders", "/v2/orders", 100, 1),
    ("orders", "/v2/orders", 200, 2),
    ("orders", "/v2/orders", 250, 3),
    ("balance_transactions", "/v2/balance_transactions", 0, 1),
    ("balance_transactions", "/v2/balance_transactions", 1, 1),
    ("balance_transactions", "/v2/balance_transactions", 10, 2),
    ("balance_transactions", "/v2/balance_transactions", 30, 4),
    ("balance_transactions", "/v2/balance_transactions", 35, 4),
]


@pytest.mark.parametrize(
    ("stream", "path", "count", "expected_requests"),
    PAGING_CASES,
    ids=[f"{stream}-{count}" for stream, _, count, _ in PAGING_CASES],
)
def test_paging_ends_exactly_on_empty_single_exact_multiple_and_partial_lists(
    stream, path, count, expected_requests
):
    with Sandbox(seed=7, counts={"rewards": {stream: count}}) as sandbox:
        result = _sync_streams(sandbox, stream)
        truth = sandbox.records("rewards", stream)
        assert len(truth) == count
        assert_matches_ground_truth(REWARDS, stream, result.records(stream), truth)
        assert len(_requests(sandbox, path)) == expected_requests


def test_unpaged_lists_are_read_once(shared):
    streams = ("products", "funding_sources", "campaigns", "organizations", "members")
    result = _sync_streams(shared, *streams)
    for stream in streams:
        assert_matches_ground_truth(
            REWARDS, stream, result.records(stream), shared.records("rewards", stream)
        )
    for path in ("/v2/products", "/v2/campaigns", "/v2/organizations", "/v2/members"):
        assert len(_requests(shared, path)) == 1, path


def test_identical_balance_transactions_keep_distinct_stable_keys(shared):
    first = _sync_streams(shared, "balance_transactions").records("balance_transactions")
    second = _sync_streams(shared, "balance_transactions").records("balance_transactions")
    keys = [r["transaction_key"] for r in first]
    assert len(set(keys)) == len(keys)
    assert keys == [r["transaction_key"] for r in second]
    content = [
        tuple(sorted((k, str(v)) for k, v in r.items() if k != "transaction_key")) for r in first
    ]
    assert len(set(content)) < len(content), "the sandbox should serve two identical rows"

"""Incremental sync on created_at: the second sync reads only what is new."""

from __future__ import annotations

from tests.support import catalog_selecting, instant, sync_in_process, tap_case

REWARDS = tap_case("rewards")
INCREMENTAL = ("orders", "balance_transactions")


def test_second_sync_with_state_emits_only_records_created_since(sandbox):
    config = REWARDS.config(sandbox)
    catalog = catalog_selecting(REWARDS.tap_class, config, *INCREMENTAL)
    first = sync_in_process(REWARDS.tap_class, config, catalog=catalog)
    state = first.last_state
    bookmarks = {
        stream: state["bookmarks"][stream]["replication_key_value"] for stream in INCREMENTAL
    }
    for stream in INCREMENTAL:
        assert instant(bookmarks[stream]) == max(
            instant(r["created_at"]) for r in sandbox.records("rewards", stream)
        )

    new_ids = sandbox.mutate("rewards", "orders", new=5, modified=3)
    sandbox.clear_requests()
    second = sync_in_process(REWARDS.tap_class, config, catalog=catalog, state=state)

    orders = second.records("orders")
    truth = sandbox.records("rewards", "orders")
    expected = {r["id"] for r in truth if instant(r["created_at"]) >= instant(bookmarks["orders"])}
    assert {r["id"] for r in orders} == expected
    assert set(new_ids) & expected, "the new orders must be in the second sync"
    assert len(orders) < len(truth)
    assert instant(second.last_state["bookmarks"]["orders"]["replication_key_value"]) == max(
        instant(r["created_at"]) for r in truth
    )
    sent = {
        r.path: r.query.get("created_at[gte]")
        for r in sandbox.requests
        if r.path in ("/v2/orders", "/v2/balance_transactions")
    }
    for stream in INCREMENTAL:
        (since,) = sent[f"/v2/{stream}"]
        assert instant(since) == instant(bookmarks[stream])


def test_start_date_limits_the_first_sync(sandbox):
    truth = sandbox.records("rewards", "orders")
    cutoff = sorted(r["created_at"] for r in truth)[len(truth) // 2]
    config = REWARDS.config(sandbox, start_date=cutoff)
    catalog = catalog_selecting(REWARDS.tap_class, config, "orders")
    result = sync_in_process(REWARDS.tap_class, config, catalog=catalog)
    assert {r["id"] for r in result.records("orders")} == {
        r["id"] for r in truth if r["created_at"] >= cutoff
    }

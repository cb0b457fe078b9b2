"""A newest-first list that grows while it is read loses no row and emits none twice.

The sandbox's ``grow`` fault inserts new rows at the head of a list after its k-th
request, which pushes the rows not yet read further down: exactly a page of new rows
makes the next page equal the one before, more than a page makes whole pages repeat.
Every row must be emitted by the sync or by the incremental sync that follows it, no
row twice within one sync, and only the rows at the bookmark itself by both (the
incremental sync asks ``created_at >=`` the bookmark).
"""

from __future__ import annotations

import decimal
import json
import urllib.request
from collections import Counter

import pytest

from api_sandbox import Sandbox
from api_sandbox.faults import Fault
from tap_rewards.tap import TapRewards
from tests.support import catalog_selecting, instant, sync_in_process, tap_case

REWARDS = tap_case("rewards")
PATHS = {"orders": "/v2/orders", "balance_transactions": "/v2/balance_transactions"}


def _grow(stream: str, rows: int, after: int = 1) -> Fault:
    return Fault("grow", api="rewards", path=PATHS[stream], stream=stream, rows=rows, skip=after)


def _sync_twice(sandbox: Sandbox, stream: str) -> tuple[list[dict], list[dict], str]:
    """The sync and the incremental one after it, and the bookmark between them."""
    config = REWARDS.config(sandbox)
    catalog = catalog_selecting(TapRewards, config, stream)
    first = sync_in_process(TapRewards, config, catalog=catalog)
    bookmark = first.last_state["bookmarks"][stream]["replication_key_value"]
    second = sync_in_process(TapRewards, config, catalog=catalog, state=first.last_state)
    return first.records(stream), second.records(stream), bookmark


def _assert_every_row_once(first: list, second: list, truth: list, key, bookmark: str) -> None:
    for records in (first, second):
        twice = [k for k, n in Counter(map(key, records)).items() if n > 1]
        assert not twice, f"emitted twice within one sync: {twice[:3]}"
    emitted = {key(r) for r in first} | {key(r) for r in second}
    expected = {key(r) for r in truth}
    assert len(expected - emitted) == 0, f"{len(expected - emitted)} rows never emitted"
    assert emitted == expected
    both = {key(r) for r in first} & {key(r) for r in second}
    # bookmarks are written in UTC, the API's timestamps in its own zone: compare instants
    at_bookmark = {key(r) for r in truth if instant(r["created_at"]) == instant(bookmark)}
    assert both <= at_bookmark


@pytest.mark.parametrize("new_rows", [1, 99, 100, 150, 300])
def test_orders_that_grow_during_the_sync_are_each_emitted_once(new_rows):
    """350 orders, rows inserted at the head after page 1 (100 of them: 250 were lost)."""
    with Sandbox(
        seed=7, counts={"rewards": {"orders": 350}}, faults=[_grow("orders", new_rows)]
    ) as sandbox:
        first, second, bookmark = _sync_twice(sandbox, "orders")
        truth = sandbox.records("rewards", "orders")
    assert len(truth) == 350 + new_rows
    _assert_every_row_once(first, second, truth, lambda r: r["id"], bookmark)


def test_orders_that_grow_by_more_than_a_page_twice_are_each_emitted_once():
    growth = [_grow("orders", 120, after=1), _grow("orders", 230, after=3)]
    with Sandbox(seed=7, counts={"rewards": {"orders": 350}}, faults=growth) as sandbox:
        first, second, bookmark = _sync_twice(sandbox, "orders")
        truth = sandbox.records("rewards", "orders")
    _assert_every_row_once(first, second, truth, lambda r: r["id"], bookmark)


def _content(record: dict) -> str:
    """A row's values without the derived key, numbers compared by their digits."""
    values = {k: v for k, v in record.items() if k != "transaction_key"}
    exact = json.loads(json.dumps(values, default=str), parse_float=decimal.Decimal)
    return json.dumps(exact, sort_keys=True, default=str)


@pytest.mark.parametrize(
    ("count", "growth"),
    [
        (35, [(1, 1)]),
        (35, [(2, 1)]),
        (35, [(10, 1)]),
        (35, [(25, 1)]),
        (48, [(30, 3)]),
        (60, [(21, 3), (9, 4)]),
    ],
)
def test_balance_transactions_shifted_by_new_arrivals_keep_their_keys(count, growth):
    """A row pushed onto the next page keeps its key; a second identical row gets the next.

    35 rows with seed 7 put two identical rows on either side of the first page's end,
    the case where "the same row, shifted" and "a second, identical row" look alike.
    30 new rows after the third page make two whole pages repeat in a row; 21 and then
    9 make the second repeated page hold the first one's rows, one place further on.
    """
    stream = "balance_transactions"
    faults = [_grow(stream, rows, after) for rows, after in growth]
    with Sandbox(seed=7, counts={"rewards": {stream: count}}, faults=faults) as sandbox:
        static = sandbox.records("rewards", stream)
        if count == 35:
            assert _content(static[9]) == _content(static[10]), "a pair must straddle page 1"
        first, second, bookmark = _sync_twice(sandbox, stream)
        truth = sandbox.records("rewards", stream)
        config = REWARDS.config(sandbox)
        catalog = catalog_selecting(TapRewards, config, stream)
        still = sync_in_process(TapRewards, config, catalog=catalog).records(stream)
    key = lambda r: r["transaction_key"]  # noqa: E731
    # The list no longer changes: a fresh sync's keys are the keys every row must have.
    assert len(still) == len(truth) == count + sum(rows for rows, _ in growth)
    _assert_every_row_once(first, second, still, key, bookmark)
    for records in (first, second):
        assert {key(r): _content(r) for r in records}.items() <= {
            key(r): _content(r) for r in still
        }.items()
    assert Counter(map(_content, still)) == Counter(map(_content, truth))


def test_a_grow_fault_can_be_switched_on_over_http():
    with Sandbox(seed=7, counts={"rewards": {"orders": 5}}) as sandbox:
        spec = "kind=grow,api=rewards,path=/v2/orders,stream=orders,rows=3,skip=1"
        body = json.dumps(Fault.parse(spec).to_json()).encode()
        post = urllib.request.Request(f"{sandbox.url}/_sandbox/faults", data=body, method="POST")
        with urllib.request.urlopen(post) as reply:
            assert reply.status == 201
        get = urllib.request.Request(
            f"{sandbox.base_url('rewards')}/v2/orders",
            headers={"Authorization": "Bearer " + sandbox.credentials("rewards")["api_key"]},
        )
        totals = []
        for _ in range(3):
            with urllib.request.urlopen(get) as reply:
                totals.append(json.loads(reply.read())["total_count"])
        assert totals == [5, 8, 8]
        assert [r.fault for r in sandbox.requests] == [None, "grow", None]

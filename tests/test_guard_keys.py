"""The repeat guard keys records as they are emitted, after ``post_process``.

A stream whose key is built in ``post_process`` (reporting lifts ``transaction_id`` to
the top level) has no key in the raw row; keyed from that row, every record would be
``(None,)``, page 2 a "repeat", and the stream would end after page 1. These streams
are declared here, on taps_core and the rewards tap, and read the sandbox's orders
over HTTP.
"""

from __future__ import annotations

import typing as t

from api_sandbox import Sandbox
from tap_rewards.streams import MembersStream, OrdersStream
from tap_rewards.tap import TapRewards
from taps_core.client import load_schema
from tests.support import catalog_selecting, sync_in_process, tap_case

REWARDS = tap_case("rewards")


class LiftedKeyOrders(OrdersStream):
    """Orders keyed by ``order_ref``, a field only ``post_process`` writes."""

    primary_keys = ("order_ref",)
    calls = 0

    def __init__(self, tap: t.Any) -> None:
        schema = load_schema(self.schemas_dir / "orders.json")
        schema["properties"]["order_ref"] = {"type": ["string", "null"]}
        super().__init__(tap, schema=schema)

    def post_process(self, row: dict, context: t.Any = None) -> dict | None:
        type(self).calls += 1
        row["order_ref"] = "ref-" + row.get("order_ref", row["id"])  # twice would show
        return row


class NullKeyOrders(OrdersStream):
    """Orders keyed by a field the API never sends: every key is ``(None,)``."""

    primary_keys = ("transaction_id",)


class PagedMembers(MembersStream):
    """``/v2/members`` read with the seed's paging, which the API ignores (no total)."""

    page_size = 10


def _tap_with(stream_type: type) -> type[TapRewards]:
    return type("TapUnderTest", (TapRewards,), {"stream_types": [stream_type]})


def _sync(sandbox: Sandbox, stream_type: type) -> list[dict]:
    tap = _tap_with(stream_type)
    config = REWARDS.config(sandbox)
    catalog = catalog_selecting(tap, config, stream_type.name)
    return sync_in_process(tap, config, catalog=catalog).records(stream_type.name)


def test_a_key_set_in_post_process_keys_the_guard():
    with Sandbox(seed=7, counts={"rewards": {"orders": 250}}) as sandbox:
        LiftedKeyOrders.calls = 0
        records = _sync(sandbox, LiftedKeyOrders)
        truth = sandbox.records("rewards", "orders")
    assert sorted(r["order_ref"] for r in records) == sorted("ref-" + r["id"] for r in truth)
    assert LiftedKeyOrders.calls == 250, "post_process runs once a record"


def test_records_whose_key_is_null_are_never_taken_for_repeats():
    with Sandbox(seed=7, counts={"rewards": {"orders": 250}}) as sandbox:
        records = _sync(sandbox, NullKeyOrders)
        truth = sandbox.records("rewards", "orders")
    assert sorted(r["id"] for r in records) == sorted(r["id"] for r in truth)


def test_a_list_that_ignores_paging_and_states_no_total_ends_on_its_second_page(shared):
    """The contract's unpaged lists send every row whatever ``limit`` asks: more rows than
    asked is the sign, so the repeat on page 2 ends the list."""
    shared.clear_requests()
    records = _sync(shared, PagedMembers)
    truth = shared.records("rewards", "members")
    assert len(truth) > PagedMembers.page_size
    assert sorted(r["id"] for r in records) == sorted(r["id"] for r in truth)
    asked = [r.query["offset"] for r in shared.requests if r.path == "/v2/members"]
    assert asked == [["0"], [str(len(truth))]]

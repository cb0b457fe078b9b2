"""A misbehaving list never makes a tap loop or emit a record twice.

The sandbox follows the contract, so these cases use a hand-made server
(pytest-httpserver) that does what the contract warns real APIs may do.
"""

from __future__ import annotations

import json
import random

import pytest
from pytest_httpserver import HTTPServer
from singer_sdk.pagination import JSONPathPaginator
from werkzeug import Request, Response

from tap_rewards.streams import OrdersStream
from tap_rewards.tap import TapRewards
from taps_core import pagination
from taps_core.pagination import KeyHashes, RepeatGuard
from tests.support import FAST_RETRIES, catalog_selecting, sync_in_process


def _order(i: int) -> dict:
    return {"id": f"ord-{i:05d}", "created_at": "2024-01-01T00:00:00Z", "status": "COMPLETED"}


def _sync_orders(httpserver: HTTPServer, handler, concurrent: int = 1) -> list[dict]:
    """Orders from ``handler``; one request at a time unless told, so that the requests
    asked are the guard's decisions alone (overlapped: see the test at the end)."""
    httpserver.expect_request("/v2/orders").respond_with_handler(handler)
    config = {
        "api_key": "k" * 12,
        "base_url": httpserver.url_for("").rstrip("/"),
        **FAST_RETRIES,
        "max_concurrent_requests": concurrent,
    }
    result = sync_in_process(
        TapRewards, config, catalog=catalog_selecting(TapRewards, config, "orders")
    )
    return result.records("orders")


def test_a_list_that_ignores_offset_is_read_once_not_forever(httpserver: HTTPServer):
    calls = []

    def same_page_always(request: Request) -> Response:
        calls.append(request.args.get("offset"))
        body = {"orders": [_order(i) for i in range(100)], "total_count": 100_000}
        return Response(json.dumps(body), content_type="application/json")

    records = _sync_orders(httpserver, same_page_always)
    assert [r["id"] for r in records] == [f"ord-{i:05d}" for i in range(100)]
    assert calls == ["0", "100"]


def test_a_list_that_ignores_offset_without_a_total_is_read_three_times_not_forever(
    httpserver: HTTPServer,
):
    """Page 2 equal to page 1 is also what exactly a page of new rows makes: read on once."""
    calls = []

    def same_page_always(request: Request) -> Response:
        calls.append(request.args.get("offset"))
        body = {"orders": [_order(i) for i in range(100)]}
        return Response(json.dumps(body), content_type="application/json")

    records = _sync_orders(httpserver, same_page_always)
    assert [r["id"] for r in records] == [f"ord-{i:05d}" for i in range(100)]
    assert calls == ["0", "100", "200"]


def test_rows_shifted_onto_the_next_page_are_emitted_once(httpserver: HTTPServer):
    """A newest-first list that grows mid-sync pushes the last row of a page onto the next."""

    def shifting(request: Request) -> Response:
        offset = int(request.args["offset"])
        start = offset if offset == 0 else offset - 1  # one new row arrived after page 1
        rows = [_order(i) for i in range(start, min(start + 100, 250))]
        return Response(
            json.dumps({"orders": rows, "total_count": 251}), content_type="application/json"
        )

    records = _sync_orders(httpserver, shifting)
    ids = [r["id"] for r in records]
    assert len(ids) == len(set(ids)) == 250


def _cycling(pages: list[list[dict]], total: int | None, calls: list, cap: int = 40):
    """Pages A, B, A, B... at growing offsets; empty after ``cap`` requests."""

    def handler(request: Request) -> Response:
        calls.append(request.args.get("offset"))
        rows = pages[(len(calls) - 1) % len(pages)] if len(calls) <= cap else []
        body: dict = {"orders": rows}
        if total is not None:
            body["total_count"] = total
        return Response(json.dumps(body), content_type="application/json")

    return handler


A = [_order(i) for i in range(100)]
B = [_order(i) for i in range(100, 200)]


def test_pages_cycling_a_b_a_b_without_a_total_end_and_emit_each_row_once(
    httpserver: HTTPServer,
):
    calls: list = []
    records = _sync_orders(httpserver, _cycling([A, B], None, calls))
    ids = [r["id"] for r in records]
    assert sorted(ids) == [f"ord-{i:05d}" for i in range(200)]
    assert len(calls) <= 5


def test_pages_cycling_a_b_a_b_under_a_total_that_does_not_grow_end_on_the_first_repeat(
    httpserver: HTTPServer,
):
    calls: list = []
    records = _sync_orders(httpserver, _cycling([A, B], 100_000, calls))
    assert sorted(r["id"] for r in records) == [f"ord-{i:05d}" for i in range(200)]
    assert calls == ["0", "100", "200"]


class CursorOrders(OrdersStream):
    """Orders paged by a cursor the reply names (``next``), as several APIs do."""

    def get_new_paginator(self) -> JSONPathPaginator:
        return JSONPathPaginator("$.next")

    def get_url_params(self, context, next_page_token) -> dict:
        return {"cursor": next_page_token} if next_page_token else {}


def test_a_cursor_that_comes_back_to_a_page_already_read_ends_the_list(httpserver: HTTPServer):
    """Cursors c1, c2, c1...: the page at c1 again repeats what was read there."""
    calls: list = []
    following = {None: "c1", "c1": "c2", "c2": "c1"}
    rows = {None: A, "c1": B, "c2": [_order(i) for i in range(200, 300)]}

    def handler(request: Request) -> Response:
        cursor = request.args.get("cursor")
        calls.append(cursor)
        body = {"orders": rows[cursor] if len(calls) <= 40 else [], "next": following[cursor]}
        return Response(json.dumps(body), content_type="application/json")

    httpserver.expect_request("/v2/orders").respond_with_handler(handler)
    tap = type("TapUnderTest", (TapRewards,), {"stream_types": [CursorOrders]})
    config = {"api_key": "k" * 12, "base_url": httpserver.url_for("").rstrip("/"), **FAST_RETRIES}
    result = sync_in_process(tap, config, catalog=catalog_selecting(tap, config, "orders"))
    assert sorted(r["id"] for r in result.records("orders")) == [f"ord-{i:05d}" for i in range(300)]
    assert calls == [None, "c1", "c2", "c1"]


def test_the_key_table_holds_every_key_of_a_long_sync_and_reports_each_repeat():
    """Far past its first size, zero included, a repeat inside one batch too."""
    rng = random.Random(5)
    table = KeyHashes()
    batches = [[rng.getrandbits(64) - 2**63 for _ in range(100)] for _ in range(1000)]
    batches[0][:2] = [0, 1]  # zero is stored as one: the two are the same slot's value
    for batch in batches:
        assert table.add_new(batch) == ([1] if batch is batches[0] else [])
    assert len(table) == 100_000 - 1
    assert all(b[-1] in table for b in batches)
    assert table.add_new([batches[7][3], 12345, batches[900][99], 12345]) == [0, 2, 3]


def _random_pages(count: int, seed: int = 11) -> list[list[int]]:
    rng = random.Random(seed)
    return [[rng.getrandbits(64) - 2**63 for _ in range(100)] for _ in range(count)]


def _hashed_guard() -> RepeatGuard:
    """A guard over records that carry their key's hash, so tests can choose the hashes."""
    return RepeatGuard(lambda page: [record["h"] for record in page])


def test_the_first_row_of_a_sync_served_again_far_past_the_recent_window_is_dropped():
    pages = _random_pages(400)  # 40,000 rows: far more than the hashes held exactly
    assert 2 * KeyHashes.RECENT + KeyHashes.SPILL_AT + KeyHashes.REPLAY < 40_000
    guard = _hashed_guard()
    for n, page in enumerate(pages):
        fresh, stop = guard.admit([{"h": h} for h in page], token=n)
        assert len(fresh) == 100 and stop is None
    first, new = {"h": pages[0][0]}, {"h": 12345}
    assert guard.admit([first, new], token="again") == ([new], None)
    assert guard._emitted.file_passes == 1  # the file answered, not memory
    guard.close()


@pytest.mark.parametrize(
    ("held", "other"),
    [
        ((0x1234 << 48) | 77, (0x1234 << 48) | (1 << 40) | 77),
        (-(5 << 48) | 3, -(5 << 48) | (1 << 33) | 3),  # a negative hash's top bits
        (77, (1 << 48) | 77),  # fingerprint zero is taken as one: the same mark
    ],
)
@pytest.mark.parametrize("far", [False, True])
def test_a_hash_with_the_same_fingerprint_and_slot_as_one_held_is_not_dropped(
    held: int, other: int, far: bool
):
    """Same 16 top bits, same low bits (the slot): only the full hash tells them apart."""
    assert held != other and (held >> 48 or 1) == (other >> 48 or 1)
    assert held & 0xFFFF_FFFF == other & 0xFFFF_FFFF
    guard = _hashed_guard()
    assert guard.admit([{"h": held}], token=-1) == ([{"h": held}], None)
    for n, page in enumerate(_random_pages(200) if far else []):
        guard.admit([{"h": h} for h in page], token=n)
    assert guard.admit([{"h": other}, {"h": other}], token=-2) == ([{"h": other}], None)
    assert guard.admit([{"h": held}, {"h": other}], token=-3)[0] == []
    assert guard._emitted.file_passes == (2 if far else 0)  # each answered by the file
    guard.close()


def test_the_key_set_answers_as_a_plain_set_would_through_collisions_spills_and_growth(
    monkeypatch: pytest.MonkeyPatch,
):
    """Few fingerprints and slots, so most lookups are doubtful; small windows and chunks,
    so the file, its chunks, the replayed stretch and the rebuilds all answer often."""
    for name, value in (("RECENT", 64), ("SPILL_AT", 50), ("REPLAY", 32), ("CHUNK", 64)):
        monkeypatch.setattr(KeyHashes, name, value)
    rng = random.Random(8)

    def value() -> int:
        top = rng.choice([0, 1, -3]) << 48
        return top | rng.randrange(64) << 20 | rng.randrange(16) | rng.choice([0, 1 << 40])

    table, plain = KeyHashes(16), set()
    for _ in range(200):
        batch = [value() for _ in range(rng.randrange(1, 120))]
        expected = []
        for n, held in enumerate(batch):
            if (held or 1) in plain:
                expected.append(n)
            plain.add(held or 1)
        assert table.add_new(batch) == expected
        assert len(table) == len(plain)
    assert all(held in table for held in rng.sample(sorted(plain), 200))
    outside = [held for held in (value() for _ in range(400)) if (held or 1) not in plain]
    assert outside and not any(held in table for held in outside)
    assert table.file_passes > 50


def test_a_list_serving_a_long_stretch_again_is_checked_against_the_file_once_not_a_page():
    pages = _random_pages(400)
    table = KeyHashes()
    for page in pages:
        table.add_new(page)
    for page in pages[10:60]:  # 5,000 rows read long ago, again, in order
        assert table.add_new(page) == list(range(100))
    assert table.file_passes == 1
    assert len(table) == 40_000


def test_a_million_keys_hold_a_few_megabytes_of_memory_not_sixteen():
    table = KeyHashes()
    table.reserve(1_000_000)
    for page in _random_pages(10_000, seed=3):
        table.add_new(page)
    assert len(table) == 1_000_000
    assert table.bytes_held() < 6 * 2**20  # the table of full hashes held 16 MiB
    table.close()
    assert len(table) == 0 and table.bytes_held() < 2**16


def test_without_a_temporary_file_the_hashes_stay_in_memory_and_still_tell_every_repeat(
    monkeypatch: pytest.MonkeyPatch,
):
    def no_file(*args, **kwargs):
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(pagination.tempfile, "TemporaryFile", no_file)
    pages = _random_pages(200)
    table = KeyHashes()
    for page in pages:
        assert table.add_new(page) == []
    assert table.add_new([pages[0][0], 12345, pages[150][7]]) == [0, 2]
    assert len(table) == 20_001 and table.file_passes == 0


def test_the_guards_temporary_file_is_closed_at_the_end_of_a_sync(
    httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch
):
    opened: list = []

    def temporary_file(*args, **kwargs):
        opened.append(real(*args, **kwargs))
        return opened[-1]

    real = pagination.tempfile.TemporaryFile
    monkeypatch.setattr(pagination.tempfile, "TemporaryFile", temporary_file)
    monkeypatch.setattr(KeyHashes, "SPILL_AT", 150)  # a file after the second page

    def handler(request: Request) -> Response:
        offset = int(request.args["offset"])
        rows = [_order(i) for i in range(offset, min(offset + 100, 500))]
        body = {"orders": rows, "total_count": 500}
        return Response(json.dumps(body), content_type="application/json")

    records = _sync_orders(httpserver, handler)
    assert sorted(r["id"] for r in records) == [f"ord-{i:05d}" for i in range(500)]
    assert opened and all(file.closed for file in opened)


def test_an_overlapped_sync_of_a_list_that_pages_falsely_emits_the_same_for_a_page_or_two_more(
    httpserver: HTTPServer,
):
    """Fetching ahead cannot know a page repeats before it comes: a list that ignores the
    offset, or cycles, costs overlapped a few requests more than sequential (fetching
    ahead starts one page ahead and doubles with each page that proves true), never a
    different record, never a loop."""
    calls: list = []
    records = _sync_orders(httpserver, _cycling([A, B], 100_000, calls), concurrent=8)
    assert sorted(r["id"] for r in records) == [f"ord-{i:05d}" for i in range(200)]
    assert calls[:3] == ["0", "100", "200"]
    assert len(calls) <= 3 + 2

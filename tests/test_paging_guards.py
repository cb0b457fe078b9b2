"""A misbehaving list never makes a tap loop or emit a record twice.

The sandbox follows the contract, so these cases use a hand-made server
(pytest-httpserver) that does what the contract warns real APIs may do.
"""

from __future__ import annotations

import json

from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from tap_rewards.tap import TapRewards
from tests.support import FAST_RETRIES, catalog_selecting, sync_in_process


def _order(i: int) -> dict:
    return {"id": f"ord-{i:05d}", "created_at": "2024-01-01T00:00:00Z", "status": "COMPLETED"}


def _sync_orders(httpserver: HTTPServer, handler) -> list[dict]:
    httpserver.expect_request("/v2/orders").respond_with_handler(handler)
    config = {"api_key": "k" * 12, "base_url": httpserver.url_for("").rstrip("/"), **FAST_RETRIES}
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

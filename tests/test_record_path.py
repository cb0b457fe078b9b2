"""The fast record path writes the same records as the SDK's own path, digit for digit."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from pytest_httpserver import HTTPServer

from taps_core.client import CollectionStream
from taps_core.records import Conformer
from tests.support import (
    FAST_RETRIES,
    TAPS,
    catalog_selecting,
    run_cli,
    sync_in_process,
    tap_case,
)

EXACT_NUMBERS = (
    '{"orders":[{"id":"o-1","created_at":"2024-01-01T00:00:00Z","status":"COMPLETE",'
    '"payment":{"subtotal":0.1,"total":12345678901234567890,"fees":0.1234567890123456789012345,'
    '"discount":1e-7,"currency_code":"USD"},"rewards":[]}],"total_count":1}'
)


@pytest.mark.parametrize("case", TAPS, ids=lambda case: case.name)
def test_fast_path_records_equal_the_sdk_path_records(case, shared, monkeypatch):
    fast = sync_in_process(case.tap_class, case.config(shared))
    with monkeypatch.context() as patch:
        patch.setattr(CollectionStream, "_fast_record_path", None)
        slow = sync_in_process(case.tap_class, case.config(shared))
    assert fast.streams == slow.streams
    for stream in fast.streams:
        assert fast.records(stream) == slow.records(stream), stream
        assert fast.records(stream), stream


def test_numbers_keep_every_digit(httpserver: HTTPServer, tmp_path):
    httpserver.expect_request("/v2/orders").respond_with_data(
        EXACT_NUMBERS, content_type="application/json"
    )
    case = tap_case("rewards")
    config = {"api_key": "k" * 12, "base_url": httpserver.url_for("").rstrip("/"), **FAST_RETRIES}
    catalog = catalog_selecting(case.tap_class, config, "orders")
    result = sync_in_process(case.tap_class, config, catalog=catalog)
    (line,) = [ln for ln in result.text.splitlines() if '"type":"RECORD"' in ln]
    payment = json.loads(line)["record"]["payment"]
    assert payment["total"] == 12345678901234567890
    assert '"subtotal":0.1,' in line
    assert '"total":12345678901234567890,' in line
    assert '"fees":0.1234567890123456789012345,' in line
    assert Decimal(line.split('"discount":')[1].split(",")[0]) == Decimal("1e-7")


def test_undeclared_properties_are_dropped_at_every_level_like_the_sdk():
    schema = {
        "properties": {
            "id": {"type": "string"},
            "flag": {"type": ["boolean", "null"]},
            "inner": {"type": ["object", "null"], "properties": {"a": {"type": "integer"}}},
            "items": {
                "type": "array",
                "items": {"type": "object", "properties": {"b": {"type": "boolean"}}},
            },
            "open": {"type": "object", "additionalProperties": True, "properties": {}},
        }
    }
    conform = Conformer(schema)
    record = {
        "id": "1",
        "flag": 1,
        "extra": 2,
        "inner": {"a": 1, "z": 0},
        "items": [{"b": 0, "c": 1}, None],
        "open": {"anything": 1},
    }
    assert conform(record) == {
        "id": "1",
        "flag": True,
        "inner": {"a": 1},
        "items": [{"b": False}, None],
        "open": {"anything": 1},
    }
    assert conform.unmapped == {"extra", "inner.z", "items.c"}


@pytest.mark.parametrize("unbuffered", ["1", ""], ids=["unbuffered-stdout", "buffered-stdout"])
def test_records_reach_stdout_before_the_state_that_covers_them(shared, tmp_path, unbuffered):
    case = tap_case("rewards")
    result = run_cli(
        case.executable, case.config(shared), tmp_path, env={"PYTHONUNBUFFERED": unbuffered}
    )
    assert result.returncode == 0, result.stderr[-2000:]
    messages = result.sync.messages
    for stream in shared.streams(case.api):
        kinds = [
            m["type"]
            for m in messages
            if m.get("stream") == stream
            or (m["type"] == "STATE" and stream in m["value"].get("bookmarks", {}))
        ]
        first_state = kinds.index("STATE")
        assert kinds[0] == "SCHEMA", stream
        assert "RECORD" not in kinds[first_state:], f"{stream}: a record after its state"
        assert kinds.count("RECORD") == len(shared.records(case.api, stream)), stream


def test_a_metric_line_per_request_only_when_debugging(shared, tmp_path):
    case = tap_case("rewards")
    quiet = run_cli(case.executable, case.config(shared), tmp_path, env={"LOGLEVEL": "INFO"})
    loud = run_cli(case.executable, case.config(shared), tmp_path, env={"LOGLEVEL": "DEBUG"})
    assert quiet.returncode == loud.returncode == 0
    assert "http_request_duration" not in quiet.stderr
    assert "http_request_count" not in quiet.stderr  # behind log_metrics (test_run_messages.py)
    assert loud.stderr.count("http_request_duration") >= 3

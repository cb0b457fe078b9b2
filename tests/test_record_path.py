"""The fast record path writes the same records as the SDK's own path, digit for digit."""

from __future__ import annotations

import contextlib
import copy
import io
import json
import logging
import re
import typing as t
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal

import pytest
from pytest_httpserver import HTTPServer
from singer_sdk.helpers._typing import conform_record_data_types
from singer_sdk.helpers.conform import TypeConformanceLevel
from singer_sdk.singerlib.json import serialize_json

from tap_rewards.streams import OrdersStream
from tap_rewards.tap import TapRewards
from taps_core.client import CollectionStream, load_schema
from taps_core.records import Conformer, RecordLine, UnsupportedSchemaError
from taps_core.records import stdout as records_stdout
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


# -- the SDK's own conformance and serialiser, case by case ------------------------------


def _fast_line(schema: dict, record: dict) -> bytes:
    """What the fast path writes for ``record``: the record part of its RECORD line."""
    buffer = io.BytesIO()
    out = io.TextIOWrapper(buffer, encoding="utf-8", write_through=True)
    conform = Conformer(schema)
    with contextlib.redirect_stdout(out):
        RecordLine("s").write(conform.encode(copy.deepcopy(record)))
        records_stdout.flush()
    return json.dumps(json.loads(buffer.getvalue())["record"]).encode()


def _sdk_line(schema: dict, record: dict) -> bytes:
    """What the SDK writes: its conformance, then its serialiser (simplejson)."""
    conformed = conform_record_data_types(
        "s", copy.deepcopy(record), schema, TypeConformanceLevel.RECURSIVE, QUIET
    )
    return json.dumps(json.loads(serialize_json(conformed))).encode()


QUIET = logging.getLogger("tests.record_path.sdk")
QUIET.disabled = True  # the SDK's warning about undeclared properties: not under test here
NAIVE = datetime(2024, 1, 31, 12, 0, 0)
UTC = datetime(2024, 1, 31, 12, 0, 0, 250, tzinfo=timezone.utc)
PLUS_FIVE = datetime(2024, 1, 31, 12, 0, 0, tzinfo=timezone(timedelta(hours=5)))
STRING, NUMBER = {"type": ["string", "null"]}, {"type": ["number", "null"]}
BOOLEAN = {"type": ["boolean", "null"]}
ANY_OF_BOOLEAN = {"anyOf": [{"type": "boolean"}, {"type": "null"}]}


def _object(**properties: dict) -> dict:
    return {"type": ["object", "null"], "properties": properties}


def _deep(depth: int) -> tuple[dict, dict]:
    """A schema ``depth`` objects deep (every third a list of them), and a record to fit."""
    schema, record = _object(leaf=BOOLEAN), {"leaf": 1, "undeclared": 1}
    for level in range(depth):
        if level % 3 == 2:
            schema = {"type": ["array", "null"], "items": schema}
            record = [record, None]
        schema, record = _object(child=schema, flag=BOOLEAN), {"child": record, "flag": 0, "x": 1}
    return {"properties": schema["properties"]}, record


CASES = {
    # 11: values a stream's own code makes
    "naive datetime": ({"at": STRING}, {"at": NAIVE}),
    "aware datetimes": ({"utc": STRING, "east": STRING}, {"utc": UTC, "east": PLUS_FIVE}),
    "date, time, timedelta": (
        {"day": STRING, "clock": STRING, "span": STRING},
        {"day": date(2024, 1, 31), "clock": time(12, 30), "span": timedelta(seconds=90)},
    ),
    "Decimal NaN and infinities": (
        {"a": NUMBER, "b": NUMBER, "c": NUMBER, "d": NUMBER},
        {"a": Decimal("NaN"), "b": Decimal("Infinity"), "c": Decimal("-Infinity"), "d": 1},
    ),
    "Decimal NaN at a boolean": ({"flag": BOOLEAN}, {"flag": Decimal("NaN")}),
    "float NaN and floats": ({"a": NUMBER, "b": NUMBER}, {"a": float("nan"), "b": 0.25}),
    "datetimes nested": (
        {"o": _object(at=STRING), "l": {"type": "array", "items": STRING}},
        {"o": {"at": NAIVE, "x": 1}, "l": [NAIVE, None]},
    ),
    "datetimes where the SDK does not conform": (
        {
            "open": {"type": "object"},
            "more": {"type": "object", "additionalProperties": True, "properties": {}},
        },
        {"open": {"at": NAIVE, "utc": UTC}, "more": {"utc": UTC}},
    ),
    "bytes": ({"flag": BOOLEAN, "raw": STRING}, {"flag": b"\x00", "raw": b"\x01\x02"}),
    # 12: what the compiled conformer reads in a schema
    "anyOf boolean": ({"flag": ANY_OF_BOOLEAN}, {"flag": 1}),
    "numbers at a boolean": (
        {"a": BOOLEAN, "b": BOOLEAN, "c": BOOLEAN, "d": BOOLEAN},
        {"a": Decimal("0.5"), "b": 0, "c": "no", "d": Decimal("0")},
    ),
    "booleans in a list": (
        {"l": {"type": "array", "items": BOOLEAN}},
        {"l": [1, 0, None, True, Decimal("2.5"), "x"]},
    ),
    "object or array, a list": (
        {
            "p": {
                "type": ["object", "array", "null"],
                "properties": {"b": BOOLEAN},
                "items": _object(b=BOOLEAN),
            }
        },
        {"p": [{"b": 1, "x": 1}, {"b": 0}]},
    ),
    "object or array, an object": (
        {
            "p": {
                "type": ["object", "array", "null"],
                "properties": {"b": BOOLEAN},
                "items": _object(b=BOOLEAN),
            }
        },
        {"p": {"b": 1, "x": 1}},
    ),
    "anyOf object": (
        {"p": {"anyOf": [_object(b=BOOLEAN), {"type": "null"}]}},
        {"p": {"b": 1, "x": 1}},
    ),
    "99 levels deep": _deep(99),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_the_fast_path_writes_what_the_sdk_writes(case):
    properties, record = CASES[case]
    schema = {"type": "object", "properties": properties}
    if "properties" in properties:  # _deep gives the properties' own mapping
        schema = {"type": "object", **properties}
    assert _fast_line(schema, record) == _sdk_line(schema, record)


def test_a_schema_the_sdk_cannot_conform_a_list_for_takes_the_sdk_path():
    with pytest.raises(UnsupportedSchemaError):
        Conformer({"properties": {"p": {"description": "no type at all"}}})


# -- end to end: a tap whose streams make such values, fast path against SDK path ---------


def _with_properties(extra: dict, drop_nested: str | None = None) -> dict:
    schema = load_schema(OrdersStream.schemas_dir / "orders.json")
    schema["properties"].update(extra)
    if drop_nested:
        parent, child = drop_nested.split(".")
        del schema["properties"][parent]["properties"][child]
    return schema


class MadeValuesOrders(OrdersStream):
    """Orders with values a stream's ``post_process`` makes, as bookings' will."""

    name = "made_values"

    def __init__(self, tap: t.Any, **kwargs: t.Any) -> None:
        extra = {
            "seen_at": {"type": ["string", "null"], "format": "date-time"},
            "score": NUMBER,
            "maybe": ANY_OF_BOOLEAN,
            "half": BOOLEAN,
        }
        super().__init__(tap, schema=_with_properties(extra), **kwargs)

    @property
    def path(self) -> str:
        return "/v2/orders"

    def post_process(self, row: dict, context: t.Any = None) -> dict | None:
        row = dict(row, seen_at=NAIVE, score=Decimal("NaN"), maybe=1, half=Decimal("0.5"))
        if row["id"].endswith("1"):
            row["seen_at"], row["score"] = UTC, Decimal("1.5")
        return row


class RootOnlyOrders(OrdersStream):
    """Orders conformed at the top level only: nested undeclared properties stay."""

    name = "root_only"
    TYPE_CONFORMANCE_LEVEL = TypeConformanceLevel.ROOT_ONLY

    def __init__(self, tap: t.Any, **kwargs: t.Any) -> None:
        super().__init__(tap, schema=_with_properties({}, drop_nested="payment.fees"), **kwargs)


class MadeValuesTap(TapRewards):
    stream_types: t.ClassVar[list[type[OrdersStream]]] = [MadeValuesOrders]


class RootOnlyTap(TapRewards):
    stream_types: t.ClassVar[list[type[OrdersStream]]] = [RootOnlyOrders]


def _fast_and_sdk_paths(tap_class: type, shared: t.Any, monkeypatch: t.Any) -> tuple:
    config = tap_case("rewards").config(shared)
    fast = sync_in_process(tap_class, config)
    with monkeypatch.context() as patch:
        patch.setattr(CollectionStream, "_fast_record_path", None)
        slow = sync_in_process(tap_class, config)
    return fast, slow


def test_values_a_stream_makes_are_written_as_the_sdk_path_writes_them(shared, monkeypatch):
    fast, slow = _fast_and_sdk_paths(MadeValuesTap, shared, monkeypatch)
    made = fast.records("made_values")
    assert made
    assert made == slow.records("made_values")
    assert {r["seen_at"] for r in made} == {
        "2024-01-31T12:00:00.000000+00:00",
        "2024-01-31T12:00:00.000250+00:00",
    }
    assert {r["score"] for r in made} == {None, Decimal("1.5")}
    assert {r["maybe"] for r in made} == {1}
    assert {r["half"] for r in made} == {Decimal("0.5")}


def test_the_streams_type_conformance_level_is_honoured(shared, monkeypatch):
    fast, slow = _fast_and_sdk_paths(RootOnlyTap, shared, monkeypatch)
    records = fast.records("root_only")
    assert records
    assert records == slow.records("root_only")
    assert all("fees" in r["payment"] for r in records if r["payment"]), "ROOT_ONLY keeps them"


def _deselecting_one_field_and_one_nested(case: t.Any, config: dict) -> tuple[dict, dict]:
    """The catalog with, in every stream, its first non-key property deselected, and the
    first property of its first nested object; and what was deselected, by stream."""
    catalog = case.tap_class(config=config).catalog_dict
    dropped: dict[str, list[tuple[str, ...]]] = {}
    for entry in catalog["streams"]:
        keys = set(entry.get("key_properties") or ()) | {entry.get("replication_key")}
        properties = entry["schema"]["properties"]
        top = next(name for name in properties if name not in keys)
        paths = [(top,)]
        for name, sub in properties.items():
            inner = sub.get("properties") if name not in keys and name != top else None
            if inner:
                paths.append((name, next(iter(inner))))
                break
        dropped[entry["tap_stream_id"]] = paths
        crumbs = {tuple(part for name in path for part in ("properties", name)) for path in paths}
        for md in entry["metadata"]:
            if tuple(md["breadcrumb"]) in crumbs:
                md["metadata"]["selected"] = False
    return catalog, dropped


@pytest.mark.parametrize("case", TAPS, ids=lambda case: case.name)
def test_deselected_fields_are_pruned_on_the_fast_path_as_the_sdk_prunes_them(
    case, shared, monkeypatch
):
    """Deselection keeps the fast path (no fallback), and writes what the SDK's writes."""
    config = case.config(shared)
    catalog, dropped = _deselecting_one_field_and_one_nested(case, config)
    paths_taken: list[bool] = []
    fast_path = CollectionStream._fast_record_path

    def spy(stream: CollectionStream) -> t.Any:
        taken = fast_path.func(stream)
        paths_taken.append(taken is not None)
        return taken

    with monkeypatch.context() as patch:
        patch.setattr(CollectionStream, "_fast_record_path", property(spy))
        fast = sync_in_process(case.tap_class, config, catalog=catalog)
    assert paths_taken and all(paths_taken), "a deselected field sent a stream to the SDK path"
    with monkeypatch.context() as patch:
        patch.setattr(CollectionStream, "_fast_record_path", None)
        slow = sync_in_process(case.tap_class, config, catalog=catalog)
    assert fast.streams == slow.streams
    for stream in fast.streams:
        records = fast.records(stream)
        assert records == slow.records(stream), stream
        for path in dropped[stream]:
            for record in records:
                parent = record
                for name in path[:-1]:
                    parent = parent.get(name) if isinstance(parent, dict) else None
                assert not isinstance(parent, dict) or path[-1] not in parent, (stream, path)


def test_time_extracted_has_one_format_whichever_path_wrote_the_record(shared):
    """The SDK's path (here: flattening) and the fast one write the same form: UTC, to
    the second, ``+00:00``; a target parsing one parses the other."""
    config = tap_case("rewards").config(shared)
    catalog = catalog_selecting(TapRewards, config, "orders")
    stamp = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00")
    for overrides in ({}, {"flattening_enabled": True, "flattening_max_depth": 1}):
        result = sync_in_process(TapRewards, {**config, **overrides}, catalog=catalog)
        stamps = {m["time_extracted"] for m in result.messages if m["type"] == "RECORD"}
        assert stamps, overrides
        assert all(stamp.fullmatch(s) for s in stamps), (overrides, sorted(stamps)[:3])

"""Schema drift at its edges: values and names the sandbox's four drift fields never send.

A drift here is the sandbox's own switch with chosen values (``Sequence``): record
``start + i`` of the stream gains ``values[i]``, served over HTTP and carried by ground
truth, so every check compares what the tap wrote with what the API sent.
"""

from __future__ import annotations

import json
import logging
import typing as t
from dataclasses import dataclass

import pytest

from api_sandbox import Sandbox
from api_sandbox.drift import Drift
from taps_core.drift import MAX_DEPTH, SchemaDrift, fits, infer, widen
from tests.support import catalog_selecting, sync_in_process, tap_case

REWARDS = tap_case("rewards")
STREAM = "rewards"  # 20 records, full table, read as the API sends them

#: The record paths: the fast one, and the SDK's (flattening needs it).
PATHS = {"fast": {}, "sdk": {"flattening_enabled": True, "flattening_max_depth": 1}}


@dataclass(frozen=True)
class Sequence(Drift):
    """The record at ``start + i`` gains ``values[i]`` (JSON text: the dataclass is frozen)."""

    values_json: tuple[str, ...] = ()

    def values(self, index: int) -> dict[str, t.Any]:
        position = index - self.start
        if 0 <= position < len(self.values_json):
            return json.loads(self.values_json[position])
        return {}


def _sync(values: list[dict], **settings: t.Any) -> tuple[list[dict], list[dict], list[dict]]:
    """The stream synced with ``values`` drifting in: (records, ground truth, messages)."""
    drift = Sequence("rewards", STREAM, 0, None, tuple(json.dumps(v) for v in values))
    with Sandbox(seed=42, drifts=[drift]) as sandbox:
        config = REWARDS.config(sandbox, **settings)
        catalog = catalog_selecting(REWARDS.tap_class, config, STREAM)
        result = sync_in_process(REWARDS.tap_class, config, catalog=catalog)
        truth = sandbox.records("rewards", STREAM)
    return result.records(STREAM), truth, result.messages


def _typed(value: t.Any) -> str:
    """``value`` as JSON text: ``True`` and ``1`` differ (they are equal in Python)."""
    return json.dumps(value, default=str)


@pytest.mark.parametrize("path", PATHS, ids=str)
def test_a_boolean_field_that_then_sends_integers_keeps_the_integers(path):
    values = [{"flag": True}, {"flag": 5}, {"flag": 0}, {"flag": False}]
    records, truth, messages = _sync(values, **PATHS[path])
    sent = [_typed(r.get("flag")) for r in truth[: len(values)]]
    assert [_typed(r.get("flag")) for r in records[: len(values)]] == sent
    final = [m for m in messages if m["type"] == "SCHEMA"][-1]
    assert final["schema"]["properties"]["flag"]["type"] == ["boolean", "integer", "null"]


def test_a_property_named_like_a_list_step_is_declared_and_kept():
    values = [{"[]": 1}, {"[]": "x", "box": {"[]": [{"[]": True}]}}]
    records, truth, _ = _sync(values)
    for record, sent in zip(records[: len(values)], truth, strict=False):
        assert {k: record.get(k) for k in ("[]", "box")} == {k: sent.get(k) for k in ("[]", "box")}


def test_a_new_key_inside_an_inferred_object_or_list_item_gets_its_own_warning(caplog):
    values = [
        {"extra": {"a": 1}, "rows": [{"a": 1}]},
        {"extra": {"a": 2, "b": "x"}, "rows": [{"a": 2, "c": True}]},
    ]
    with caplog.at_level(logging.WARNING):
        records, truth, _ = _sync(values)
    assert records[1]["extra"] == truth[1]["extra"] and records[1]["rows"] == truth[1]["rows"]
    new = [r.getMessage() for r in caplog.records if "new property" in r.getMessage()]
    named = sorted(line.split()[4] for line in new)
    assert named == ["extra", "extra.b", "rows", "rows.c"], new


def test_a_property_name_with_a_line_break_cannot_forge_a_log_line(caplog):
    name = "evil\n2026-01-01 00:00:00 | ERROR | forged"
    logger = logging.getLogger("tests.drift.names")
    drift = SchemaDrift("orders", {"type": "object", "properties": {}}, "evolve", logger)
    with caplog.at_level(logging.WARNING, logger="tests.drift.names"):
        assert drift.evolve({name: 1, "ok": {name: 2}})
        SchemaDrift("orders", {"properties": {}}, "drop", logger).dropped([name])
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 3, lines
    assert not any("\n" in line for line in lines), lines
    assert "forged" in lines[0] and "forged" in lines[2], "the name is shown, escaped"
    fail = SchemaDrift("orders", {"properties": {}}, "fail", logger)
    message = fail.fail_message("tap-x", fail.new_properties({name: 1}))
    assert "\n" not in message and "\\n" in message, message


@pytest.mark.parametrize("path", PATHS, ids=str)
def test_the_amended_schema_leaves_out_what_the_catalog_deselects(path):
    drift = Sequence("rewards", STREAM, 0, None, (json.dumps({}), json.dumps({"added": 1})))
    with Sandbox(seed=42, drifts=[drift]) as sandbox:
        config = REWARDS.config(sandbox, **PATHS[path])
        catalog = catalog_selecting(REWARDS.tap_class, config, STREAM)
        entry = next(e for e in catalog["streams"] if e["tap_stream_id"] == STREAM)
        for breadcrumb in (
            ["properties", "value"],
            ["properties", "recipient", "properties", "email"],
        ):
            entry["metadata"].append({"breadcrumb": breadcrumb, "metadata": {"selected": False}})
        messages = sync_in_process(REWARDS.tap_class, config, catalog=catalog).messages
    schemas = [m["schema"] for m in messages if m["type"] == "SCHEMA"]
    assert len(schemas) == 2 and "added" in schemas[-1]["properties"]
    for schema in schemas:
        assert not any(name.startswith("value") for name in schema["properties"]), schema
        assert "email" not in json.dumps(schema), "recipient.email is deselected"


@pytest.mark.parametrize("path", PATHS, ids=str)
def test_drop_warns_once_a_field_on_either_record_path(path, caplog):
    values = [{"a": 1}, {"a": 2, "b": {"c": 3}}, {"b": {"c": 4, "d": 5}}]
    with caplog.at_level(logging.WARNING):
        records, _, _ = _sync(values, schema_drift="drop", **PATHS[path])
    assert not any({"a", "b", "b__c", "b__d"} & set(r) for r in records)
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert sorted(lines) == [
        f"Stream {STREAM}: property {name} is not in the schema; dropped (schema_drift is drop)."
        for name in ("a", "b")
    ], lines


@pytest.mark.parametrize("path", PATHS, ids=str)
def test_a_new_field_nested_far_deeper_than_any_schema_is_kept_without_a_traceback(path):
    deep: t.Any = 1
    for _ in range(250):  # as deep as the sandbox's JSON encoder serves
        deep = {"k": deep}
    records, truth, messages = _sync([{"deep": deep}, {"deep": {"k": "flat now"}}], **PATHS[path])
    if path == "fast":
        assert [r["deep"] for r in records[:2]] == [t["deep"] for t in truth[:2]]
    else:  # flattened one level: the rest as JSON text
        assert [json.loads(r["deep__k"]) for r in records[:1]] == [truth[0]["deep"]["k"]]
        assert records[1]["deep__k"] == "flat now"
    assert len(records) == len(truth)
    declared = [m["schema"]["properties"] for m in messages if m["type"] == "SCHEMA"][-1]
    assert "deep" in declared or "deep__k" in declared


def test_a_capped_schema_takes_any_content_and_stays_open_when_widened():
    capped = infer({"a": {"b": [1]}}, MAX_DEPTH)
    assert capped == {"type": ["object", "null"]}
    assert fits({"anything": [{"x": True}]}, capped), "no new-key churn below the cap"
    assert widen(capped, infer({"a": 1})) == {"type": ["object", "null"]}
    assert widen(infer([1], MAX_DEPTH), infer(["x"])) == {"type": ["array", "null"]}

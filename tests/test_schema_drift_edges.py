"""Schema drift at its edges: values and names the sandbox's four drift fields never send.

A drift here is the sandbox's own switch with chosen values (``Sequence``): record
``start + i`` of the stream gains ``values[i]``, served over HTTP and carried by ground
truth, so every check compares what the tap wrote with what the API sent.
"""

from __future__ import annotations

import json
import typing as t
from dataclasses import dataclass

import pytest

from api_sandbox import Sandbox
from api_sandbox.drift import Drift
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

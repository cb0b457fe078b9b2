"""The SDK's stream maps and flattening work on every tap, compared with the unmapped output.

Maps and flattening take the SDK's record path (the fast path steps aside for them), so
this is where a tap that broke the SDK's contract for records would show.
"""

from __future__ import annotations

import hashlib
import json
import typing as t
from decimal import Decimal

import pytest

from tests.support import TAPS, TapCase, catalog_selecting, sync_in_process


def _pick(case: TapCase, sandbox: t.Any) -> tuple[str, str, str]:
    """A stream with records, a text field to hash (an e-mail where there is one), one to drop."""
    tap = case.tap_class(config=case.config(sandbox))
    for name, stream in tap.streams.items():
        truth = sandbox.records(case.api, name)
        if not truth or not stream.primary_keys:
            continue
        keys = set(stream.primary_keys) | {stream.replication_key}
        texts = [
            f
            for f in stream.schema["properties"]
            if f not in keys and all(isinstance(r.get(f), str) for r in truth)
        ]
        if len(texts) >= 2:
            emails = [f for f in texts if "mail" in f.lower()]
            hashed = emails[0] if emails else texts[0]
            dropped = next(f for f in texts if f != hashed)
            return name, hashed, dropped
    raise AssertionError(f"{case.name}: no stream with two text fields")


@pytest.mark.parametrize("case", TAPS, ids=lambda case: case.name)
def test_stream_maps_rename_drop_and_hash_like_the_unmapped_output(case, shared):
    stream, hashed, dropped = _pick(case, shared)
    config = case.config(shared)
    catalog = catalog_selecting(case.tap_class, config, stream)
    plain = sync_in_process(case.tap_class, config, catalog=catalog).records(stream)
    maps = {
        stream: {
            "__alias__": f"{stream}_mapped",
            dropped: None,
            f"{hashed}_hash": f"md5({hashed})",
        }
    }
    mapped_run = sync_in_process(case.tap_class, {**config, "stream_maps": maps}, catalog=catalog)
    assert mapped_run.records(stream) == []
    mapped = mapped_run.records(f"{stream}_mapped")
    assert len(mapped) == len(plain)
    for before, after in zip(plain, mapped, strict=True):
        assert dropped not in after
        assert after[f"{hashed}_hash"] == hashlib.md5(before[hashed].encode()).hexdigest()
        rest = {k: v for k, v in before.items() if k != dropped}
        assert {k: v for k, v in after.items() if k != f"{hashed}_hash"} == rest


@pytest.mark.parametrize("case", TAPS, ids=lambda case: case.name)
def test_flattening_spreads_nested_objects_into_columns_with_the_same_values(case, shared):
    config = case.config(shared)
    plain = sync_in_process(case.tap_class, config)
    flat = sync_in_process(
        case.tap_class, {**config, "flattening_enabled": True, "flattening_max_depth": 1}
    )
    compared = 0
    tap = case.tap_class(config=config)
    for stream in shared.streams(case.api):
        before, after = plain.records(stream), flat.records(stream)
        assert len(before) == len(after), stream
        declared = tap.streams[stream].schema["properties"]
        for b, a in zip(before, after, strict=True):
            for name, value in b.items():
                if isinstance(value, dict) and not declared[name].get("properties"):
                    # Free-form (custom fields): no columns to spread into, one JSON text.
                    assert json.loads(a[name], parse_float=Decimal) == value, f"{stream}.{name}"
                elif isinstance(value, dict) and value:
                    assert name not in a, f"{stream}.{name} was not flattened"
                    for key, inner in value.items():
                        if not isinstance(inner, (dict, list)):
                            assert a[f"{name}__{key}"] == inner, f"{stream}.{name}.{key}"
                            compared += 1
                elif not isinstance(value, (dict, list)):
                    assert a[name] == value, f"{stream}.{name}"
    if compared == 0:
        pytest.skip(f"{case.name}: no record has a nested object to flatten")

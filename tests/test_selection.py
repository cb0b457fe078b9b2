"""Catalog selection, both ways a user takes: a Singer catalog file and Meltano's ``select``.

An unselected stream costs nothing (no request, no SCHEMA); a deselected field never
reaches the target, while primary and replication keys stay, as the Singer spec says.
"""

from __future__ import annotations

import json
import typing as t

import pytest

from tests.support import TAPS, TapCase, meltano_run, run_cli


def _catalog(case: TapCase, config: dict) -> dict:
    return case.tap_class(config=config).catalog_dict


def _select(catalog: dict, streams: set[str], drop: dict[str, set[str]] | None = None) -> dict:
    """Select ``streams`` only; in them, deselect the fields in ``drop``."""
    drop = drop or {}
    for entry in catalog["streams"]:
        name = entry["tap_stream_id"]
        for md in entry["metadata"]:
            crumb = md["breadcrumb"]
            if crumb == []:
                md["metadata"]["selected"] = name in streams
            elif len(crumb) == 2 and crumb[1] in drop.get(name, set()):
                md["metadata"]["selected"] = False
    return catalog


def _stream_with_its_own_path(case: TapCase, config: dict) -> t.Any:
    """A stream no other stream shares a path with, and which is nobody's parent."""
    streams = case.tap_class(config=config).streams.values()
    paths = [s.path for s in streams]
    parents = {s.parent_stream_type for s in streams if s.parent_stream_type}
    for stream in streams:
        if paths.count(stream.path) == 1 and type(stream) not in parents:
            return stream
    return None


def _run_with_catalog(case: TapCase, sandbox: t.Any, tmp_path, catalog: dict):
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps(catalog))
    return run_cli(case.executable, case.config(sandbox), tmp_path, "--catalog", str(path))


def _data_requests(sandbox: t.Any, case: TapCase) -> list:
    return [r for r in sandbox.requests if r.api == case.api and "token" not in r.path]


@pytest.mark.parametrize("case", TAPS, ids=lambda case: case.name)
def test_a_catalog_with_nothing_selected_sends_no_request_and_writes_no_schema(
    case, sandbox, tmp_path
):
    catalog = _select(_catalog(case, case.config(sandbox)), set())
    sandbox.clear_requests()
    result = _run_with_catalog(case, sandbox, tmp_path, catalog)
    assert result.returncode == 0, result.stderr[-2000:]
    assert not _data_requests(sandbox, case)
    assert not result.sync.schemas


@pytest.mark.parametrize("case", TAPS, ids=lambda case: case.name)
def test_one_selected_stream_is_all_that_is_requested_and_written(case, sandbox, tmp_path):
    config = case.config(sandbox)
    stream = _stream_with_its_own_path(case, config)
    if stream is None:
        pytest.skip(f"{case.name}: every stream shares its path with another")
    catalog = _select(_catalog(case, config), {stream.name})
    sandbox.clear_requests()
    result = _run_with_catalog(case, sandbox, tmp_path, catalog)
    assert result.returncode == 0, result.stderr[-2000:]
    requests = _data_requests(sandbox, case)
    assert requests, "the selected stream was not read"
    assert {r.path for r in requests} == {stream.path}
    assert set(result.sync.schemas) == {stream.name}
    assert len(result.sync.records(stream.name)) == len(sandbox.records(case.api, stream.name))


@pytest.mark.parametrize("case", TAPS, ids=lambda case: case.name)
def test_a_deselected_field_never_reaches_the_target_but_keys_stay(case, shared, tmp_path):
    config = case.config(shared)
    tap = case.tap_class(config=config)
    name, stream = next(
        (n, s) for n, s in tap.streams.items() if shared.records(case.api, n) and s.primary_keys
    )
    keys = set(stream.primary_keys) | ({stream.replication_key} - {None})
    truth = shared.records(case.api, name)
    field = next(f for f in truth[0] if f not in keys and f in stream.schema["properties"])
    catalog = _select(_catalog(case, config), {name}, drop={name: {field, *keys}})
    result = _run_with_catalog(case, shared, tmp_path, catalog)
    assert result.returncode == 0, result.stderr[-2000:]
    records = result.sync.records(name)
    assert len(records) == len(truth)
    assert all(field not in r for r in records), f"{field} was deselected"
    assert all(keys <= set(r) for r in records), "primary and replication keys stay"
    assert field not in result.sync.schemas[name]["schema"]["properties"]


@pytest.mark.parametrize("case", TAPS, ids=lambda case: case.name)
def test_meltano_select_reads_only_the_selected_stream_without_the_excluded_field(
    case, sandbox, tmp_path
):
    config = case.config(sandbox)
    stream = _stream_with_its_own_path(case, config) or next(
        s for s in case.tap_class(config=config).streams.values() if s.primary_keys
    )
    truth = sandbox.records(case.api, stream.name)
    keys = set(stream.primary_keys) | ({stream.replication_key} - {None})
    field = next((f for f in (truth[0] if truth else {}) if f not in keys), None)
    rules = [f"{stream.name}.*"] + ([f"!{stream.name}.{field}"] if field else [])
    prefix = case.name.upper().replace("-", "_")
    out = tmp_path / "jsonl"
    out.mkdir()
    sandbox.clear_requests()
    proc = meltano_run(
        case,
        sandbox,
        tmp_path,
        "target-jsonl",
        **{f"{prefix}__SELECT": json.dumps(rules), "TARGET_JSONL_DESTINATION_PATH": str(out)},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert [p.name for p in out.iterdir()] == ([f"{stream.name}.jsonl"] if truth else [])
    if truth:
        rows = [
            json.loads(line) for line in (out / f"{stream.name}.jsonl").read_text().splitlines()
        ]
        assert len(rows) == len(truth)
        assert field is None or all(field not in r for r in rows)
    if _stream_with_its_own_path(case, config) is stream:
        assert {r.path for r in _data_requests(sandbox, case)} <= {stream.path}

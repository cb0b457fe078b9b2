"""The contract every tap keeps: a full sync emits the sandbox's data, every row once."""

from __future__ import annotations

import pytest

from tests.support import TAPS, assert_matches_ground_truth, sync_in_process


@pytest.fixture(scope="module", params=TAPS, ids=lambda case: case.name)
def full_sync(request, shared):
    case = request.param
    return case, sync_in_process(case.tap_class, case.config(shared)), shared


def test_full_sync_emits_every_sandbox_record_exactly_once(full_sync):
    case, result, sandbox = full_sync
    streams = sandbox.streams(case.api)
    assert streams, "the sandbox serves no streams"
    for stream in streams:
        assert_matches_ground_truth(
            case, stream, result.records(stream), sandbox.records(case.api, stream)
        )


def test_every_stream_of_the_tap_is_served_by_the_sandbox(full_sync):
    case, result, sandbox = full_sync
    tap_streams = set(case.tap_class(config=case.config(sandbox)).streams)
    assert tap_streams == set(sandbox.streams(case.api))
    assert set(result.schemas) == tap_streams


def test_each_record_holds_every_field_the_api_sends(full_sync):
    """The SDK drops properties missing from a schema: nothing may be dropped."""
    case, result, sandbox = full_sync
    for stream in sandbox.streams(case.api):
        truth = sandbox.records(case.api, stream)
        emitted = result.records(stream)
        sent = {k for r in truth for k in r}
        kept = {k for r in emitted for k in r}
        assert sent <= kept, f"{stream}: dropped {sorted(sent - kept)}"

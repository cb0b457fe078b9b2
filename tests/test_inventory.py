"""tap-inventory against the sandbox: one token a sync, organization_id, page ends, state."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from api_sandbox import Fault, Sandbox
from tests.support import (
    assert_matches_ground_truth,
    catalog_selecting,
    run_cli,
    sync_in_process,
    tap_case,
)

INVENTORY = tap_case("inventory")
TOKEN_PATH = "/oauth/v2/token"
ORG = "60012345"


def _instant(value: str) -> datetime:
    """A timestamp of the API (``+0530``) or of a bookmark (``+00:00``, ``Z``) as an instant."""
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(timezone.utc)


def _token_requests(sandbox: Sandbox) -> list:
    return [r for r in sandbox.requests if r.path == TOKEN_PATH]


def _data_requests(sandbox: Sandbox) -> list:
    return [r for r in sandbox.requests if r.api == "inventory" and r.path != TOKEN_PATH]


def _assert_every_stream_matches(sandbox: Sandbox, result) -> None:
    for stream in sandbox.streams("inventory"):
        assert_matches_ground_truth(
            INVENTORY, stream, result.records(stream), sandbox.records("inventory", stream)
        )


def test_one_token_serves_the_whole_sync(sandbox):
    result = sync_in_process(INVENTORY.tap_class, INVENTORY.config(sandbox))
    _assert_every_stream_matches(sandbox, result)
    assert len(_token_requests(sandbox)) == 1
    assert sandbox.requests[0].path == TOKEN_PATH
    assert {r.status for r in _data_requests(sandbox)} == {200}
    assert len({r.path for r in _data_requests(sandbox)}) == 13


def test_a_token_that_expires_mid_sync_is_replaced_once_and_every_row_arrives(sandbox):
    sandbox.add_fault(Fault("token_expiry", api="inventory", after=6, times=1))
    # One at a time: overlapped, every request in flight with the revoked token gets
    # its 401 (one new token for them all: tests/test_overlap.py).
    config = INVENTORY.config(sandbox, max_concurrent_requests=1)
    result = sync_in_process(INVENTORY.tap_class, config)
    _assert_every_stream_matches(sandbox, result)
    assert len(_token_requests(sandbox)) == 2
    data = _data_requests(sandbox)
    refused = [i for i, r in enumerate(data) if r.status == 401]
    assert len(refused) == 1 and data[refused[0]].fault == "token_expiry"
    replay = data[refused[0] + 1]
    assert (replay.path, replay.query, replay.status) == (
        data[refused[0]].path,
        data[refused[0]].query,
        200,
    )


def test_organization_id_goes_on_every_request_but_organizations():
    with Sandbox(seed=42, options={"inventory": {"organization_id": ORG}}) as sandbox:
        result = sync_in_process(
            INVENTORY.tap_class, INVENTORY.config(sandbox, organization_id=ORG)
        )
        _assert_every_stream_matches(sandbox, result)
        data = _data_requests(sandbox)
        for request in data:
            expected = None if request.path == "/organizations" else [ORG]
            assert request.query.get("organization_id") == expected, request.path
        assert "/organizations" in {r.path for r in data}


def test_without_organization_id_an_organization_scoped_api_refusal_is_one_clear_error(
    tmp_path,
):
    with Sandbox(seed=42, options={"inventory": {"organization_id": ORG}}) as sandbox:
        result = run_cli(INVENTORY.executable, INVENTORY.config(sandbox), tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if "| ERROR" in line]
    assert len(errors) == 1, result.stderr[-3000:]
    assert "400 Bad Request" in errors[0] and "organization_id" in errors[0]


def test_paging_stops_at_has_more_page_false_and_warehouses_is_one_request(sandbox):
    sync_in_process(INVENTORY.tap_class, INVENTORY.config(sandbox))
    assert sandbox.engine.api("inventory").violations == []
    pages: dict[str, list] = {}
    for request in _data_requests(sandbox):
        pages.setdefault(request.path, []).append(request.query)
    assert [q["page"] for q in pages["/items"]] == [["1"], ["2"], ["3"]]  # 450 rows
    assert [q["page"] for q in pages["/contacts"]] == [["1"], ["2"]]  # 400: a page multiple
    assert [q["page"] for q in pages["/salesorders"]] == [["1"]]  # exactly 200
    assert [q["page"] for q in pages["/creditnotes"]] == [["1"]]  # empty
    assert all(
        q["per_page"] == ["200"]
        for p, qs in pages.items()
        if p != "/settings/warehouses"
        for q in qs
    )
    assert pages["/settings/warehouses"] == [{}]


def test_a_second_sync_reads_only_items_modified_since_its_bookmark(sandbox):
    config = INVENTORY.config(sandbox)
    catalog = catalog_selecting(INVENTORY.tap_class, config, "items")
    first = sync_in_process(INVENTORY.tap_class, config, catalog=catalog)
    truth = sandbox.records("inventory", "items")
    bookmark = first.last_state["bookmarks"]["items"]["replication_key_value"]
    assert _instant(bookmark) == max(_instant(r["last_modified_time"]) for r in truth)
    assert bookmark.endswith("+00:00")  # the UTC form: strings order as instants

    changed = set(sandbox.mutate("inventory", "items", new=2, modified=3))
    sandbox.clear_requests()
    second = sync_in_process(INVENTORY.tap_class, config, catalog=catalog, state=first.last_state)

    truth = sandbox.records("inventory", "items")
    emitted = {r["item_id"] for r in second.records("items")}
    at_or_after = {
        r["item_id"] for r in truth if _instant(r["last_modified_time"]) >= _instant(bookmark)
    }
    assert emitted == at_or_after
    assert changed <= emitted and len(changed) == 5
    assert len(emitted - changed) <= 1  # the bookmark's own record: "at or after" includes it
    (sent,) = [r.query["last_modified_time"] for r in _data_requests(sandbox)]
    assert _instant(sent[0].replace("+0000", "+00:00")) == _instant(bookmark)
    new_bookmark = second.last_state["bookmarks"]["items"]["replication_key_value"]
    assert _instant(new_bookmark) == max(_instant(r["last_modified_time"]) for r in truth)


def test_start_date_in_utc_selects_items_by_instant_not_by_text(sandbox):
    truth = sandbox.records("inventory", "items")
    stamps = sorted(_instant(r["last_modified_time"]) for r in truth)
    cutoff = stamps[len(stamps) // 2]
    config = INVENTORY.config(sandbox, start_date=cutoff.strftime("%Y-%m-%dT%H:%M:%SZ"))
    catalog = catalog_selecting(INVENTORY.tap_class, config, "items")
    result = sync_in_process(INVENTORY.tap_class, config, catalog=catalog)
    assert {r["item_id"] for r in result.records("items")} == {
        r["item_id"] for r in truth if _instant(r["last_modified_time"]) >= cutoff
    }


@pytest.mark.parametrize("loglevel", ["INFO", "DEBUG"])
def test_a_revoked_refresh_token_fails_at_once_in_one_line_without_secrets(
    sandbox, tmp_path, loglevel
):
    sandbox.engine.api("inventory").revoke_refresh_token()
    config = INVENTORY.config(sandbox)
    result = run_cli(INVENTORY.executable, config, tmp_path, env={"LOGLEVEL": loglevel})
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if "| ERROR" in line]
    assert len(errors) == 1, result.stderr[-3000:]
    assert "400 Bad Request" in errors[0] and "refresh token is invalid or revoked" in errors[0]
    for name in ("client_id", "client_secret", "refresh_token"):
        assert config[name] not in result.stderr + result.stdout, name
    assert [r.path for r in sandbox.requests] == [TOKEN_PATH]


@pytest.mark.parametrize("missing", ["client_id", "client_secret", "refresh_token"])
def test_a_missing_credential_fails_before_any_request(sandbox, tmp_path, missing):
    config = INVENTORY.config(sandbox)
    del config[missing]
    result = run_cli(INVENTORY.executable, config, tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if "| ERROR" in line]
    assert errors and missing in errors[-1] and "tap-inventory" in errors[-1]
    assert sandbox.requests == []


# ----------------------------------------------------------------------------- request budget


def _most_in_any_window(times: list[float], seconds: float) -> int:
    """The most requests any sliding window of ``seconds`` holds (by the server's clock)."""
    times = sorted(times)
    most, start = 0, 0
    for end, at in enumerate(times):
        while times[start] <= at - seconds:
            start += 1
        most = max(most, end - start + 1)
    return most


def test_under_the_rate_limit_a_large_sync_paces_itself_and_gets_no_429():
    """20 requests a 3-second window stand for the API's 100 a minute, to keep this short.

    The API's 429 asks for a retry after a second while its window lasts longer: a tap
    that bursts and retries is served 429s (and, with a minute's window, fails). 20
    pages of items and the twelve other lists are 34 requests: more than one window holds.
    """
    limit = Fault(
        "rate_limit", api="inventory", per_second=20, window=3, fixed_window=True, times=None
    )
    with Sandbox(seed=42, counts={"inventory": {"items": 4000}}, faults=[limit]) as sandbox:
        config = INVENTORY.config(sandbox, max_requests_per_minute=20 * 60 / 3)
        result = sync_in_process(INVENTORY.tap_class, config)
        _assert_every_stream_matches(sandbox, result)
        data = _data_requests(sandbox)
    assert len(data) >= 34
    assert [r.status for r in data if r.status != 200] == []
    assert _most_in_any_window([r.time for r in data], 3.0) <= 20


def test_under_the_rewards_limit_of_ten_a_second_no_second_holds_more_than_ten():
    """The rewards default (600 a minute) against the rewards API's own limit."""
    rewards = tap_case("rewards")
    limit = Fault("rate_limit", api="rewards", per_second=10, window=1.0, times=None)
    with Sandbox(seed=42, faults=[limit]) as sandbox:
        config = rewards.config(sandbox)
        del config["max_requests_per_minute"]  # the tap's default
        result = sync_in_process(rewards.tap_class, config)
        for stream in sandbox.streams("rewards"):
            assert_matches_ground_truth(
                rewards, stream, result.records(stream), sandbox.records("rewards", stream)
            )
        data = [r for r in sandbox.requests if r.api == "rewards"]
    assert len(data) > 10
    assert [r.status for r in data if r.status != 200] == []
    assert _most_in_any_window([r.time for r in data], 1.0) <= 10


@pytest.mark.parametrize(
    ("api", "default"), [("inventory", 100), ("rewards", 600), ("invoicing", 0)]
)
def test_each_tap_defaults_to_the_rate_limit_its_contract_names(api, default):
    case = tap_case(api)
    spec = case.tap_class.config_jsonschema["properties"]["max_requests_per_minute"]
    assert spec["default"] == default
    assert "number" in spec["type"]

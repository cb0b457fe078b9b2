"""Inputs a user gets wrong: each told in one line that says what to do, or put right.

Every test runs the tap's console script against the sandbox, as a user would.
"""

from __future__ import annotations

import json
import socket

import pytest

from tests.support import catalog_selecting, run_cli, tap_case

REWARDS = tap_case("rewards")
INVOICING = tap_case("invoicing")


def _error_line(result) -> str:
    assert result.returncode != 0, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if "| ERROR" in line]
    assert errors, result.stderr[-2000:]
    return errors[-1]


def _warnings(result, *parts: str) -> list[str]:
    return [
        line
        for line in result.stderr.splitlines()
        if "| WARNING" in line and all(p in line for p in parts)
    ]


def _orders_only(tmp_path, config: dict) -> str:
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps(catalog_selecting(REWARDS.tap_class, config, "orders")))
    return str(path)


# -- state --------------------------------------------------------------------------------


def test_a_state_in_meltanos_wrapper_is_read_as_the_state_inside(sandbox, tmp_path):
    config = REWARDS.config(sandbox)
    catalog = _orders_only(tmp_path, config)
    first = run_cli(REWARDS.executable, config, tmp_path, "--catalog", catalog)
    assert first.returncode == 0, first.stderr[-2000:]
    bookmark = first.sync.last_state["bookmarks"]["orders"]["replication_key_value"]
    before = len(sandbox.requests)

    wrapped = {"singer_state": first.sync.last_state}
    second = run_cli(REWARDS.executable, config, tmp_path, "--catalog", catalog, state=wrapped)

    assert second.returncode == 0, second.stderr[-2000:]
    orders = [r for r in sandbox.requests[before:] if r.path == "/v2/orders"]
    since = {tuple(r.query.get("created_at[gte]", [])) for r in orders}
    assert since == {(bookmark.replace("+00:00", "Z"),)}, since
    assert len(second.sync.records("orders")) < len(first.sync.records("orders"))


def test_bookmarks_for_unknown_streams_or_another_key_are_warned_once_and_dropped(shared, tmp_path):
    state = {
        "bookmarks": {
            "ordres": {"replication_key": "created_at", "replication_key_value": "2024-01-01"},
            "orders": {"replication_key": "updated_at", "replication_key_value": "2030-01-01"},
        }
    }
    config = REWARDS.config(shared)
    catalog = _orders_only(tmp_path, config)
    result = run_cli(REWARDS.executable, config, tmp_path, "--catalog", catalog, state=state)

    assert result.returncode == 0, result.stderr[-2000:]
    assert len(_warnings(result, "'ordres'", "no such stream")) == 1, result.stderr
    assert len(_warnings(result, "'orders'", "updated_at", "'created_at'")) == 1, result.stderr
    states = [m["value"] for m in result.sync.messages if m["type"] == "STATE"]
    assert states, "no STATE message"
    assert all("ordres" not in s.get("bookmarks", {}) for s in states)
    assert result.sync.last_state["bookmarks"]["orders"]["replication_key"] == "created_at"
    # The bookmark on another key did not narrow the sync: every order was read.
    assert len(result.sync.records("orders")) == len(shared.records("rewards", "orders"))


def test_an_unreadable_bookmark_fails_naming_the_state_file_and_the_stream(sandbox, tmp_path):
    state = {
        "bookmarks": {
            "orders": {"replication_key": "created_at", "replication_key_value": "yesterday"}
        }
    }
    result = run_cli(REWARDS.executable, REWARDS.config(sandbox), tmp_path, state=state)
    line = _error_line(result)
    for part in ("state file", str(tmp_path / "state.json"), "'orders'", "yesterday"):
        assert part in line, line
    assert sandbox.requests == []


def test_an_empty_state_file_is_a_first_sync(shared, tmp_path):
    empty = tmp_path / "empty.json"
    empty.write_text("\n")
    result = run_cli(REWARDS.executable, REWARDS.config(shared), tmp_path, "--state", str(empty))
    assert result.returncode == 0, result.stderr[-2000:]
    assert len(result.sync.records("orders")) == len(shared.records("rewards", "orders"))


# -- files that are not JSON, or not the right shape ------------------------------------

BAD_FILES = [
    (
        "--catalog",
        '{"streams": [\n  {"tap_stream_id": "orders",}\n]}',
        "catalog file",
        "is not valid JSON (line 2, column",
    ),
    ("--catalog", "[1, 2, 3]", "catalog file", "has no list of streams"),
    ("--catalog", '{"streams": "x"}', "catalog file", "has no list of streams"),
    ("--state", '{"bookmarks": ', "state file", "is not valid JSON (line 1, column"),
    ("--state", "[1, 2, 3]", "state file", "not an object"),
    ("--state", '{"bookmarks": [1]}', "state file", "has no object of bookmarks"),
    ("--config", '{"api_key": "k",\n}', "config file", "is not valid JSON (line 2, column"),
    ("--config", '"api_key"', "config file", "not an object"),
]


@pytest.mark.parametrize(("option", "text", "kind", "problem"), BAD_FILES)
def test_an_input_file_that_is_not_json_or_the_wrong_shape_fails_in_one_line(
    sandbox, tmp_path, option, text, kind, problem
):
    bad = tmp_path / "bad.json"
    bad.write_text(text)
    result = run_cli(REWARDS.executable, REWARDS.config(sandbox), tmp_path, option, str(bad))
    line = _error_line(result)
    assert f"{kind} {bad}" in line, line
    assert problem in line, line
    for noise in ("JSONDecodeError", "TypeError", "AttributeError"):
        assert noise not in result.stderr
    assert sandbox.requests == []


# -- settings -----------------------------------------------------------------------------


def _base_url_cases():
    return [
        (REWARDS, "{host}/rewards", "no scheme", "write https://{host}/rewards"),
        (REWARDS, "htp://{host}/rewards", "scheme 'htp'", "write https://{host}/rewards"),
        (REWARDS, "http://{host}/rewards/v2/", "ends in /v2", "write http://{host}/rewards"),
        (
            INVOICING,
            "http://{host}/invoicing/api.php",
            "ends in /api.php",
            "write http://{host}/invoicing",
        ),
    ]


@pytest.mark.parametrize(
    ("case", "url", "problem", "fix"), _base_url_cases(), ids=lambda v: getattr(v, "name", v)
)
def test_a_wrong_base_url_is_caught_before_any_request_with_what_to_write(
    sandbox, tmp_path, case, url, problem, fix
):
    host = sandbox.url.split("://", 1)[1]
    config = case.config(sandbox, base_url=url.format(host=host))
    line = _error_line(run_cli(case.executable, config, tmp_path))
    assert "base_url" in line and problem in line and fix.format(host=host) in line, line
    assert sandbox.requests == []


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_closed_port_is_told_as_refused_without_claiming_retries(tmp_path):
    port = _closed_port()
    config = {"api_key": "k", "base_url": f"http://127.0.0.1:{port}/rewards", "backoff_factor": 5}
    result = run_cli(REWARDS.executable, config, tmp_path, timeout=20)
    line = _error_line(result)
    assert f"connection refused by 127.0.0.1:{port}" in line, line
    assert "attempts" not in line
    assert "retry" not in result.stderr


def test_a_start_date_in_the_future_warns_that_nothing_will_be_read(shared, tmp_path):
    config = REWARDS.config(shared, start_date="2999-01-01T00:00:00Z")
    result = run_cli(REWARDS.executable, config, tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert len(_warnings(result, "start_date", "future", "nothing")) == 1, result.stderr
    assert result.sync.records("orders") == []


def test_an_unknown_setting_is_warned_once_with_the_closest_known_name(shared, tmp_path):
    config = REWARDS.config(shared, startdate="2999-01-01T00:00:00Z")
    result = run_cli(REWARDS.executable, config, tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert len(_warnings(result, "'startdate'", "'start_date'")) == 1, result.stderr

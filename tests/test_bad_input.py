"""Bad settings and refusals end in one clear paragraph, non-zero, and no secret."""

from __future__ import annotations

import pytest

from api_sandbox import Fault
from tests.support import run_cli, tap_case

REWARDS = tap_case("rewards")
SENTINEL = "SENTINEL-secret-7f3a9c"


def _assert_clean_failure(result, *parts: str) -> str:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if "| ERROR" in line]
    assert errors, result.stderr
    message = errors[-1]
    for part in parts:
        assert part in message, message
    return message


def test_a_missing_api_key_fails_before_any_request(sandbox, tmp_path):
    config = REWARDS.config(sandbox)
    del config["api_key"]
    result = run_cli(REWARDS.executable, config, tmp_path)
    _assert_clean_failure(result, "tap-rewards", "api_key")
    assert sandbox.requests == []


def test_a_wrong_setting_type_is_named_without_its_value(sandbox, tmp_path):
    config = REWARDS.config(sandbox, start_date="not-a-date", api_key=SENTINEL)
    result = run_cli(REWARDS.executable, config, tmp_path)
    _assert_clean_failure(result, "start_date")
    assert SENTINEL not in result.stderr + result.stdout


@pytest.mark.parametrize("loglevel", ["INFO", "DEBUG"])
def test_a_wrong_api_key_fails_with_401_and_never_shows_the_key(sandbox, tmp_path, loglevel):
    config = REWARDS.config(sandbox, api_key=SENTINEL)
    result = run_cli(REWARDS.executable, config, tmp_path, env={"LOGLEVEL": loglevel})
    _assert_clean_failure(result, "tap-rewards", "401", "Unauthorized", "api_key")
    assert SENTINEL not in result.stderr
    assert SENTINEL not in result.stdout
    assert [r.status for r in sandbox.requests] == [401]


def test_malformed_json_that_persists_fails_clearly(sandbox, tmp_path):
    sandbox.add_fault(Fault(kind="malformed", api="rewards", path="/v2/orders", times=None))
    result = run_cli(REWARDS.executable, REWARDS.config(sandbox), tmp_path)
    _assert_clean_failure(result, "'orders'", "GET /rewards/v2/orders", "not valid JSON")


def test_the_secret_stays_out_of_retry_logs(sandbox, tmp_path):
    sandbox.add_fault(Fault(kind="status", api="rewards", path="/v2/orders", status=502, times=2))
    config = REWARDS.config(sandbox)
    result = run_cli(REWARDS.executable, config, tmp_path, env={"LOGLEVEL": "DEBUG"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert "retry 1 of 3" in result.stderr
    assert config["api_key"] not in result.stderr


def test_numbers_given_as_text_are_read_and_bad_ones_named(sandbox, tmp_path):
    config = REWARDS.config(sandbox, backoff_factor="0.01", request_timeout="30")
    synced = run_cli(REWARDS.executable, config, tmp_path)
    assert synced.returncode == 0, synced.stderr[-2000:]
    result = run_cli(REWARDS.executable, {**config, "backoff_factor": "fast"}, tmp_path)
    _assert_clean_failure(result, "backoff_factor")

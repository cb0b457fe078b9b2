"""Retry and timeout settings out of range fail at start, naming the setting.

Each of these passed validation and crashed later, at the first retry's wait or the
first request (``sleep(-1)``, ``sleep(nan)``, ``timeout=0``), or not at all until a
fault came.
"""

from __future__ import annotations

import json

import pytest

from api_sandbox import Fault
from tests.support import catalog_selecting, run_cli, tap_case

REWARDS = tap_case("rewards")


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("max_retry_wait_seconds", -1),
        ("backoff_factor", "nan"),
        ("backoff_factor", "inf"),
        ("backoff_factor", -0.5),
        ("request_timeout", 0),
        ("request_timeout", "-3"),
    ],
)
def test_a_retry_setting_out_of_range_fails_before_any_request(sandbox, tmp_path, setting, value):
    config = REWARDS.config(sandbox, **{setting: value})
    result = run_cli(REWARDS.executable, config, tmp_path)
    assert result.returncode == 1, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if "| ERROR" in line]
    assert len(errors) == 1, result.stderr[-2000:]
    assert "tap-rewards: the settings are not valid" in errors[0]
    assert setting in errors[0]
    assert sandbox.requests == []


def test_the_smallest_allowed_settings_sync(sandbox, tmp_path):
    config = REWARDS.config(
        sandbox, max_retry_wait_seconds=0, backoff_factor="0", request_timeout=1
    )
    catalog = tmp_path / "catalog.json"
    catalog.write_text(json.dumps(catalog_selecting(REWARDS.tap_class, config, "orders")))
    sandbox.add_fault(Fault(kind="status", api="rewards", path="/v2/orders", status=503))
    result = run_cli(REWARDS.executable, config, tmp_path, "--catalog", str(catalog))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "retry 1 of 3 in 0.0 s" in result.stderr
    assert len(result.sync.records("orders")) == len(sandbox.records("rewards", "orders"))

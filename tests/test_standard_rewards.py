"""The SDK's standard tap tests for tap-rewards, every stream, against the sandbox."""

from __future__ import annotations

from singer_sdk.testing import SuiteConfig, get_tap_test_class

from tap_rewards.tap import TapRewards
from tests.support import shared_sandbox, tap_case

REWARDS = tap_case("rewards")
_sandbox = shared_sandbox()
_empty = [s for s in _sandbox.streams("rewards") if not _sandbox.records("rewards", s)]

TestTapRewards = get_tap_test_class(
    tap_class=TapRewards,
    config=REWARDS.config(_sandbox),
    suite_config=SuiteConfig(ignore_no_records_for_streams=_empty),
)

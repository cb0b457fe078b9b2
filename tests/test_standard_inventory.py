"""The SDK's standard tap tests for tap-inventory, every stream, against the sandbox."""

from __future__ import annotations

from singer_sdk.testing import SuiteConfig, get_tap_test_class

from tap_inventory.tap import TapInventory
from tests.support import shared_sandbox, tap_case

INVENTORY = tap_case("inventory")
_sandbox = shared_sandbox()
_empty = [s for s in _sandbox.streams("inventory") if not _sandbox.records("inventory", s)]

TestTapInventory = get_tap_test_class(
    tap_class=TapInventory,
    config=INVENTORY.config(_sandbox),
    suite_config=SuiteConfig(ignore_no_records_for_streams=_empty),
)

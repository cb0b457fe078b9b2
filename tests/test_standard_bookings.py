"""The SDK's standard tap tests for tap-bookings, every stream, against the sandbox."""

from __future__ import annotations

from singer_sdk.testing import SuiteConfig, get_tap_test_class

from tap_bookings.tap import TapBookings
from tests.support import shared_sandbox, tap_case

BOOKINGS = tap_case("bookings")
_sandbox = shared_sandbox()
_empty = [s for s in _sandbox.streams("bookings") if not _sandbox.records("bookings", s)]

TestTapBookings = get_tap_test_class(
    tap_class=TapBookings,
    config=BOOKINGS.config(_sandbox),
    suite_config=SuiteConfig(ignore_no_records_for_streams=_empty),
)

"""The SDK's standard tap tests for tap-reporting, every stream, against the sandbox."""

from __future__ import annotations

from singer_sdk.testing import SuiteConfig, get_tap_test_class

from tap_reporting.tap import TapReporting
from tests.support import shared_sandbox, tap_case

REPORTING = tap_case("reporting")
_sandbox = shared_sandbox()
_empty = [s for s in _sandbox.streams("reporting") if not _sandbox.records("reporting", s)]

TestTapReporting = get_tap_test_class(
    tap_class=TapReporting,
    config=REPORTING.config(_sandbox),
    suite_config=SuiteConfig(ignore_no_records_for_streams=_empty),
)

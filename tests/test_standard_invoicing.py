"""The SDK's standard tap tests for tap-invoicing, every stream, against the sandbox."""

from __future__ import annotations

from singer_sdk.testing import SuiteConfig, get_tap_test_class

from tap_invoicing.tap import TapInvoicing
from tests.support import shared_sandbox, tap_case

INVOICING = tap_case("invoicing")
_sandbox = shared_sandbox()
_empty = [s for s in _sandbox.streams("invoicing") if not _sandbox.records("invoicing", s)]

TestTapInvoicing = get_tap_test_class(
    tap_class=TapInvoicing,
    config=INVOICING.config(_sandbox),
    suite_config=SuiteConfig(ignore_no_records_for_streams=_empty),
)

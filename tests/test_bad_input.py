"""Bad settings and refusals end in one clear paragraph, non-zero, and no secret."""

from __future__ import annotations

import re
import sys

import pytest
from pytest_httpserver import HTTPServer

from api_sandbox import Fault
from tests.support import FAST_RETRIES, run_cli, tap_case

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


def _error_lines(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if "| ERROR" in line]


def test_a_base_url_without_a_scheme_is_named_and_never_retried(sandbox, tmp_path):
    without_scheme = sandbox.base_url("rewards").split("://", 1)[1]
    result = run_cli(REWARDS.executable, REWARDS.config(sandbox, base_url=without_scheme), tmp_path)
    message = _assert_clean_failure(result, "tap-rewards", "base_url", "http")
    assert len(_error_lines(result)) == 1, result.stderr
    assert "attempts" not in message and "retr" not in message
    assert sandbox.requests == []


def test_a_request_that_cannot_be_sent_is_told_as_tried_once(sandbox, tmp_path):
    """A key with a character HTTP headers cannot carry fails in the sending, once."""
    secret = "key-€-outside-latin-1"
    result = run_cli(REWARDS.executable, REWARDS.config(sandbox, api_key=secret), tmp_path)
    message = _assert_clean_failure(result, "'account_members'", "could not be sent", "api_key")
    assert len(_error_lines(result)) == 1, result.stderr
    assert "attempts" not in message
    assert "retry" not in result.stderr
    assert secret not in result.stderr + result.stdout
    assert sandbox.requests == []


def test_an_unexpected_failure_in_a_stream_is_one_error_line_naming_the_stream(sandbox, tmp_path):
    maps = {"account_members": {"email_number": "int(email)"}}
    result = run_cli(REWARDS.executable, REWARDS.config(sandbox, stream_maps=maps), tmp_path)
    _assert_clean_failure(result, "stream 'account_members'", "ValueError")
    assert len(_error_lines(result)) == 1, result.stderr
    assert "unhandled error" not in result.stderr


def test_a_multi_line_unexpected_message_is_told_on_one_bounded_line(sandbox, tmp_path):
    expression = "(1 +\n" + "  2 +\n" * 400
    maps = {"account_members": {"broken": expression}}
    result = run_cli(REWARDS.executable, REWARDS.config(sandbox, stream_maps=maps), tmp_path)
    message = _assert_clean_failure(result, "MapExpressionError", "(1 + 2 + 2")
    assert len(_error_lines(result)) == 1, result.stderr
    assert len(message) < 1200 and message.endswith("...")
    log_line = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} \| ")
    assert all(log_line.match(line) for line in result.stderr.splitlines()), result.stderr


CHILD_TAP = '''#!{python}
"""tap-rewards with a child stream under products, whose records break a map."""
from tap_rewards.streams import STREAM_TYPES, ProductsStream
from tap_rewards.tap import TapRewards
from taps_core.client import load_schema


class ProductsWithVariants(ProductsStream):
    def get_child_context(self, record, context):
        return {{"product_id": record["id"]}}


class ProductVariants(ProductsStream):
    name = "product_variants"
    parent_stream_type = ProductsWithVariants

    def __init__(self, tap, *args, **kwargs):
        kwargs["schema"] = load_schema(self.schemas_dir / "products.json")
        super().__init__(tap, *args, **kwargs)


class TapRewardsWithChild(TapRewards):
    stream_types = [
        ProductsWithVariants if s is ProductsStream else s for s in STREAM_TYPES
    ] + [ProductVariants]


if __name__ == "__main__":
    TapRewardsWithChild.main()
'''


def test_a_failure_in_a_child_stream_is_one_error_line_naming_it(sandbox, tmp_path):
    script = tmp_path / "tap-rewards-child"
    script.write_text(CHILD_TAP.format(python=sys.executable))
    script.chmod(0o755)
    maps = {"product_variants": {"broken": "int(name)"}}
    result = run_cli(str(script), REWARDS.config(sandbox, stream_maps=maps), tmp_path)
    _assert_clean_failure(result, "stream 'product_variants'", "ValueError")
    assert len(_error_lines(result)) == 1, result.stderr
    assert "unhandled error" not in result.stderr


def test_a_failure_no_retry_can_mend_is_told_as_tried_once(httpserver: HTTPServer, tmp_path):
    """A redirect loop (the sandbox never redirects, so a local fake plays the API)."""
    httpserver.expect_request("/rewards/v2/members").respond_with_data(
        "", status=302, headers={"Location": "/rewards/v2/members"}
    )
    config = {"api_key": SENTINEL, "base_url": httpserver.url_for("/rewards"), **FAST_RETRIES}
    result = run_cli(REWARDS.executable, config, tmp_path)
    message = _assert_clean_failure(result, "'account_members'", "TooManyRedirects")
    assert len(_error_lines(result)) == 1, result.stderr
    assert "attempts" not in message
    assert "retry" not in result.stderr
    assert SENTINEL not in result.stderr + result.stdout

"""While a sync runs: progress, a short stderr at the default level, --test verdicts, levels.

Every test runs the tap's console script against the sandbox and reads its stderr.
"""

from __future__ import annotations

import json
import re

from api_sandbox import Fault
from tests.support import TAPS, catalog_selecting, run_cli, tap_case

REWARDS = tap_case("rewards")


def _messages(stderr: str) -> list[str]:
    """The message part of each log line (after the third ``|``)."""
    return [line.split(" | ", 3)[-1] for line in stderr.splitlines() if line.count(" | ") >= 3]


def _levels(stderr: str) -> set[str]:
    return {line.split(" | ")[1].strip() for line in stderr.splitlines() if " | " in line}


def test_progress_lines_give_count_share_rate_and_time_left_then_a_final_line(shared, tmp_path):
    config = REWARDS.config(shared, progress_interval_seconds=0)
    result = run_cli(REWARDS.executable, config, tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    total = len(shared.records("rewards", "orders"))
    lines = [m for m in _messages(result.stderr) if m.startswith("orders: ")]
    share = re.compile(
        rf"^orders: [\d,]+ / {total:,} \(\d+%\), [\d,]+ records/s, about [\d.]+ (s|min).* left$"
    )
    assert any(share.match(line) for line in lines), lines
    assert lines[-1].startswith(f"orders: {total:,} records in "), lines
    everything = sum(len(shared.records("rewards", s)) for s in shared.streams("rewards"))
    assert f"tap-rewards: 10 streams synced, {everything:,} records in " in result.stderr


def test_a_list_without_a_total_shows_count_and_rate(shared, tmp_path):
    case = tap_case("invoicing")
    config = case.config(shared, progress_interval_seconds=0)
    result = run_cli(case.executable, config, tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    count = len(shared.records("invoicing", "invoices"))
    lines = [m for m in _messages(result.stderr) if m.startswith("invoices: ")]
    assert any(re.match(r"^invoices: [\d,]+ records, [\d,]+ records/s$", m) for m in lines), lines
    assert lines[-1].startswith(f"invoices: {count:,} records in "), lines


def test_the_default_stderr_is_a_short_summary_without_machine_lines(shared, tmp_path):
    result = run_cli(REWARDS.executable, REWARDS.config(shared), tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    messages = _messages(result.stderr)
    assert not [m for m in messages if "METRIC" in m]
    assert not [m for m in messages if "Skipping parse of env var" in m]
    # orders and balance_transactions say is_sorted = False: the SDK's warning is noise.
    assert not [m for m in messages if "assumed to be unsorted" in m]
    assert _levels(result.stderr) == {"INFO"}
    for stream in shared.streams("rewards"):
        assert len([m for m in messages if m.startswith(f"{stream}: ")]) == 1, stream
    assert len(messages) <= 3 * 10 + 3, "\n".join(messages)


def test_deselected_streams_are_named_in_one_line(shared, tmp_path):
    config = REWARDS.config(shared)
    catalog = tmp_path / "catalog.json"
    catalog.write_text(json.dumps(catalog_selecting(REWARDS.tap_class, config, "orders")))
    result = run_cli(REWARDS.executable, config, tmp_path, "--catalog", str(catalog))
    assert result.returncode == 0, result.stderr[-2000:]
    lines = [m for m in _messages(result.stderr) if "not synced" in m or "deselected" in m]
    assert len(lines) == 1, lines
    assert "(9 streams)" in lines[0] and "balance_transactions" in lines[0], lines


def test_metric_lines_only_with_log_metrics(shared, tmp_path):
    config = REWARDS.config(shared)
    quiet = run_cli(REWARDS.executable, config, tmp_path)
    assert "METRIC" not in quiet.stderr
    result = run_cli(REWARDS.executable, {**config, "log_metrics": True}, tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert '"metric":"record_count"' in result.stderr


def test_the_log_level_setting_sets_the_level(shared, tmp_path):
    quiet = run_cli(REWARDS.executable, REWARDS.config(shared, log_level="warning"), tmp_path)
    assert quiet.returncode == 0, quiet.stderr[-2000:]
    assert "| INFO" not in quiet.stderr.split("\n", 1)[1]  # the version line comes first
    loud = run_cli(REWARDS.executable, REWARDS.config(shared, log_level="DEBUG"), tmp_path)
    assert "| DEBUG" in loud.stderr
    assert "http_request_duration" in loud.stderr
    bad = run_cli(REWARDS.executable, REWARDS.config(shared, log_level="LOUD"), tmp_path)
    assert bad.returncode == 1
    assert "log_level must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL" in bad.stderr


def test_dash_dash_test_prints_a_pass_line_a_stream_and_a_verdict(shared, tmp_path):
    for case in TAPS:
        result = run_cli(case.executable, case.config(shared), tmp_path, "--test")
        assert result.returncode == 0, result.stderr[-2000:]
        messages = _messages(result.stderr)
        streams = shared.streams(case.api)
        for stream in streams:
            assert len([m for m in messages if m.startswith(f"PASS {stream} ")]) == 1, messages
        assert messages[-1] == f"Connection test passed: all {len(streams)} streams answered."
        assert "ERROR" not in result.stderr


def test_dash_dash_test_fails_the_stream_that_fails_and_says_so(sandbox, tmp_path):
    sandbox.add_fault(Fault(kind="status", api="rewards", path="/v2/products", status=403))
    result = run_cli(REWARDS.executable, REWARDS.config(sandbox), tmp_path, "--test")
    assert result.returncode == 1
    messages = _messages(result.stderr)
    assert [m for m in messages if m.startswith("FAIL products: ") and "403" in m], messages
    assert len([m for m in messages if m.startswith("PASS ")]) == 9, messages
    assert messages[-1] == "Connection test FAILED: 1 of 10 streams failed (products)."

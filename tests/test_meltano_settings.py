"""Every setting of every tap works through Meltano: declared, set, overridden, listed.

A setting the tap has but ``meltano.yml`` does not declare reaches the tap as text
(``'true' is not of type 'boolean'``) or, from a ``TAP_<NAME>_<SETTING>`` variable,
not at all. So the declarations are checked against each tap's ``--about`` for every
tap in ``tests.support.TAPS`` (a tap added there must declare its settings too), and
each kind is set through Meltano and seen to take effect.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import typing as t

import pytest
import yaml

from tests.support import ROOT, TAPS, VENV_BIN, meltano_lock, tap_case

MELTANO = str(VENV_BIN / "meltano")
REWARDS = tap_case("rewards")

needs_meltano = pytest.mark.skipif(
    not (ROOT / ".meltano").exists(), reason="run scripts/setup.sh first (meltano install)"
)

#: JSON Schema type of a setting -> the Meltano kinds that hand it over intact. Numbers
#: are declared ``string`` or ``integer`` on purpose (Meltano's ``decimal`` cannot be
#: serialised into a config file; the tap reads "0.5" as 0.5).
KINDS = {
    "string": {"string", "password", "options", "email", "file"},
    "boolean": {"boolean"},
    "integer": {"integer"},
    "number": {"string", "integer"},
    "object": {"object"},
    "array": {"array"},
}


def _about(case) -> dict:
    out = subprocess.run(
        [case.executable, "--about", "--format", "json"],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)


def _declared(name: str) -> dict:
    project = yaml.safe_load((ROOT / "meltano.yml").read_text())
    return next(p for p in project["plugins"]["extractors"] if p["name"] == name)


@pytest.mark.parametrize("case", TAPS, ids=lambda case: case.name)
def test_meltano_yml_declares_every_setting_and_capability_the_tap_lists(case):
    about = _about(case)
    plugin = _declared(case.name)
    declared = {s["name"]: s for s in plugin.get("settings", [])}
    missing = sorted(set(about["settings"]["properties"]) - set(declared))
    assert not missing, f"{case.name}: meltano.yml lacks settings {missing}"
    for name, spec in about["settings"]["properties"].items():
        kinds = spec.get("type", [])
        kinds = [kinds] if isinstance(kinds, str) else kinds
        json_type = next(k for k in kinds if k != "null")
        kind = declared[name].get("kind", "string")
        if spec.get("format") == "date-time":
            assert kind == "date_iso8601", f"{case.name}.{name}: kind {kind}"
        else:
            assert kind in KINDS[json_type], f"{case.name}.{name}: kind {kind} for {json_type}"
        if spec.get("secret"):
            assert declared[name].get("sensitive") is True, f"{case.name}.{name} not sensitive"
    lacking = sorted(set(about["capabilities"]) - set(plugin.get("capabilities", [])))
    assert not lacking, f"{case.name}: meltano.yml lacks capabilities {lacking}"


def _meltano(args: list[str], cwd: t.Any, **env: str) -> subprocess.CompletedProcess:
    environment = {
        **os.environ,
        "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
        "MELTANO_CLI_DISABLE_VERSION_CHECK": "true",
        **env,
    }
    with meltano_lock("tap-rewards"):  # every command here is of tap-rewards
        return subprocess.run(
            [MELTANO, *args],
            cwd=cwd,
            env=environment,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )


def _records(stdout: str) -> list[dict]:
    messages = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    return [m for m in messages if m.get("type") == "RECORD"]


def _check_effects(proc: subprocess.CompletedProcess, start: str) -> None:
    """What each setting of the run below must have done to the tap's output."""
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = _records(proc.stdout)
    sales = [m["record"] for m in records if m["stream"] == "sales"]
    # object (stream_maps): orders renamed; date_iso8601 (start_date): only newer rows.
    assert sales, "stream_maps did not rename orders to sales"
    assert not [m for m in records if m["stream"] == "orders"]
    assert all(r["created_at"] >= start for r in sales)
    # boolean + integer (flattening_enabled, flattening_max_depth 1): nested lists as text.
    invoice = next(m["record"] for m in records if m["stream"] == "invoices")
    assert isinstance(invoice["orders"], str), invoice
    # options (log_level DEBUG): the METRIC lines, kept for DEBUG, are there.
    # (Meltano shows them as metric_name=record_count, read from their metric_info)
    assert re.search(r"METRIC.*record_count", proc.stderr), proc.stderr[-3000:]
    # integer from text (progress_interval_seconds 0): a progress line a page.
    assert re.search(r"orders: [\d,]+ / [\d,]+ \(\d+%\)", proc.stderr), proc.stderr[-3000:]


SETTINGS = {
    "flattening_enabled": "true",
    "flattening_max_depth": "1",
    "stream_maps": '{"orders": {"__alias__": "sales"}}',
    "start_date": "2025-06-01T00:00:00Z",
    "log_level": "DEBUG",
    "progress_interval_seconds": "0",
    "backoff_factor": "0.01",
}


@needs_meltano
def test_every_kind_set_by_environment_variable_takes_effect(shared, tmp_path):
    env = {f"TAP_REWARDS_{k.upper()}": v for k, v in SETTINGS.items()}
    env["TAP_REWARDS_BASE_URL"] = shared.base_url("rewards")
    proc = _meltano(["--environment=sandbox", "invoke", "tap-rewards"], ROOT, **env)
    _check_effects(proc, SETTINGS["start_date"])


@needs_meltano
def test_every_kind_set_with_meltano_config_set_takes_effect_and_is_listed(shared, tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(ROOT / "meltano.yml", project / "meltano.yml")
    (project / ".meltano").symlink_to(ROOT / ".meltano")
    settings = {**SETTINGS, "base_url": shared.base_url("rewards")}
    for name, value in settings.items():
        proc = _meltano(
            ["--environment=sandbox", "config", "set", "tap-rewards", name, value], project
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
    listed = _meltano(["--environment=sandbox", "config", "list", "tap-rewards", "--all"], project)
    assert listed.returncode == 0, listed.stderr[-2000:]
    for line in (
        "flattening_enabled [env: TAP_REWARDS_FLATTENING_ENABLED] current value: True",
        "flattening_max_depth [env: TAP_REWARDS_FLATTENING_MAX_DEPTH] current value: 1",
        "log_level [env: TAP_REWARDS_LOG_LEVEL] current value: 'DEBUG'",
    ):
        assert line in listed.stdout, listed.stdout
    proc = _meltano(["--environment=sandbox", "invoke", "tap-rewards"], project)
    _check_effects(proc, SETTINGS["start_date"])


@needs_meltano
def test_meltano_shows_the_taps_warnings_and_errors_at_their_own_level(shared, tmp_path):
    """With ``structured-logging`` declared Meltano reads the level of each line."""
    env = {
        "TAP_REWARDS_BASE_URL": "htp" + shared.base_url("rewards").removeprefix("http"),
        "TAP_REWARDS_START_DATE": "2999-01-01T00:00:00Z",
    }
    proc = _meltano(["--environment=sandbox", "invoke", "tap-rewards"], ROOT, **env)
    lines = proc.stderr.splitlines()
    assert proc.returncode != 0
    assert any("[warning" in line and "is in the future" in line for line in lines), proc.stderr
    assert any("[error" in line and "base_url" in line for line in lines), proc.stderr

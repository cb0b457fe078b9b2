"""The Dagster definitions (orchestration/) running real `meltano run`s against the sandbox.

Dagster lives in .venv-orchestrate (scripts/setup.sh), not in the test venv: every
Dagster step here is tests/dagster_run.py under that venv's python, with the job's own
multiprocess executor. Meltano's state and system database live under tmp_path, so the
project's .meltano/ and the other Meltano tests see none of it; DuckDB files too.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import typing as t
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import pytest
import yaml

from api_sandbox import Fault, Sandbox
from tests.support import (
    MELTANO,
    ROOT,
    TAPS,
    assert_duckdb_holds_the_sandbox,
    tap_case,
)

ORCHESTRATE_PYTHON = ROOT / ".venv-orchestrate" / "bin" / "python"
DRIVER = str(ROOT / "tests" / "dagster_run.py")

pytestmark = [
    pytest.mark.skipif(
        not ORCHESTRATE_PYTHON.exists(),
        reason=".venv-orchestrate is missing: scripts/setup.sh creates it (Dagster's venv)",
    ),
    pytest.mark.skipif(
        not (ROOT / ".meltano").exists(), reason="run scripts/setup.sh first (meltano install)"
    ),
]

EXTRACTORS = [
    p["name"] for p in yaml.safe_load((ROOT / "meltano.yml").read_text())["plugins"]["extractors"]
]
BACKFILL = "reporting-transactions-backfill"
TRANSACTIONS = "/v1/reporting/transactions"


def _environment(sandbox: Sandbox, tmp_path: Path) -> dict[str, str]:
    """Every tap pointed at ``sandbox``; Dagster's and Meltano's storage under ``tmp_path``."""
    home = tmp_path / "dagster"
    home.mkdir(exist_ok=True)
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "MELTANO_STATE_BACKEND_URI": f"file://{tmp_path}/state",
        "MELTANO_DATABASE_URI": f"sqlite:///{tmp_path}/meltano.db",
        "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
        "MELTANO_CLI_DISABLE_VERSION_CHECK": "true",
    }
    for case in TAPS:
        prefix = case.name.upper().replace("-", "_")
        env[f"{prefix}_BASE_URL"] = sandbox.base_url(case.api)
        env[f"{prefix}_BACKOFF_FACTOR"] = "0.01"
        env[f"{prefix}_MAX_REQUESTS_PER_MINUTE"] = "0"
        for name, value in sandbox.credentials(case.api).items():
            env[f"{prefix}_{name.upper()}"] = str(value)
    return env


def _spec(job: str, tmp_path: Path, **more: t.Any) -> str:
    return json.dumps(
        {
            "job": job,
            "run_config": {
                "resources": {"meltano": {"config": {"duckdb_dir": str(tmp_path / "duckdb")}}},
                "execution": {"config": {"max_concurrent": 2}},
            },
            **more,
        }
    )


def _start(spec: str, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [str(ORCHESTRATE_PYTHON), DRIVER, spec],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _result(proc: subprocess.Popen) -> dict:
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    return json.loads(out)


def _meltano_init(env: dict[str, str]) -> list[str]:
    """``meltano state list``: the state IDs Meltano holds (it also creates the system db)."""
    proc = subprocess.run(
        [MELTANO, "state", "list"], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return sorted(line.strip() for line in proc.stdout.splitlines() if line.strip())


def _state(env: dict[str, str], state_id: str) -> dict:
    proc = subprocess.run(
        [MELTANO, "state", "get", state_id], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)["singer_state"]


def _overlap(steps: dict) -> bool:
    """Some two steps ran at the same time."""
    spans = [(s["start"], s["end"]) for s in steps.values()]
    return any(a0 < b1 and b0 < a1 for (a0, a1), (b0, b1) in itertools.combinations(spans, 2))


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# -- definitions -----------------------------------------------------------------------------


def test_definitions_load_from_the_repository_root_with_one_asset_per_tap_and_group(tmp_path):
    groups = tmp_path / "groups.yml"
    groups.write_text(
        yaml.safe_dump(
            {
                "groups": {
                    "tap-reporting": [
                        {"name": "reporting-transactions", "select": ["transactions.*"]},
                        {"name": "reporting-rest", "select": ["*.*", "!transactions.*"]},
                    ]
                }
            }
        )
    )
    bad = tmp_path / "bad.yml"
    bad.write_text(yaml.safe_dump({"groups": {"tap-reportin": [{"name": "x"}]}}))
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path)}
    proc = subprocess.run(
        [str(ORCHESTRATE_PYTHON), DRIVER, json.dumps({"describe": str(groups), "bad": str(bad)})],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    loaded = json.loads(proc.stdout)
    per_tap = sorted(name.replace("-", "_") for name in EXTRACTORS)
    assert loaded["default"] == sorted([*per_tap, BACKFILL.replace("-", "_")])
    # A file of groups and no backfills: the declared groups, one group for every other tap.
    assert loaded["groups"] == sorted(
        [
            *(n for n in per_tap if n != "tap_reporting"),
            "reporting_transactions",
            "reporting_rest",
        ]
    )
    assert "tap-reportin" in loaded["refused"] and "tap-reporting" in loaded["refused"]
    assert "all_groups" in loaded["jobs"]
    assert loaded["schedules"] == [["all_groups_daily", "0 3 * * *"]]

    # `dagster definitions validate` finds them through pyproject.toml, with no flags.
    dagster = ORCHESTRATE_PYTHON.parent / "dagster"
    validated = subprocess.run(
        [str(dagster), "definitions", "validate"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert validated.returncode == 0, validated.stderr[-3000:]
    assert "Validation successful" in validated.stdout + validated.stderr


# -- all groups at once ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def all_groups(tmp_path_factory) -> t.Iterator[tuple[Sandbox, dict, dict, Path]]:
    """One run of the all_groups job over a small sandbox, two steps at a time."""
    tmp_path = tmp_path_factory.mktemp("all-groups")
    with Sandbox(seed=7, records=15) as sb:
        env = _environment(sb, tmp_path)
        assert _meltano_init(env) == []
        result = _result(_start(_spec("all_groups", tmp_path), env))
        yield sb, env, result, tmp_path


def test_all_groups_materialize_two_at_a_time_each_with_its_own_state(all_groups):
    sb, env, result, _ = all_groups
    assert result["success"], result["logs"][-20:]
    steps = result["steps"]
    assert sorted(steps) == sorted(name.replace("-", "_") for name in EXTRACTORS)
    assert all(s["status"] == "success" for s in steps.values())
    assert _overlap(steps), "no two groups ran at the same time"
    ids = [f"sandbox:{tap}-to-target-duckdb:{tap}" for tap in EXTRACTORS]
    assert _meltano_init(env) == sorted(ids), "one state per group"
    for tap in EXTRACTORS:
        metadata = steps[tap.replace("-", "_")]["metadata"]
        assert metadata["state_id"] == f"sandbox:{tap}-to-target-duckdb:{tap}"
        assert metadata["duration_seconds"] > 0
        api = tap.removeprefix("tap-")
        expected = {s: len(sb.records(api, s)) for s in sb.streams(api)}
        assert metadata["rows"] == expected, tap


def test_all_groups_land_every_sandbox_row_once_in_duckdb(all_groups):
    sb, _, _, tmp_path = all_groups
    for case in TAPS:
        database = tmp_path / "duckdb" / f"{case.name}.duckdb"
        assert_duckdb_holds_the_sandbox(database, case, sb, where=f"{case.name} ")


# -- the reporting backfill ------------------------------------------------------------------


def test_two_backfill_months_side_by_side_hold_each_transaction_of_their_month_once(tmp_path):
    months = [
        (datetime(2024, 1, 1, tzinfo=timezone.utc), datetime(2024, 2, 1, tzinfo=timezone.utc)),
        (datetime(2024, 2, 1, tzinfo=timezone.utc), datetime(2024, 3, 1, tzinfo=timezone.utc)),
    ]
    with Sandbox(seed=5, records=5, counts={"reporting": {"transactions": 90}}) as sb:
        # Transactions from mid-December to mid-March: some before and after the two months.
        sb.engine.api("reporting").place_transactions(
            datetime(2023, 12, 15, tzinfo=timezone.utc).timestamp(),
            datetime(2024, 3, 15, tzinfo=timezone.utc).timestamp(),
        )
        env = _environment(sb, tmp_path)
        assert _meltano_init(env) == []
        runs = []
        for start, _ in months:
            home = tmp_path / f"dagster-{start:%Y-%m}"
            home.mkdir()
            spec = _spec(f"{BACKFILL.replace('-', '_')}_job", tmp_path, partition=f"{start:%Y-%m}")
            runs.append(_start(spec, {**env, "DAGSTER_HOME": str(home)}))
        results = [_result(run) for run in runs]

        truth = sb.records("reporting", "transactions")
        asked = [
            (_at(r.query["start_date"][0]), _at(r.query["end_date"][0]))
            for r in sb.requests
            if r.api == "reporting" and r.path == TRANSACTIONS
        ]

    spans = []
    landed: list[str] = []
    for (start, end), result in zip(months, results, strict=True):
        assert result["success"], [s.get("error") for s in result["steps"].values()]
        (step,) = result["steps"].values()
        spans.append((step["start"], step["end"]))
        suffix = f"{BACKFILL}-{start:%Y-%m}"
        state_id = f"sandbox:tap-reporting-to-target-duckdb:{suffix}"
        assert step["metadata"]["state_id"] == state_id
        in_month = [
            r
            for r in truth
            if start <= _at(r["transaction_info"]["transaction_updated_date"]) < end
        ]
        assert in_month, "the sandbox should have transactions in both months"
        assert step["metadata"]["rows"] == {"transactions": len(in_month)}
        bookmark = _state(env, state_id)["bookmarks"]["transactions"]["replication_key_value"]
        assert _at(bookmark) == end, "the month's bookmark is its end"
        with duckdb.connect(str(tmp_path / "duckdb" / f"{suffix}.duckdb"), read_only=True) as con:
            rows = con.execute("select transaction_id from tap_reporting.transactions").fetchall()
        ids = [row[0] for row in rows]
        assert sorted(ids) == sorted(r["transaction_info"]["transaction_id"] for r in in_month)
        landed += ids
        # Every window either month asked for lies in one of the two months.
        mine = [(s, e) for s, e in asked if start <= s < end]
        assert mine and min(s for s, _ in mine) == start and max(e for _, e in mine) == end
    assert len(landed) == len(set(landed)), "a transaction landed in both months"
    assert all(any(start <= s < e <= end for start, end in months) for s, e in asked), (
        "a window reached outside its month"
    )
    assert spans[0][0] < spans[1][1] and spans[1][0] < spans[0][1], "the months did not overlap"
    assert _meltano_init(env) == sorted(
        f"sandbox:tap-reporting-to-target-duckdb:{BACKFILL}-{start:%Y-%m}" for start, _ in months
    )


# -- two groups of one tap, and a failing group ---------------------------------------------

BOOKINGS_GROUPS = {
    "bookings-accounts": ["account", "booking"],
    "bookings-rest": ["invoice", "product", "subscription"],
}


def test_two_groups_of_one_tap_keep_their_own_bookmarks_and_a_failing_group_fails_alone(tmp_path):
    """tap-bookings split in two groups; tap-rewards answered 401 on every request."""
    groups = tmp_path / "groups.yml"
    groups.write_text(
        yaml.safe_dump(
            {
                "groups": {
                    "tap-bookings": [
                        {"name": "bookings-accounts", "select": ["account.*", "booking.*"]},
                        {"name": "bookings-rest", "select": ["*.*", "!account.*", "!booking.*"]},
                    ]
                }
            }
        )
    )
    rewards = tap_case("rewards")
    with Sandbox(
        seed=3, records=5, faults=[Fault(kind="status", api="rewards", status=401, times=None)]
    ) as sb:
        env = {**_environment(sb, tmp_path), "ORCHESTRATION_GROUPS": str(groups)}
        assert _meltano_init(env) == []
        assets = ["tap_rewards", *(name.replace("-", "_") for name in BOOKINGS_GROUPS)]
        result = _result(_start(_spec("all_groups", tmp_path, assets=assets), env))
        secret = sb.credentials(rewards.api)["api_key"]
        counts = {s: len(sb.records("bookings", s)) for s in sb.streams("bookings")}

    assert not result["success"]
    steps = result["steps"]
    assert steps["tap_rewards"]["status"] == "failure"
    error = steps["tap_rewards"]["error"]
    assert error.startswith("tap-rewards: tap-rewards stream"), error
    assert "401" in error and "\n" not in error, error
    assert any("401 Unauthorized" in line for line in result["logs"])
    assert not any(secret in line for line in result["logs"]), "the api_key reached the logs"

    state_ids = {g: f"sandbox:tap-bookings-to-target-duckdb:{g}" for g in BOOKINGS_GROUPS}
    assert _meltano_init(env) == sorted(state_ids.values()), "a state per group, none for rewards"
    for group, streams in BOOKINGS_GROUPS.items():
        step = steps[group.replace("-", "_")]
        assert step["status"] == "success", group
        assert step["metadata"]["rows"] == {s: counts[s] for s in streams}, group
        assert sorted(_state(env, state_ids[group])["bookmarks"]) == streams, group
        with duckdb.connect(str(tmp_path / "duckdb" / f"{group}.duckdb"), read_only=True) as con:
            tables = con.execute(
                "select table_name from information_schema.tables where table_schema = ?",
                ["tap_bookings"],
            ).fetchall()
        assert sorted(t for (t,) in tables) == streams, group

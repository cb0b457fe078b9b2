"""State through Meltano: a second ``meltano run`` resumes where the first one stopped.

Meltano stores the tap's last STATE under the run's state ID and hands it back next
time; the tap then asks the API only for what is newer than its bookmarks. The sandbox's
request log shows what was asked, DuckDB what landed: every row once, merged on keys.
"""

from __future__ import annotations

import json
import os
import subprocess

import duckdb
import pytest

from tests.support import MELTANO, ROOT, TAPS, TapCase, meltano_run

pytestmark = pytest.mark.skipif(
    not (ROOT / ".meltano").exists(), reason="run scripts/setup.sh first (meltano install)"
)


def _incremental_streams(case: TapCase, sandbox) -> list:
    tap = case.tap_class(config=case.config(sandbox))
    return [s for s in tap.streams.values() if s.replication_key and not s.parent_stream_type]


def _requests_to(sandbox, case: TapCase, path: str) -> int:
    return sum(1 for r in sandbox.requests if r.api == case.api and r.path == path)


def _keys_in(database, case: TapCase, stream) -> list[tuple]:
    keys = ", ".join(f'"{k}"' for k in stream.primary_keys)
    schema = case.name.replace("-", "_")
    with duckdb.connect(str(database), read_only=True) as con:
        return con.execute(f'select {keys} from "{schema}"."{stream.name}"').fetchall()


@pytest.mark.parametrize("case", TAPS, ids=lambda case: case.name)
def test_a_second_meltano_run_resumes_from_the_stored_state(case, sandbox, tmp_path):
    streams = _incremental_streams(case, sandbox)
    if not streams:
        pytest.skip(f"{case.name} has no incremental stream: every run reads everything")
    stream = next((s for s in streams if sandbox.records(case.api, s.name)), streams[0])
    database = tmp_path / "warehouse.duckdb"
    # The stream under test alone (Meltano's select, as an env override): the other
    # streams' rows prove nothing about state and cost three runs each.
    select = {f"{case.name.upper().replace('-', '_')}__SELECT": json.dumps([f"{stream.name}.*"])}
    env = {"TARGET_DUCKDB_FILEPATH": str(database), **select}
    run = ("--state-id-suffix=test",)
    state_id = f"sandbox:{case.name}-to-target-duckdb:test"

    first = meltano_run(case, sandbox, tmp_path, "target-duckdb", *run, **env)
    assert first.returncode == 0, first.stderr[-3000:]
    full_requests = _requests_to(sandbox, case, stream.path)
    stored = subprocess.run(
        [MELTANO, "--environment=sandbox", "state", "get", state_id],
        cwd=ROOT,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        check=False,
    )
    assert stored.returncode == 0, stored.stderr[-2000:]
    bookmarks = json.loads(stored.stdout)["singer_state"]["bookmarks"]
    assert bookmarks[stream.name]["replication_key_value"], "Meltano stored the bookmark"

    before = len(_keys_in(database, case, stream))
    assert before == len(sandbox.records(case.api, stream.name))
    sandbox.mutate(case.api, stream.name, new=3)
    sandbox.clear_requests()
    second = meltano_run(case, sandbox, tmp_path, "target-duckdb", *run, **env)
    assert second.returncode == 0, second.stderr[-3000:]
    assert _requests_to(sandbox, case, stream.path) < full_requests, "the second run read less"
    truth = sandbox.records(case.api, stream.name)
    landed = _keys_in(database, case, stream)
    assert len(landed) == len(truth) and len(set(landed)) == len(landed), "every row once"
    assert len(landed) == before + 3, "the new rows landed"

    sandbox.clear_requests()
    again = meltano_run(case, sandbox, tmp_path, "target-duckdb", *run, "--full-refresh", **env)
    assert again.returncode == 0, again.stderr[-3000:]
    assert _requests_to(sandbox, case, stream.path) >= full_requests, "--full-refresh reads all"
    landed = _keys_in(database, case, stream)
    assert len(landed) == len(truth) and len(set(landed)) == len(landed)


def _env(tmp_path) -> dict:
    return {
        **os.environ,
        "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
        "MELTANO_CLI_DISABLE_VERSION_CHECK": "true",
        "MELTANO_STATE_BACKEND_URI": f"file://{tmp_path}/state",
    }

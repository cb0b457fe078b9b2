"""Any Singer target: every tap through Meltano into PostgreSQL and CSV, checked row by row.

PostgreSQL is a real server (scripts/postgres.sh), started once for the run; each test
gets a database of its own, so two taps or two runs never see each other's tables.
"""

from __future__ import annotations

import csv
import itertools
import typing as t

import psycopg
import pytest

from tests.support import ROOT, TAPS, TapCase, key_value, meltano_run

pytestmark = pytest.mark.skipif(
    not (ROOT / ".meltano").exists(), reason="run scripts/setup.sh first (meltano install)"
)

_databases = itertools.count()


@pytest.fixture
def database(postgres: dict) -> dict[str, t.Any]:
    """A new, empty database on the test server, with the settings target-postgres takes."""
    name = f"warehouse_{next(_databases)}"
    with psycopg.connect(**postgres, dbname="postgres", autocommit=True) as con:
        con.execute(f'create database "{name}"')
    return {**postgres, "dbname": name}


def _into_postgres(case: TapCase, sandbox: t.Any, tmp_path, database: dict, **env: str):
    proc = meltano_run(
        case,
        sandbox,
        tmp_path,
        "target-postgres",
        TARGET_POSTGRES_HOST=database["host"],
        TARGET_POSTGRES_PORT=str(database["port"]),
        TARGET_POSTGRES_USER=database["user"],
        TARGET_POSTGRES_PASSWORD=database["password"],
        TARGET_POSTGRES_DATABASE=database["dbname"],
        **env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]


def _table(database: dict, schema: str, table: str) -> list[dict] | None:
    """Every row of ``schema.table`` as dicts, or None when the table was never created."""
    with psycopg.connect(**database) as con:
        exists = con.execute(
            "select 1 from information_schema.tables where table_schema = %s and table_name = %s",
            [schema, table],
        ).fetchone()
        if not exists:
            return None
        cursor = con.execute(f'select * from "{schema}"."{table}"')
        names = [column.name for column in cursor.description or []]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _keys_of(case: TapCase, sandbox: t.Any, stream: str) -> tuple[str, ...]:
    return tuple(case.tap_class(config=case.config(sandbox)).streams[stream].primary_keys)


def _assert_table_matches(case: TapCase, sandbox: t.Any, database: dict, stream: str) -> list:
    truth = sandbox.records(case.api, stream)
    rows = _table(database, case.name.replace("-", "_"), stream)
    if rows is None:
        assert not truth, f"{stream}: no table, the sandbox has {len(truth)} rows"
        return []
    keys = _keys_of(case, sandbox, stream)
    loaded = [tuple(str(key_value(r[k])) for k in keys) for r in rows]
    assert len(loaded) == len(truth), f"{stream}: {len(loaded)} rows, sandbox has {len(truth)}"
    assert len(set(loaded)) == len(loaded), f"{stream}: a key landed twice"
    if all(k in r for r in truth for k in keys):
        assert set(loaded) == {tuple(str(key_value(r[k])) for k in keys) for r in truth}, stream
    return rows


@pytest.mark.parametrize("case", TAPS, ids=lambda case: case.name)
def test_postgres_holds_every_row_once_and_a_second_run_merges_changes(
    case, sandbox, tmp_path, database
):
    _into_postgres(case, sandbox, tmp_path, database)
    for stream in sandbox.streams(case.api):
        _assert_table_matches(case, sandbox, database, stream)

    # A list whose keys the sandbox's records carry as they are (not one the tap
    # derives, such as reporting's lifted transaction_id), and not a one-record reply
    # (a balances snapshot), whose "new" records would each be a snapshot of its own.
    stream = next(
        s
        for s in sandbox.streams(case.api)
        if len(truth := sandbox.records(case.api, s)) > 1
        and all(k in r for r in truth for k in _keys_of(case, sandbox, s))
    )
    changed = set(sandbox.mutate(case.api, stream, new=3, modified=3))
    # Only the changed stream the second time (Meltano's select, as an env override):
    # the merge is what is checked, and the other streams would only be reloaded.
    select = {f"{case.name.upper().replace('-', '_')}__SELECT": f'["{stream}.*"]'}
    _into_postgres(case, sandbox, tmp_path, database, **select)
    rows = _assert_table_matches(case, sandbox, database, stream)

    keys = _keys_of(case, sandbox, stream)
    by_key = {tuple(str(r[k]) for k in keys): r for r in rows}
    checked = 0
    for record in sandbox.records(case.api, stream):
        if not changed & {str(record.get(k)) for k in keys}:
            continue
        landed = by_key[tuple(str(record[k]) for k in keys)]
        for name, value in record.items():
            if isinstance(value, str) and isinstance(landed.get(name), str):
                assert landed[name] == value, f"{stream} {name}: the change did not land"
                checked += 1
    assert checked, f"{stream}: no changed text value was compared"


@pytest.mark.parametrize("case", TAPS, ids=lambda case: case.name)
def test_target_csv_writes_every_row_of_every_stream(case, shared, tmp_path):
    out = tmp_path / "csv"
    proc = meltano_run(case, shared, tmp_path, "target-csv", TARGET_CSV_OUTPUT_PATH=str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    for stream in shared.streams(case.api):
        truth = shared.records(case.api, stream)
        path = out / f"{stream}.csv"
        if not truth and not path.exists():
            continue
        with path.open(newline="") as handle:
            rows = list(csv.DictReader(handle))
        assert len(rows) == len(truth), f"{stream}: {len(rows)} rows, sandbox has {len(truth)}"
        keys = _keys_of(case, shared, stream)
        assert len({tuple(r[k] for k in keys) for r in rows}) == len(rows), stream

"""End to end: `meltano run` loads what the sandbox serves, through real targets."""

from __future__ import annotations

import decimal
import json
import typing as t

import duckdb
import pytest

from tests.support import (
    ROOT,
    TAPS,
    assert_duckdb_holds_the_sandbox,
    assert_matches_ground_truth,
    meltano_run,
    tap_case,
)

pytestmark = pytest.mark.skipif(
    not (ROOT / ".meltano").exists(), reason="run scripts/setup.sh first (meltano install)"
)


@pytest.mark.parametrize("case", TAPS, ids=lambda case: case.name)
def test_meltano_run_into_duckdb_lands_every_row_once(case, shared, tmp_path):
    database = tmp_path / "warehouse.duckdb"
    proc = meltano_run(
        case, shared, tmp_path, "target-duckdb", TARGET_DUCKDB_FILEPATH=str(database)
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert_duckdb_holds_the_sandbox(database, case, shared)


# Lists whose every value the API sends as text: rewards organizations (id, name,
# website, currency_code, status, created_at), invoicing customers (all upper-case text).
ALL_TEXT_TABLES = [("rewards", "organizations", "id"), ("invoicing", "customers", "CUSTOMER_ID")]


@pytest.mark.parametrize(("api", "stream", "key"), ALL_TEXT_TABLES, ids=lambda v: str(v))
def test_an_all_text_table_keeps_its_first_row(api, stream, key, shared, tmp_path):
    """duckdb >= 1.1 makes target-duckdb guess a CSV header: a table of text loses row 1."""
    case = tap_case(api)
    database = tmp_path / "warehouse.duckdb"
    proc = meltano_run(
        case, shared, tmp_path, "target-duckdb", TARGET_DUCKDB_FILEPATH=str(database)
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    schema = case.name.replace("-", "_")
    with duckdb.connect(str(database), read_only=True) as con:
        first = shared.records(api, stream)[0]
        found = con.execute(
            f'select count(*) from "{schema}"."{stream}" where "{key}" = ?', [first[key]]
        ).fetchone()
        assert found == (1,)


@pytest.mark.parametrize("case", TAPS, ids=lambda case: case.name)
def test_meltano_run_into_jsonl_writes_one_file_a_stream(case, shared, tmp_path):
    out = tmp_path / "jsonl"
    out.mkdir()
    proc = meltano_run(
        case, shared, tmp_path, "target-jsonl", TARGET_JSONL_DESTINATION_PATH=str(out)
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    for stream in shared.streams(case.api):
        truth = shared.records(case.api, stream)
        path = out / f"{stream}.jsonl"
        if not truth and not path.exists():
            continue
        lines: list[t.Any] = [json.loads(line) for line in path.read_text().splitlines() if line]
        assert len(lines) == len(truth), stream


def test_invoicing_lastupdate_lands_in_duckdb_as_the_timestamp_the_api_sent(shared, tmp_path):
    """The text ``2024-01-31 12:00:00`` arrives as a TIMESTAMP with the same digits."""
    case = tap_case("invoicing")
    database = tmp_path / "warehouse.duckdb"
    proc = meltano_run(
        case, shared, tmp_path, "target-duckdb", TARGET_DUCKDB_FILEPATH=str(database)
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    with duckdb.connect(str(database), read_only=True) as con:
        for stream, key in (("invoices", "INVOICE_ID"), ("customers", "CUSTOMER_ID")):
            loaded = dict(
                con.execute(
                    f'select "{key}", "LASTUPDATE" from tap_invoicing."{stream}"'
                ).fetchall()
            )
            for record in shared.records("invoicing", stream):
                sent, value = record["LASTUPDATE"], loaded[record[key]]
                if sent == "0000-00-00 00:00:00":
                    assert value is None, stream
                else:
                    assert value.strftime("%Y-%m-%d %H:%M:%S") == sent, stream


def test_bookings_lands_in_jsonl_record_for_record_as_the_sandbox_sent_it(shared, tmp_path):
    """Every value through Meltano, nested ones and the converted timestamps included."""
    case = tap_case("bookings")
    out = tmp_path / "jsonl"
    out.mkdir()
    proc = meltano_run(
        case, shared, tmp_path, "target-jsonl", TARGET_JSONL_DESTINATION_PATH=str(out)
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    for stream in shared.streams("bookings"):
        truth = shared.records("bookings", stream)
        path = out / f"{stream}.jsonl"
        text = path.read_text() if truth else ""
        lines = [json.loads(line, parse_float=decimal.Decimal) for line in text.splitlines()]
        assert_matches_ground_truth(case, stream, lines, truth)


def test_bookings_modified_lands_in_duckdb_as_the_instant_the_api_sent(shared, tmp_path):
    """``2022-09-21T13:22:16.3881969`` (UTC) arrives as that TIMESTAMP, to DuckDB's µs."""
    case = tap_case("bookings")
    database = tmp_path / "warehouse.duckdb"
    proc = meltano_run(
        case, shared, tmp_path, "target-duckdb", TARGET_DUCKDB_FILEPATH=str(database)
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    with duckdb.connect(str(database), read_only=True) as con:
        loaded = dict(con.execute('select id, "modified" from tap_bookings.account').fetchall())
    for record in shared.records("bookings", "account"):
        assert loaded[record["id"]].strftime("%Y-%m-%dT%H:%M:%S.%f") == record["modified"][:-1]

"""Schema drift (issue 19): a field the API adds is never lost without the user's say-so.

The sandbox's drift switch (api_sandbox.drift) adds four fields to a stream from a
chosen record on: a string, a number, a nested object, and ``drift_code``, an integer
that turns into a string a few records later. Ground truth carries them, so every check
compares what the tap wrote, or what a target loaded, with the sandbox's own records.
"""

from __future__ import annotations

import decimal
import json
import logging
import re
import typing as t

import duckdb
import jsonschema
import psycopg
import pytest
import requests

from api_sandbox import Sandbox
from api_sandbox.drift import FIELDS, Drift
from taps_core.drift import SchemaDrift, fits, infer, widen
from tests.support import (
    ROOT,
    TAPS,
    catalog_selecting,
    meltano_run,
    parse_messages,
    run_cli,
    sync_in_process,
    tap_case,
)

#: One small stream a tap, read as the API sends it (no projection, no post-processing
#: that rebuilds records), each gaining the drift fields from its fourth record on.
STREAMS = {
    "rewards": "rewards",
    "inventory": "item_groups",
    "invoicing": "recurring_invoices",
    "bookings": "subscription",
    "reporting": "list_payments",
}
START, STRING_FROM = 3, 8
#: For the stop under ``fail``: an incremental stream, drifting halfway down its list.
FAIL_STREAM, FAIL_START = "orders", 100
#: For PostgreSQL: a stream whose drift_code stays an integer. target-postgres 0.8.1
#: cannot change a column's type (``allow_column_alter`` is fixed to False in it), so a
#: widened type stops that load; the widening itself is proven on the tap's output and
#: through target-duckdb and target-jsonl.
PG_STREAM = "invoices"

REWARDS = tap_case("rewards")
needs_meltano = pytest.mark.skipif(
    not (ROOT / ".meltano").exists(), reason="run scripts/setup.sh first (meltano install)"
)


@pytest.fixture(scope="module")
def drifting() -> t.Iterator[Sandbox]:
    """One sandbox for the module whose chosen streams drift (read-only for the tests)."""
    drifts = [Drift(api, stream, START, STRING_FROM) for api, stream in STREAMS.items()]
    drifts.append(Drift("rewards", FAIL_STREAM, FAIL_START))
    drifts.append(Drift("rewards", PG_STREAM, START, string_from=10**6))
    with Sandbox(seed=42, drifts=drifts) as sandbox:
        yield sandbox


def _keys(case: t.Any, sandbox: Sandbox, stream: str) -> tuple[str, ...]:
    return tuple(case.tap_class(config=case.config(sandbox)).streams[stream].primary_keys)


def _by_key(records: list[dict], keys: tuple[str, ...]) -> dict[tuple, dict]:
    return {tuple(str(r.get(k)) for k in keys): r for r in records}


def _exact(value: t.Any) -> t.Any:
    """A value as the tap's output parses it (numbers as Decimal)."""
    return json.loads(json.dumps(value), parse_float=decimal.Decimal)


def _sync(case: t.Any, sandbox: Sandbox, stream: str, **settings: t.Any) -> t.Any:
    config = case.config(sandbox, **settings)
    return sync_in_process(
        case.tap_class, config, catalog=catalog_selecting(case.tap_class, config, stream)
    )


def _declared(schema_message: dict) -> set[str]:
    return set(schema_message["schema"]["properties"])


def _assert_valid_singer(messages: list[dict], stream: str) -> None:
    """Every message of the Singer kinds; every RECORD valid under the SCHEMA before it."""
    validator: jsonschema.Draft7Validator | None = None
    for message in messages:
        assert message["type"] in {"SCHEMA", "RECORD", "STATE", "ACTIVATE_VERSION"}, message
        if message["type"] == "SCHEMA":
            assert message["stream"] == stream
            assert all(k in message["schema"]["properties"] for k in message["key_properties"])
            jsonschema.Draft7Validator.check_schema(message["schema"])
            validator = jsonschema.Draft7Validator(message["schema"])
        elif message["type"] == "RECORD":
            assert validator is not None, "RECORD before its SCHEMA"
            validator.validate(message["record"])
    assert messages[-1]["type"] == "STATE"


@pytest.mark.parametrize("case", TAPS, ids=lambda case: case.name)
def test_evolve_declares_each_new_field_before_the_first_record_that_carries_it(
    case, drifting, caplog
):
    stream = STREAMS[case.api]
    with caplog.at_level(logging.WARNING):
        result = _sync(case, drifting, stream)
    messages = [m for m in result.messages if m.get("stream", stream) == stream]
    _assert_valid_singer(messages, stream)

    schemas = [i for i, m in enumerate(messages) if m["type"] == "SCHEMA"]
    first_drift = next(
        i for i, m in enumerate(messages) if m["type"] == "RECORD" and "drift_note" in m["record"]
    )
    declared_before = [i for i in schemas if i < first_drift]
    assert not set(FIELDS) & _declared(messages[schemas[0]]), "the first SCHEMA is the tap's"
    assert set(FIELDS) <= _declared(messages[declared_before[-1]]), "amended SCHEMA first"

    # Every record keeps every drift value the API sent; the others have none.
    keys = _keys(case, drifting, stream)
    truth = _by_key(drifting.records(case.api, stream), keys)
    emitted = _by_key(result.records(stream), keys)
    assert emitted.keys() == truth.keys()
    carrying = 0
    for key, record in emitted.items():
        sent = {name: truth[key][name] for name in FIELDS if name in truth[key]}
        assert {name: record.get(name) for name in sent} == _exact(sent), key
        assert not set(FIELDS) - set(sent) & set(record), key
        carrying += bool(sent)
    assert carrying == len(truth) - START

    # drift_code came as an integer, then as a string: its type widened, no value lost.
    code = messages[schemas[-1]]["schema"]["properties"]["drift_code"]
    assert {"integer", "string", "null"} <= set(code["type"]), code
    detail = messages[schemas[-1]]["schema"]["properties"]["drift_detail"]
    assert set(detail["properties"]) == {"level", "label"}, "the nested object is declared"

    # One warning a new field, naming the stream and the field, never a value.
    new = [r.getMessage() for r in caplog.records if "new property" in r.getMessage()]
    assert len(new) == len(FIELDS), new
    for name in FIELDS:
        assert sum(f" {name} " in line and stream in line for line in new) == 1, new
    assert not any(re.search(r"note \d|C-\d|\d\.25", line) for line in new), "a value logged"


def test_sdk_record_path_with_a_stream_map_also_evolves(drifting):
    stream = STREAMS["rewards"]
    maps = {"stream_maps": {stream: {"source_name": "'sandbox'"}}}
    result = _sync(REWARDS, drifting, stream, **maps)
    messages = [m for m in result.messages if m.get("stream", stream) == stream]
    _assert_valid_singer(messages, stream)
    first_drift = next(
        i for i, m in enumerate(messages) if m["type"] == "RECORD" and "drift_note" in m["record"]
    )
    schema = [m for m in messages[:first_drift] if m["type"] == "SCHEMA"][-1]
    assert set(FIELDS) | {"source_name"} <= _declared(schema)
    truth = drifting.records("rewards", stream)
    records = result.records(stream)
    assert len(records) == len(truth)
    assert all(r["source_name"] == "sandbox" for r in records), "the stream map still applies"
    assert sum("drift_code" in r for r in records) == len(truth) - START
    final = [m for m in messages if m["type"] == "SCHEMA"][-1]
    assert "string" in final["schema"]["properties"]["drift_code"]["type"]


def test_sdk_record_path_with_flattening_also_evolves(drifting):
    stream = STREAMS["rewards"]
    result = _sync(REWARDS, drifting, stream, flattening_enabled=True, flattening_max_depth=3)
    messages = [m for m in result.messages if m.get("stream", stream) == stream]
    _assert_valid_singer(messages, stream)
    flat = {"drift_note", "drift_score", "drift_detail__level", "drift_detail__label"}
    assert flat <= _declared([m for m in messages if m["type"] == "SCHEMA"][-1])
    truth = drifting.records("rewards", stream)
    levels = [r.get("drift_detail__level") for r in result.records(stream)]
    assert sorted(v for v in levels if v is not None) == sorted(
        r["drift_detail"]["level"] for r in truth if "drift_detail" in r
    )


def test_drop_leaves_new_fields_out_with_one_warning_each(drifting, caplog):
    stream = STREAMS["rewards"]
    with caplog.at_level(logging.WARNING):
        result = _sync(REWARDS, drifting, stream, schema_drift="drop")
    assert len(result.records(stream)) == len(drifting.records("rewards", stream))
    assert not any(set(FIELDS) & set(r) for r in result.records(stream))
    assert [m["type"] for m in result.messages].count("SCHEMA") == 1, "no amended SCHEMA"
    dropped = [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]
    assert sorted(dropped) == sorted(
        f"Stream {stream}: property {name} is not in the schema; dropped (schema_drift is drop)."
        for name in FIELDS
    )


def test_a_deselected_field_stays_out_even_when_the_api_adds_it(drifting):
    stream = STREAMS["rewards"]
    config = REWARDS.config(drifting)
    catalog = catalog_selecting(REWARDS.tap_class, config, stream)
    entry = next(e for e in catalog["streams"] if e["tap_stream_id"] == stream)
    entry["metadata"].append(
        {"breadcrumb": ["properties", "drift_note"], "metadata": {"selected": False}}
    )
    result = sync_in_process(REWARDS.tap_class, config, catalog=catalog)
    assert not any("drift_note" in r for r in result.records(stream))
    schemas = [m for m in result.messages if m["type"] == "SCHEMA"]
    assert all("drift_note" not in _declared(m) for m in schemas)
    assert "drift_score" in _declared(schemas[-1]), "the other new fields still evolve"


def test_fail_stops_before_the_record_exit_1_one_line_and_the_next_sync_resumes(drifting, tmp_path):
    config = REWARDS.config(drifting, schema_drift="fail")
    catalog = catalog_selecting(REWARDS.tap_class, config, FAIL_STREAM)
    catalog_file = tmp_path / "catalog.json"
    catalog_file.write_text(json.dumps(catalog))
    catalog_text = catalog_file.read_text()
    failed = run_cli(REWARDS.executable, config, tmp_path, "--catalog", str(catalog_file))

    assert failed.returncode == 1, failed.stderr[-2000:]
    assert "Traceback" not in failed.stderr
    errors = [line for line in failed.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1, errors
    assert f"stream '{FAIL_STREAM}'" in errors[0]
    assert all(name in errors[0] for name in FIELDS), errors[0]
    written = failed.sync.records(FAIL_STREAM)
    assert written, "the records before the drift were written"
    assert not any(set(FIELDS) & set(r) for r in written), "no drifted record was written"
    assert failed.sync.messages[-1]["type"] == "STATE"
    state = failed.sync.last_state
    assert FAIL_STREAM in state.get("bookmarks", {}), state

    # The next sync (now evolving) starts from that state: with what the first wrote,
    # every record of the list is there, and the catalog file is as the user wrote it.
    config["schema_drift"] = "evolve"
    resumed = run_cli(
        REWARDS.executable, config, tmp_path, "--catalog", str(catalog_file), state=state
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    ids = {r["id"] for r in written} | {r["id"] for r in resumed.sync.records(FAIL_STREAM)}
    truth = drifting.records("rewards", FAIL_STREAM)
    assert ids == {r["id"] for r in truth}
    drifted = {r["id"] for r in truth if "drift_code" in r}
    assert drifted <= {r["id"] for r in resumed.sync.records(FAIL_STREAM) if "drift_code" in r}
    assert catalog_file.read_text() == catalog_text


def test_discovery_declares_only_the_schema_files_fields(drifting):
    catalog = REWARDS.tap_class(config=REWARDS.config(drifting)).catalog_dict
    entry = next(e for e in catalog["streams"] if e["tap_stream_id"] == STREAMS["rewards"])
    assert not set(FIELDS) & set(entry["schema"]["properties"])


# -- through Meltano into real targets ----------------------------------------------------


def _meltano(sandbox: Sandbox, tmp_path: t.Any, loader: str, stream: str, **env: str) -> None:
    proc = meltano_run(
        REWARDS, sandbox, tmp_path, loader, TAP_REWARDS__SELECT=f'["{stream}.*"]', **env
    )
    assert proc.returncode == 0, proc.stderr[-3000:]


def _assert_rows_hold_the_drift(rows: list[dict], sandbox: Sandbox, stream: str) -> None:
    """Every row once; the drift columns hold the API's values, null before the drift
    (target-jsonl writes records as they come: there a row before the drift lacks them)."""
    truth = {r["id"]: r for r in sandbox.records("rewards", stream)}
    assert len(rows) == len(truth), f"{len(rows)} rows, the sandbox has {len(truth)}"
    assert {r["id"] for r in rows} == set(truth), "a row lost or doubled"
    for row in rows:
        sent = truth[row["id"]]
        assert row.get("drift_note") == sent.get("drift_note"), row["id"]
        score = row.get("drift_score")
        assert (None if score is None else float(score)) == sent.get("drift_score"), row["id"]
        detail = row.get("drift_detail")
        detail = json.loads(detail) if isinstance(detail, str) else detail
        assert detail == sent.get("drift_detail"), row["id"]
    assert sum(r.get("drift_note") is None for r in rows) == START


def _codes(row: dict) -> t.Any:
    """drift_code as loaded; a target that cannot change a column's type in place keeps
    the earlier values in a renamed column (target-duckdb: ``drift_code_<timestamp>``)."""
    values = [v for k, v in row.items() if k.startswith("drift_code") and v is not None]
    assert len(values) <= 1, row
    return str(values[0]) if values else None


@needs_meltano
def test_meltano_into_duckdb_and_jsonl_gains_the_columns_and_every_value(drifting, tmp_path):
    database = tmp_path / "warehouse.duckdb"
    stream = STREAMS["rewards"]
    _meltano(drifting, tmp_path, "target-duckdb", stream, TARGET_DUCKDB_FILEPATH=str(database))
    with duckdb.connect(str(database), read_only=True) as con:
        cursor = con.execute(f'select * from tap_rewards."{stream}"')
        names = [d[0] for d in cursor.description]
        rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    _assert_rows_hold_the_drift(rows, drifting, stream)
    truth = {r["id"]: r for r in drifting.records("rewards", stream)}
    for row in rows:
        code = truth[row["id"]].get("drift_code")
        assert _codes(row) == (None if code is None else str(code)), row["id"]

    out = tmp_path / "jsonl"
    _meltano(drifting, tmp_path, "target-jsonl", stream, TARGET_JSONL_DESTINATION_PATH=str(out))
    rows = [json.loads(line) for line in (out / f"{stream}.jsonl").read_text().splitlines()]
    _assert_rows_hold_the_drift(rows, drifting, stream)
    for row in rows:
        assert row.get("drift_code") == truth[row["id"]].get("drift_code"), row["id"]


@needs_meltano
def test_meltano_into_postgres_gains_the_columns_with_every_value(drifting, tmp_path, postgres):
    name = "drift_warehouse"
    with psycopg.connect(**postgres, dbname="postgres", autocommit=True) as con:
        con.execute(f'drop database if exists "{name}"')
        con.execute(f'create database "{name}"')
    _meltano(
        drifting,
        tmp_path,
        "target-postgres",
        PG_STREAM,
        TARGET_POSTGRES_HOST=postgres["host"],
        TARGET_POSTGRES_PORT=str(postgres["port"]),
        TARGET_POSTGRES_USER=postgres["user"],
        TARGET_POSTGRES_PASSWORD=postgres["password"],
        TARGET_POSTGRES_DATABASE=name,
    )
    with psycopg.connect(**postgres, dbname=name) as con:
        cursor = con.execute(f'select * from tap_rewards."{PG_STREAM}"')
        names = [column.name for column in cursor.description or []]
        rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    _assert_rows_hold_the_drift(rows, drifting, PG_STREAM)
    truth = {r["id"]: r for r in drifting.records("rewards", PG_STREAM)}
    for row in rows:
        assert row["drift_code"] == truth[row["id"]].get("drift_code"), row["id"]


def test_sandbox_drift_switch_over_http_and_its_cli_form():
    spec = "api=rewards,stream=members,start=2,string_from=4"
    assert Drift.parse(spec) == Drift("rewards", "members", 2, 4)
    with pytest.raises(ValueError, match="unknown drift fields"):
        Drift.parse("api=rewards,stream=members,colour=red")
    with Sandbox(seed=42) as sandbox:
        control = f"{sandbox.url}/_sandbox/drift"
        body = json.dumps({"api": "rewards", "stream": "members", "start": 2, "string_from": 4})
        assert requests.post(control, data=body, timeout=10).status_code == 201
        bad = json.dumps({"api": "rewards", "stream": "nope"})
        assert requests.post(control, data=bad, timeout=10).status_code == 400
        assert requests.get(control, timeout=10).json() == [Drift.parse(spec).to_json()]
        served = requests.get(f"{sandbox.url}/_sandbox/records/rewards/members", timeout=10)
        rows = served.json()
    assert [set(FIELDS) <= set(r) for r in rows] == [i >= 2 for i in range(len(rows))]
    assert [r["drift_code"] for r in rows[2:5]] == [2, 3, "C-4"]


def test_drift_values_parse_as_the_tap_writes_them():
    """The sandbox's drift values, through the tap's own parser: the oracle is sound."""
    values = Drift("rewards", "rewards", 0, 2).values(3)
    assert parse_messages(json.dumps({"type": "STATE", "value": values})).last_state == _exact(
        values
    )
    assert Drift("rewards", "rewards", 0, 2).values(1)["drift_code"] == 1
    assert Drift("rewards", "rewards", 5).values(4) == {}


# -- the inference itself, on records no sandbox stream has -------------------------------


def test_types_are_inferred_nullable_and_widen_without_losing_a_kind():
    assert infer({"a": 1, "b": None, "c": [decimal.Decimal("1.5")]}) == {
        "type": ["object", "null"],
        "properties": {
            "a": {"type": ["integer", "null"]},
            "c": {"type": ["array", "null"], "items": {"type": ["number", "null"]}},
        },
    }
    assert widen(infer(1), infer(decimal.Decimal("2.5"))) == {"type": ["number", "null"]}
    assert widen(infer(1), infer("x")) == {"type": ["integer", "string", "null"]}
    assert widen(infer({"a": 1}), infer({"b": "x"}))["properties"] == {
        "a": {"type": ["integer", "null"]},
        "b": {"type": ["string", "null"]},
    }
    assert not fits(True, infer(1)), "a boolean is no integer to JSON Schema"
    assert fits(3, infer(decimal.Decimal("1.5"))), "an integer is a number"
    assert not fits({"a": 1, "new": 2}, infer({"a": 1})), "a new nested key does not fit"


def test_new_keys_in_declared_objects_and_list_items_are_declared_where_they_are(caplog):
    schema = {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "payment": {"type": "object", "properties": {"amount": {"type": "number"}}},
            "lines": {
                "type": "array",
                "items": {"type": "object", "properties": {"sku": {"type": "string"}}},
            },
        },
    }
    original = json.dumps(schema)
    drift = SchemaDrift("orders", schema, "evolve", logging.getLogger("tests.drift"))
    record = {
        "id": "1",
        "payment": {"amount": 1, "card": {"last4": "4242"}},
        "lines": [{"sku": "a", "qty": 2}],
        "later": None,
    }
    with caplog.at_level(logging.WARNING, logger="tests.drift"):
        assert drift.evolve(record)
    properties = drift.schema["properties"]
    assert properties["payment"]["properties"]["card"]["properties"]["last4"]["type"] == [
        "string",
        "null",
    ]
    assert properties["lines"]["items"]["properties"]["qty"]["type"] == ["integer", "null"]
    assert "later" not in properties and "later" not in record, "an all-null field waits"
    assert json.dumps(schema) == original, "the catalog's schema is left as it was"
    named = sorted(r.getMessage().split()[4] for r in caplog.records)
    assert named == ["lines.qty", "payment.card"]
    assert drift.evolve({"lines": [{"sku": "b", "qty": "two"}]}), "text widens the integer"
    assert properties_of(drift, "lines", "[]", "qty") == ["integer", "string", "null"]
    assert not drift.evolve({"lines": [{"sku": "c", "qty": 3}]}), "3 fits: no new SCHEMA"


def properties_of(drift: SchemaDrift, *path: str) -> list[str]:
    schema = drift.schema
    for step in path:
        schema = schema["items"] if step == "[]" else schema["properties"][step]
    return schema["type"]

"""Every tap's raw stdout keeps the Singer spec, line by line, whatever target reads it."""

from __future__ import annotations

import json

import pytest

from tests.support import TAPS, run_cli


@pytest.mark.parametrize("case", TAPS, ids=lambda case: case.name)
def test_raw_output_is_valid_singer(case, shared, tmp_path):
    result = run_cli(case.executable, case.config(shared), tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    assert lines, "no output"
    messages = []
    for number, line in enumerate(lines, 1):
        try:
            message = json.loads(line)
        except json.JSONDecodeError as error:
            pytest.fail(f"line {number} is not JSON ({error}): {line[:200]}")
        assert isinstance(message, dict) and message.get("type") in {
            "SCHEMA",
            "RECORD",
            "STATE",
            "ACTIVATE_VERSION",
        }, f"line {number}: {line[:200]}"
        messages.append(message)

    schemas: dict[str, dict] = {}
    for message in messages:
        kind = message["type"]
        if kind == "SCHEMA":
            assert isinstance(message.get("schema"), dict), message["stream"]
            assert isinstance(message.get("key_properties"), list), message["stream"]
            assert all(k in message["schema"]["properties"] for k in message["key_properties"])
            schemas[message["stream"]] = message
        elif kind == "RECORD":
            assert message["stream"] in schemas, f"RECORD of {message['stream']} before its SCHEMA"
            assert isinstance(message["record"], dict)
        elif kind == "STATE":
            assert isinstance(message.get("value"), dict), "a STATE value is a JSON object"
    assert messages[-1]["type"] == "STATE", "the last message is a STATE"
    assert set(schemas) == set(shared.streams(case.api))

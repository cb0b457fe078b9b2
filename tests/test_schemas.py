"""Each tap's schemas declare every field of ../shared/api-fields/<api>.json."""

from __future__ import annotations

import json

import pytest

from tests.support import ROOT, TAPS

FIELDS_DIR = ROOT.parent / "shared" / "api-fields"


def _missing(declared: dict, expected: dict, path: str) -> list[str]:
    """Fields of ``expected`` that ``declared`` lacks or types differently, recursively."""
    problems = []
    if expected.get("type") != declared.get("type"):
        problems.append(f"{path}: type {declared.get('type')} != {expected.get('type')}")
    if expected.get("format") != declared.get("format"):
        problems.append(f"{path}: format {declared.get('format')} != {expected.get('format')}")
    for name, sub in expected.get("properties", {}).items():
        if name not in declared.get("properties", {}):
            problems.append(f"{path}.{name}: missing")
        else:
            problems += _missing(declared["properties"][name], sub, f"{path}.{name}")
    if "items" in expected:
        problems += _missing(declared.get("items", {}), expected["items"], f"{path}[]")
    return problems


@pytest.mark.parametrize("case", TAPS, ids=lambda case: case.name)
def test_schemas_declare_every_field_the_api_returns(case):
    fields_file = FIELDS_DIR / f"{case.api}.json"
    if not fields_file.exists():
        pytest.skip(f"{fields_file} is not beside this checkout")
    expected = json.loads(fields_file.read_text())
    tap = case.tap_class(config={}, validate_config=False)
    assert set(tap.streams) == set(expected)
    problems = []
    for name, stream in tap.streams.items():
        api_schema = expected[name]
        for field, conversion in case.converted.items():  # what the tap converts on purpose
            if field in api_schema.get("properties", {}):
                props = api_schema["properties"]
                props[field] = {**props[field], **conversion.schema}
        problems += _missing(stream.schema, api_schema, name)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("case", TAPS, ids=lambda case: case.name)
def test_every_primary_key_is_a_declared_property(case):
    tap = case.tap_class(config={}, validate_config=False)
    for name, stream in tap.streams.items():
        assert stream.primary_keys, f"{name} has no primary key"
        for key in stream.primary_keys:
            assert key in stream.schema["properties"], f"{name}.{key}"

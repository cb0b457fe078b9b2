"""The README's tables are the taps' own: settings from ``--about``, streams from their classes."""

from __future__ import annotations

import pytest

from tests import readme_tables
from tests.support import TAPS

MADE = readme_tables.blocks()
WRITTEN = readme_tables.written()


@pytest.mark.parametrize("name", sorted(MADE))
def test_the_readme_table_matches_what_the_taps_declare(name):
    assert name in WRITTEN, (
        f"README.md has no '{name}' block: run python -m tests.readme_tables --write"
    )
    assert WRITTEN[name] == MADE[name], (
        f"README.md '{name}' differs from the tap: run python -m tests.readme_tables --write"
    )


@pytest.mark.parametrize("case", TAPS, ids=lambda case: case.name)
def test_every_tap_has_a_settings_and_a_streams_table(case):
    assert {f"settings {case.name}", f"streams {case.name}"} <= set(WRITTEN)


def test_the_readme_has_a_troubleshooting_section_for_the_messages_users_see():
    text = readme_tables.README.read_text()
    assert "## Troubleshooting" in text
    for message in (
        "connection refused by HOST:PORT",
        "is not valid JSON (line L, column C",
        "has no list of streams",
        "did you mean 'start_date'?",
        "is in the future",
        "LOGLEVEL",
    ):
        assert message in text, message

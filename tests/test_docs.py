"""docs/<tap>.md is each tap's own ``--about``: the reference never drifts from the code."""

from __future__ import annotations

import subprocess

import pytest

from tests.support import ROOT, TAPS


@pytest.mark.parametrize("case", TAPS, ids=lambda case: case.name)
def test_the_docs_page_is_what_the_tap_says_about_itself(case):
    about = subprocess.run(
        [case.executable, "--about", "--format=markdown"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    page = ROOT / "docs" / f"{case.name}.md"
    assert page.exists(), f"{page} is missing: run scripts/docs.sh"
    assert page.read_text() == about, f"{page} differs from --about: run scripts/docs.sh"

"""Fixtures: a fresh sandbox for tests that change it, a shared one for those that read."""

from __future__ import annotations

import os
import typing as t

import pytest

from tests.support import shared_sandbox

os.environ.setdefault("MELTANO_SEND_ANONYMOUS_USAGE_STATS", "false")
os.environ.setdefault("MELTANO_CLI_DISABLE_VERSION_CHECK", "true")


@pytest.fixture
def sandbox() -> t.Iterator[t.Any]:
    """A sandbox of this test's own: faults and data changes stay here."""
    from api_sandbox import Sandbox

    with Sandbox(seed=42) as sb:
        yield sb


@pytest.fixture(scope="session")
def shared() -> t.Any:
    return shared_sandbox()

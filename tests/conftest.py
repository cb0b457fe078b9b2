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


@pytest.fixture(scope="session")
def postgres() -> t.Iterator[dict[str, t.Any]]:
    """A throwaway PostgreSQL server on 127.0.0.1 (scripts/postgres.sh), for the run.

    Where no server can be had (no package, no root to install one), the tests that
    need it are skipped with the one line that says why, never silently.
    """
    import shutil
    import socket
    import subprocess
    import tempfile

    from tests.support import ROOT

    script = str(ROOT / "scripts" / "postgres.sh")
    installed = subprocess.run(
        ["bash", script, "install"], capture_output=True, text=True, check=False
    )
    if installed.returncode != 0:
        pytest.skip(f"PostgreSQL tests skipped: {installed.stderr.strip()}")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    directory = tempfile.mkdtemp(prefix="taps-postgres-")
    os.chmod(directory, 0o755)  # the server runs as an unprivileged user when we are root
    started = subprocess.run(
        ["bash", script, "start", directory, str(port)], capture_output=True, text=True, check=False
    )
    if started.returncode != 0:
        shutil.rmtree(directory, ignore_errors=True)
        pytest.skip(f"PostgreSQL tests skipped: {started.stderr.strip()}")
    try:
        # trust authentication: target-postgres insists on a password, any one does
        yield {"host": "127.0.0.1", "port": port, "user": "postgres", "password": "postgres"}
    finally:
        subprocess.run(["bash", script, "stop", directory], check=False)
        shutil.rmtree(directory, ignore_errors=True)

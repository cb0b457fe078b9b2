#!/usr/bin/env bash
# The test suite: set up, lint, then every test against the sandbox over HTTP.
set -euo pipefail
cd "$(dirname "$0")/.."
export MELTANO_SEND_ANONYMOUS_USAGE_STATS=false MELTANO_CLI_DISABLE_VERSION_CHECK=true
./scripts/setup.sh
# A real PostgreSQL server for the target-postgres tests (started by the tests on
# 127.0.0.1 and stopped after); where it cannot be installed they skip, saying why.
bash scripts/postgres.sh install || true
.venv/bin/ruff check .
.venv/bin/ruff format --check .
# Two workers (the CI machine's two cores); Meltano commands of one tap take turns
# (tests/support.py meltano_lock).
.venv/bin/pytest -n "${PYTEST_WORKERS:-2}" "$@"

#!/usr/bin/env bash
# The one benchmark command of issue 7: ./benchmarks/run.sh [--records N] [--rounds R]
# [--memory] [--profile] [--only a,b]. See benchmarks/README.md.
#
# Makes sure both venvs exist, then hands over to run.py under the project's python:
# - .venv (the taps, the sandbox, the pinned target-duckdb) through scripts/setup.sh;
# - benchmarks/.venv for dlt, kept apart because dlt is a benchmark-only extra and its
#   duckdb would clash with the duckdb==1.0.0 that target-duckdb is pinned to.
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1

./scripts/setup.sh

PYTHON=${PYTHON:-python3}
stamp=benchmarks/.venv/.installed-$(sha1sum < benchmarks/requirements.txt | cut -c1-12)
if [ ! -f "$stamp" ]; then
  echo "creating benchmarks/.venv (dlt, first run only)" >&2
  if [ ! -x benchmarks/.venv/bin/python ]; then
    "$PYTHON" -m venv benchmarks/.venv
  fi
  benchmarks/.venv/bin/python -m pip install -q -r benchmarks/requirements.txt
  rm -f benchmarks/.venv/.installed-*
  touch "$stamp"
fi

exec .venv/bin/python benchmarks/run.py "$@"

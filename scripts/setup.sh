#!/usr/bin/env bash
# Set up a fresh clone: a venv with the taps, the sandbox and the dev tools, and the
# Meltano plugins. Idempotent: a second run only checks what is there.
set -euo pipefail
cd "$(dirname "$0")/.."
export MELTANO_SEND_ANONYMOUS_USAGE_STATS=false MELTANO_CLI_DISABLE_VERSION_CHECK=true
export PIP_DISABLE_PIP_VERSION_CHECK=1

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.installed-$(cat pyproject.toml | sha1sum | cut -c1-12)
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[dev]'
  touch "$stamp"
fi
stamp=.meltano/.installed-$(cat meltano.yml pyproject.toml | sha1sum | cut -c1-12)
if [ ! -f "$stamp" ]; then
  .venv/bin/meltano install
  touch "$stamp"
fi

# The Dagster definitions (orchestration/) get a venv of their own, .venv-orchestrate:
# dagster's gql pulls the old `backoff` distribution, which would overwrite the module
# singer-sdk takes from python-backoff in .venv. The orchestration code only starts
# .venv/bin/meltano, so this venv holds the `orchestrate` extra and the project without
# its dependencies (no taps, no singer-sdk).
if [ ! -x .venv-orchestrate/bin/python ]; then
  "$PYTHON" -m venv .venv-orchestrate
fi
stamp=.venv-orchestrate/.installed-$(cat pyproject.toml | sha1sum | cut -c1-12)
if [ ! -f "$stamp" ]; then
  .venv-orchestrate/bin/python -m pip install -q --upgrade pip
  mapfile -t requirements < <(.venv-orchestrate/bin/python -c '
try:
    import tomllib
except ImportError:  # Python 3.10: the TOML reader pip carries
    from pip._vendor import tomli as tomllib
with open("pyproject.toml", "rb") as f:
    print("\n".join(tomllib.load(f)["project"]["optional-dependencies"]["orchestrate"]))')
  .venv-orchestrate/bin/python -m pip install -q "${requirements[@]}"
  .venv-orchestrate/bin/python -m pip install -q --no-deps -e .
  touch "$stamp"
fi

#!/usr/bin/env bash
# Dagster on this machine, in one command: set up, start the sandbox APIs on port 8765
# (what meltano.yml's sandbox environment reads; SANDBOX=0 skips it, for prod), then
# `dagster dev` from the repository root (pyproject.toml's [tool.dagster] names the
# definitions). The UI is http://127.0.0.1:3000; runs and schedules persist in
# .dagster/ unless DAGSTER_HOME says otherwise. Extra arguments go to `dagster dev`.
set -euo pipefail
cd "$(dirname "$0")/.."
export MELTANO_SEND_ANONYMOUS_USAGE_STATS=false MELTANO_CLI_DISABLE_VERSION_CHECK=true
./scripts/setup.sh

export DAGSTER_HOME=${DAGSTER_HOME:-$PWD/.dagster}
mkdir -p "$DAGSTER_HOME" output
if [ "${SANDBOX:-1}" != 0 ]; then
  .venv/bin/api-sandbox serve --port 8765 > output/sandbox.log 2>&1 &
  sandbox=$!
  trap 'kill $sandbox 2>/dev/null || true' EXIT
fi
# In the foreground, so that Ctrl-C reaches dagster dev (it then stops its webserver,
# daemon and code server; a background child of a script would ignore SIGINT).
.venv-orchestrate/bin/dagster dev "$@"

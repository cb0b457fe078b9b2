#!/usr/bin/env bash
# The main job: set up, start the sandbox APIs, run every tap into DuckDB with Meltano,
# and print each table's row count beside the sandbox's own count.
set -euo pipefail
cd "$(dirname "$0")/.."
export MELTANO_SEND_ANONYMOUS_USAGE_STATS=false MELTANO_CLI_DISABLE_VERSION_CHECK=true
./scripts/setup.sh

PORT=${SANDBOX_PORT:-8765}
# Every extractor meltano.yml defines (all five taps), unless TAPS names some.
TAPS=${TAPS:-$(sed -n 's/^  - name: \(tap-[a-z-]*\)$/\1/p' meltano.yml | tr '\n' ' ')}
mkdir -p output
rm -f output/warehouse.duckdb
.venv/bin/api-sandbox serve --port "$PORT" > output/sandbox.log 2>&1 &
sandbox=$!
trap 'kill $sandbox 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  grep -q "^rewards " output/sandbox.log 2>/dev/null && break
  kill -0 $sandbox 2>/dev/null || { cat output/sandbox.log; exit 1; }
  sleep 0.1
done
echo "Sandbox APIs:"; grep "http://" output/sandbox.log

for tap in $TAPS; do
  # meltano.yml's sandbox environment names port 8765: point the tap at this port.
  api=${tap#tap-}
  var=$(echo "${tap}_BASE_URL" | tr 'a-z-' 'A-Z_')
  extra=()
  # tap-inventory's token URL is on another host in production; the sandbox serves it.
  if [ "$tap" = tap-inventory ]; then
    extra=("TAP_INVENTORY_TOKEN_URL=http://127.0.0.1:$PORT/inventory/oauth/v2/token")
  fi
  env "$var=http://127.0.0.1:$PORT/$api" "${extra[@]}" \
    .venv/bin/meltano --environment=sandbox run --full-refresh "$tap" target-duckdb
done
.venv/bin/python scripts/row_counts.py output/warehouse.duckdb --sandbox "http://127.0.0.1:$PORT"

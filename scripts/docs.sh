#!/usr/bin/env bash
# Write each tap's `--about --format=markdown` into docs/<tap>.md, the settings and
# capabilities reference the README links to. tests/test_docs.py fails when a file
# drifts from the code: run this after changing a tap's settings.
set -euo pipefail
cd "$(dirname "$0")/.."
for tap in $(.venv/bin/python -c "from tests.support import TAPS; print(' '.join(c.name for c in TAPS))"); do
  ".venv/bin/$tap" --about --format=markdown > "docs/$tap.md"
done

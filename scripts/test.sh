#!/usr/bin/env bash
# The test command of the README and CI: set up .venv (idempotent, seconds when nothing changed), then pytest.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -m "not slow"` or `bash scripts/test.sh test/test_messages.py`.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup.sh
echo "[test] .venv/bin/python -m pytest $*"
exec .venv/bin/python -m pytest "$@"

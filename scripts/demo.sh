#!/usr/bin/env bash
# The README's demo command: set up .venv (idempotent), then run the demo. Extra arguments go to the demo.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup.sh
if [[ -x .venv/bin/hetskel-demo ]]; then
  exec .venv/bin/hetskel-demo "$@"
fi
# Until the recognition demo exists: show how the real mocap topology maps to the unified skeleton.
exec .venv/bin/hetskel-topology show bandai_mocap "$@"

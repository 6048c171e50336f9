#!/usr/bin/env bash
# Start Chimera: sets up .venv on first use (make setup), then runs the CLI.
#   ./start.sh                                   # the demo: a multi-symbol live simulation
#   ./start.sh run --symbol AAPL,NVDA --duration 600 --speed 1
#   ./start.sh replay tape.jsonl.zst --speed max --db runs.sqlite
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -x .venv/bin/chimera ]; then
    make --no-print-directory setup >&2
fi
if [ "$#" -eq 0 ]; then
    set -- demo
fi
exec .venv/bin/chimera "$@"

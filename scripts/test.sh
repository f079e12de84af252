#!/usr/bin/env bash
# Set up, then run the fast test suite (unit tests and short end-to-end CLI runs).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest "$@"

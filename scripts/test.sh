#!/usr/bin/env bash
# Set up, then lint and run the fast test suite (unit tests and short end-to-end CLI runs).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check src tests benchmarks
exec .venv/bin/python -m pytest "$@"

#!/usr/bin/env bash
# Set up, then lint and run the fast test suite (unit tests and short end-to-end CLI runs).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check src tests benchmarks
# One worker per core, a test file per worker (module fixtures such as a local Ray stay put);
# the ten slowest tests are listed at the end.
exec .venv/bin/python -m pytest -n auto --dist loadfile --durations=10 "$@"

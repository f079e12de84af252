#!/usr/bin/env bash
# Set up, then run the main job on a small default: a short maze pre-training that ends by
# writing coverage.png (and coverage.json) in its run directory under runs/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/edp pretrain --env maze/square_tree --agent edp --frames 20000 "$@"

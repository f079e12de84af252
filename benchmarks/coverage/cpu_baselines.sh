#!/usr/bin/env bash
# The baselines of the `cpu` study (issue 20), one agent at a time over the seven mazes, 4 seeds.
# Re-invoke to continue: run.py skips recorded runs and resumes from the 20k-frame checkpoints
# left in benchmarks/coverage/work on this machine. Log progress with
#   nohup bash benchmarks/coverage/cpu_baselines.sh > benchmarks/coverage/work/cpu_baselines.log 2>&1 &
set -euo pipefail
cd "$(dirname "$0")/../.."
for agent in aps cic smm diayn icm rnd disagreement apt proto; do
    python benchmarks/coverage/run.py --preset cpu --agents "$agent" --seeds 0 1 2 3
done

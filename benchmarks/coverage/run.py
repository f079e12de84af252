"""Maze coverage benchmark: agents x mazes x seeds, then `edp report` into this folder.

    python benchmarks/coverage/run.py --agents random edp ddpg --seeds 0 1 2 --jobs 2

Each run is the real CLI (`edp pretrain`) in its own process; runs whose coverage.json already
exists under --root with the requested frames are skipped, so the script can be re-invoked.
Prints the command, the machine and the resulting table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from edp.envs.maze import MAZE_NAMES
from edp.report import ReportConfig, write_report

HERE = Path(__file__).parent
# Outside the checkout, so finished runs outlive a fresh clone of the work tree.
RUNS = Path(os.environ.get("EDP_BENCH_ROOT", Path.home() / "edp-bench")) / "coverage"
SEVEN = [m for m in MAZE_NAMES if m != "square_corridor"]


def done(root: Path, maze: str, agent: str, seed: int, frames: int) -> bool:
    for cov in (root / "maze" / maze / agent).glob(f"{seed}-*/coverage.json"):
        if json.loads(cov.read_text())["episodes"] * 50 >= min(frames, 100_000):
            return True
    return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", nargs="+", default=["random", "edp", "ddpg"])
    parser.add_argument("--mazes", nargs="+", default=SEVEN)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--frames", type=int, default=100_000)
    parser.add_argument("--preset", default="fast")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--root", type=Path, default=RUNS)
    parser.add_argument("--report", type=Path, default=HERE / "results")
    args = parser.parse_args()
    print("command:", " ".join([Path(sys.executable).name, *sys.argv]))
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, python "
          f"{platform.python_version()}")
    # seed-major: an interrupted benchmark still has whole seeds of every maze and agent
    todo = [(m, a, s) for s in args.seeds for m in args.mazes for a in args.agents
            if not done(args.root, m, a, s, args.frames)]
    print(f"{len(todo)} runs to do")

    def one(job):
        maze, agent, seed = job
        t0 = time.perf_counter()
        cmd = [sys.executable, "-m", "edp.cli", "pretrain", "--env", f"maze/{maze}", "--agent",
               agent, "--seed", str(seed), "--frames", str(args.frames), "--preset",
               args.preset, "--out", str(args.root), "--quiet", "--checkpoint-every", "0"]
        proc = subprocess.run(cmd, capture_output=True, text=True,
                              env={**os.environ, "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false "
                                   "intra_op_parallelism_threads=1"})
        status = "ok" if proc.returncode == 0 else f"FAILED: {proc.stderr.strip()[-300:]}"
        last = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
        print(f"{maze:18} {agent:8} seed {seed}: {time.perf_counter() - t0:7.1f}s  {last}  "
              f"{status}", flush=True)

    with ThreadPoolExecutor(args.jobs) as pool:
        list(pool.map(one, todo))
    path = write_report(ReportConfig(runs=(args.root,), out=args.report))
    print(path.read_text())


if __name__ == "__main__":
    main()

"""Maze coverage benchmark: agents x mazes x seeds, then `edp report` into this folder.

    python benchmarks/coverage/run.py --agents random edp ddpg --seeds 0 1 2 --jobs 2

Each run is the real CLI (`edp pretrain`) in its own process, in --root. A finished run's small
files (config, coverage curve, result, final visit counts; not the replay or the weights) are
copied into the committed record tree runs/, because machines do not outlive a session: the
report is drawn from runs/, and a run already recorded there, or listed in lost_runs.csv (runs
whose directories were lost before records were kept), is skipped, so the script can be
re-invoked (`--rerun-lost` runs the lost ones again, to record their visit counts). Prints the
command, the machine and the resulting table.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from edp import checkpoint
from edp.envs import EnvId
from edp.envs.maze import MAZE_NAMES
from edp.report import ReportConfig, write_report

HERE = Path(__file__).parent
RUNS = Path(os.environ.get("EDP_BENCH_ROOT", Path.home() / "edp-bench")) / "coverage"
RECORDS = HERE / "runs"
LOST = HERE / "lost_runs.csv"
SEVEN = [m for m in MAZE_NAMES if m != "square_corridor"]
# what the report reads; the final checkpoint's replay and weights stay behind in --root
RECORDED = ("config.json", "coverage.json", "result.json")


def lost_runs() -> set[tuple[str, str, int, int]]:
    """(maze, agent, seed, frames) of the finished runs whose directories were lost."""
    if not LOST.is_file():
        return set()
    with LOST.open() as f:
        return {(EnvId.parse(row["env"]).maze, row["agent"], int(row["seed"]),
                 int(row["frames"])) for row in csv.DictReader(f)}


def done(records: Path, lost: set, maze: str, agent: str, seed: int, frames: int) -> bool:
    if (maze, agent, seed, frames) in lost:
        return True
    for result in (records / "maze" / maze / agent).glob(f"{seed}-*/result.json"):
        if json.loads((result.parent / "config.json").read_text())["config"]["frames"] == frames:
            return True
    return False


def record(run: Path, records: Path, root: Path) -> None:
    """Copy a finished run's small files into the record tree, at the same relative path."""
    target = records / run.relative_to(root)
    final = checkpoint.latest(run / "checkpoints")
    (target / "checkpoints" / final.name).mkdir(parents=True, exist_ok=True)
    for name in ("coverage.npz", "state.json"):
        shutil.copy2(final / name, target / "checkpoints" / final.name / name)
    for name in RECORDED:  # result.json last: it marks the record complete
        shutil.copy2(run / name, target / name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", nargs="+", default=["random", "edp", "ddpg"])
    parser.add_argument("--mazes", nargs="+", default=SEVEN)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--frames", type=int, default=100_000)
    parser.add_argument("--preset", default="fast")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--root", type=Path, default=RUNS)
    parser.add_argument("--records", type=Path, default=RECORDS)
    parser.add_argument("--report", type=Path, default=HERE / "results")
    parser.add_argument("--rerun-lost", action="store_true",
                        help="run the runs of lost_runs.csv again, to record their visit counts")
    args = parser.parse_args()
    print("command:", " ".join([Path(sys.executable).name, *sys.argv]))
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, python "
          f"{platform.python_version()}")
    # seed-major: an interrupted benchmark still has whole seeds of every maze and agent
    lost = lost_runs() if args.records == RECORDS and not args.rerun_lost else set()
    todo = [(m, a, s) for s in args.seeds for m in args.mazes for a in args.agents
            if not done(args.records, lost, m, a, s, args.frames)]
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
        if proc.returncode == 0:
            for result in (args.root / "maze" / maze / agent).glob(f"{seed}-*/result.json"):
                if not (args.records / result.parent.relative_to(args.root)).exists():
                    record(result.parent, args.records, args.root)
        last = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
        print(f"{maze:18} {agent:8} seed {seed}: {time.perf_counter() - t0:7.1f}s  {last}  "
              f"{status}", flush=True)

    with ThreadPoolExecutor(args.jobs) as pool:
        list(pool.map(one, todo))
    if not args.records.is_dir():
        raise SystemExit(f"no recorded runs in {args.records}")
    path = write_report(ReportConfig(runs=(args.records,), out=args.report))
    print(path.read_text())


if __name__ == "__main__":
    main()

"""URLB fine-tuning benchmark: env speed per domain, one EDP pre-training on a domain, then
fine-tuning from its snapshot vs from scratch on downstream tasks, then `edp report`.

    python benchmarks/urlb/run.py --pretrain-frames 300000 --tasks urlb/walker_stand \
        urlb/walker_run --methods ddpg --seeds 0 1 --jobs 2

From-scratch runs start at once, beside the pre-training; the runs from its snapshot follow it,
method by method (the first method's runs first). With the pre-training already done, the
from-snapshot runs go first and the from-scratch runs last.

Every run is the real CLI in its own process. Re-invocable: finished runs (result.json) are
skipped, interrupted ones resume from their last checkpoint. Prints the command, the machine,
env steps/s of every domain, each run's wall time and final evaluation, and the report.
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

import numpy as np

from edp.envs import make_env
from edp.report import ReportConfig, write_report

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from harness import REPO  # noqa: E402

HERE = Path(__file__).resolve().parent
RUNS = HERE / "runs"  # git-ignored; inside the repository, so a re-invocation there continues
DIFFUSION = ("edp", "idql", "dql", "qsm", "dipo")
DOMAIN_TASKS = ["urlb/walker_stand", "urlb/quadruped_stand", "urlb/jaco_reach_top_left",
                "urlb/cheetah_run", "urlb/hopper_hop"]
SINGLE_THREAD = {"XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false "
                 "intra_op_parallelism_threads=1"}


def env_speed(name: str, steps: int = 2000) -> float:
    """Env steps per second with uniform random actions (resets included)."""
    env = make_env(name)
    rng = np.random.default_rng(0)
    env.reset()
    t0 = time.perf_counter()
    for _ in range(steps):
        if env.step(rng.uniform(-1, 1, (1, env.action_dim)).astype(np.float32)).done:
            env.reset()
    return steps / (time.perf_counter() - t0)


def find_run(root: Path, env: str, label: str, seed: int) -> Path | None:
    runs = sorted((root / env / label).glob(f"{seed}-*/config.json"))
    return runs[0].parent if runs else None


def finished(run: Path | None) -> bool:
    return run is not None and (run / "result.json").is_file()


def run_cli(args: list[str], root: Path, env: str, label: str, seed: int) -> Path:
    """Run (or resume, or skip) one CLI run; returns its run directory."""
    existing = find_run(root, env, label, seed)
    if finished(existing):
        return existing
    if existing is not None and any((existing / "checkpoints").glob("[0-9]*")):
        cmd = [args[0], "--resume", str(existing)]
    else:
        cmd = [*args, "--out", os.path.relpath(root), "--seed", str(seed), "--quiet"]
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "edp.cli", *cmd], capture_output=True,
                          text=True, env={**os.environ, **SINGLE_THREAD})
    tail = proc.stdout.strip().splitlines()[-1:] or [proc.stderr.strip()[-300:]]
    print(f"{env:22} {label:18} seed {seed}: {time.perf_counter() - t0:7.1f}s  "
          f"{'ok' if proc.returncode == 0 else 'FAILED'}  {tail[0]}", flush=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {proc.stderr.strip()[-300:]}")
    return find_run(root, env, label, seed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--domain", default="urlb/walker")
    parser.add_argument("--pretrain-frames", type=int, default=400_000)
    parser.add_argument("--tasks", nargs="+", default=["urlb/walker_stand", "urlb/walker_run"])
    parser.add_argument("--methods", nargs="+", default=["ddpg"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--frames", type=int, default=100_000)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--root", type=Path, default=RUNS)
    parser.add_argument("--report", type=Path, default=HERE / "results")
    parser.add_argument("--skip-env-speed", action="store_true")
    args = parser.parse_args()
    args.root, args.report = args.root.resolve(), args.report.resolve()
    os.chdir(REPO)  # results.csv names the runs relative to the repository
    print("command:", " ".join(["python", *sys.argv]))
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, python "
          f"{platform.python_version()}")
    if not args.skip_env_speed:
        for name in DOMAIN_TASKS:
            print(f"env speed {name:26} {env_speed(name):8.0f} steps/s", flush=True)
    frames = args.pretrain_frames
    snapshots = sorted({f for f in (100_000, 500_000, 1_000_000, frames) if f <= frames})
    pretrain = ["pretrain", "--env", args.domain, "--agent", "edp", "--frames", str(frames),
                "--snapshots", *map(str, snapshots)]

    def one(task, method, seed, snap):
        cli = ["finetune", "--env", task, "--method", method, "--frames", str(args.frames)]
        cli += ["--eval-zero-noise"] if method in DIFFUSION else []  # both evaluations
        label = f"{method}_scratch" if snap is None else f"{method}_from_edp"
        if snap is not None:
            cli += ["--snapshot", os.path.relpath(snap)]  # run configs name it from the repo
        try:
            return run_cli(cli, args.root, task, label, seed)
        except RuntimeError as exc:
            print(exc, flush=True)

    # From-scratch runs need no snapshot: they use the other workers during a pre-training.
    scratch_first = not finished(find_run(args.root, args.domain, "edp", 0))
    scratch = [(task, "ddpg", seed) for task in args.tasks for seed in args.seeds]
    with ThreadPoolExecutor(args.jobs) as pool:
        pre = pool.submit(run_cli, pretrain, args.root, args.domain, "edp", 0)
        futures = [pool.submit(one, *run, None) for run in scratch] if scratch_first else []
        futures += [pool.submit(one, task, method, seed, pre.result())
                    for method in args.methods for task in args.tasks for seed in args.seeds]
        futures += [] if scratch_first else [pool.submit(one, *run, None) for run in scratch]
        runs = [run for run in (f.result() for f in futures) if run is not None]
    for run in runs:
        result = json.loads((run / "result.json").read_text())
        print(f"{run.relative_to(args.root)}: {result['final_eval']}")
    path = write_report(ReportConfig(runs=tuple(runs), out=args.report))
    print(path.read_text())


if __name__ == "__main__":
    main()

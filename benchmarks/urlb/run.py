"""URLB fine-tuning benchmark: env speed per domain, one EDP pre-training on a domain, then
fine-tuning from its snapshot vs from scratch on downstream tasks, then `edp report`.

    python benchmarks/urlb/run.py --pretrain-frames 300000 --tasks urlb/walker_stand \
        urlb/walker_run --methods ddpg --seeds 0 1 --jobs 2

From-scratch runs start at once, beside the pre-training; the runs from its snapshot follow it,
method by method (the first method's runs first). With the pre-training already done, the
from-snapshot runs go first and the from-scratch runs last.

Every run is the real CLI in its own process, in --root (git-ignored). A finished fine-tuning
run's small files (config, eval.csv, result; not the replay or the weights) are copied into the
committed record tree (--records), because machines do not outlive a session; the report is
drawn from the records. Re-invocable: recorded runs are skipped (and the pre-training too when
every run that needs its snapshot is recorded), interrupted ones resume from their last
checkpoint. `--finetune-args` adds flags to every fine-tuning run (`--clip-actions`, say): another
study, with its own --finetune-root, --records and --report, from the same pre-training;
`--pretrain-seed` fine-tunes from another pre-training seed's snapshot (another study too), which
measures how much a table owes to its one pre-training. Prints
the command, the machine, env steps/s of every domain, each run's wall time and final
evaluation, and the report.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from edp import checkpoint
from edp.envs import make_env
from edp.report import ReportConfig, write_report

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from harness import REPO, check_ignored, machine, record  # noqa: E402

HERE = Path(__file__).resolve().parent
RUNS = HERE / "runs"  # git-ignored; inside the repository, so a re-invocation there continues
RECORDS = HERE / "records"  # committed
RECORDED = ("config.json", "eval.csv", "result.json")  # what the report reads
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
    """The seed's most advanced run: finished, else the latest checkpoint. A run stopped before
    its first checkpoint leaves a directory that a re-invocation starts afresh beside (run
    directories take a random suffix), so the fresh one must win once it has made progress."""
    runs = [config.parent for config in sorted((root / env / label).glob(f"{seed}-*/config.json"))]
    return max(runs, key=progress) if runs else None


def progress(run: Path) -> tuple[bool, int]:
    last = checkpoint.latest(run / "checkpoints")
    return finished(run), -1 if last is None else int(last.name)


def finished(run: Path | None) -> bool:
    return run is not None and (run / "result.json").is_file()


def run_cli(args: list[str], root: Path, env: str, label: str, seed: int) -> Path:
    """Run (or resume, or skip) one CLI run; returns its run directory."""
    existing = find_run(root, env, label, seed)
    if finished(existing):
        return existing
    if existing is not None and checkpoint.latest(existing / "checkpoints") is not None:
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
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--domain", default="urlb/walker",
                        help="the domain EDP pre-trains on (default: %(default)s)")
    parser.add_argument("--pretrain-frames", type=int, default=400_000,
                        help="frames of the one EDP pre-training; its snapshot at this frame is "
                        "what every method fine-tunes from (default: %(default)s)")
    parser.add_argument("--tasks", nargs="+", default=["urlb/walker_stand", "urlb/walker_run"],
                        help="downstream tasks of the domain (default: %(default)s)")
    parser.add_argument("--methods", nargs="+", default=["ddpg"],
                        help="`edp finetune --method` values run from the snapshot (default: "
                        "%(default)s)")
    parser.add_argument("--scratch", action=argparse.BooleanOptionalAction, default=True,
                        help="DDPG from scratch on every task beside them; they do not depend "
                        "on the snapshot, so --no-scratch when another study has them "
                        "(default: %(default)s)")
    parser.add_argument("--pretrain-seed", type=int, default=0,
                        help="seed of the EDP pre-training whose snapshot every method "
                        "fine-tunes from; another seed makes another study (its own "
                        "--finetune-root, --records and --report) (default: %(default)s)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1],
                        help="fine-tuning seeds (default: %(default)s)")
    parser.add_argument("--frames", type=int, default=100_000,
                        help="frames of every fine-tuning run (default: %(default)s)")
    parser.add_argument("--jobs", type=int, default=2,
                        help="runs at a time, each on one thread (default: %(default)s)")
    parser.add_argument("--root", type=Path, default=RUNS,
                        help="where the runs and the pre-training go, git-ignored (default: "
                        "benchmarks/urlb/runs)")
    parser.add_argument("--records", type=Path, default=RECORDS,
                        help="the committed record tree (default: benchmarks/urlb/records)")
    parser.add_argument("--report", type=Path, default=HERE / "results",
                        help="the `edp report` directory (default: benchmarks/urlb/results)")
    parser.add_argument("--skip-env-speed", action="store_true",
                        help="do not measure env steps/s of every domain first")
    parser.add_argument("--finetune-args", default="",
                        help="more `edp finetune` flags for every fine-tuning run, one string "
                        "(a single flag joined with =: --finetune-args=--clip-actions); they "
                        "make another study, so give it its own --finetune-root, --records and "
                        "--report (the pre-training stays in --root and is shared)")
    parser.add_argument("--finetune-root", type=Path,
                        help="where the fine-tuning runs go (default: --root)")
    args = parser.parse_args()
    if (args.finetune_args or args.pretrain_seed) and not (
            args.finetune_root and args.records != RECORDS and args.report != HERE / "results"):
        parser.error("--finetune-args or --pretrain-seed makes another study: give it its own "
                     "--finetune-root, --records and --report")
    args.finetune_root = args.finetune_root or args.root
    args.root, args.finetune_root, args.records, args.report = (
        path.resolve() for path in (args.root, args.finetune_root, args.records, args.report))
    for root in (args.root, args.finetune_root):
        check_ignored(root)
    os.chdir(REPO)  # results.csv names the runs relative to the repository
    print("command:", shlex.join(["python", *sys.argv]))
    print("machine:", machine())
    if not args.skip_env_speed:
        for name in DOMAIN_TASKS:
            print(f"env speed {name:26} {env_speed(name):8.0f} steps/s", flush=True)
    frames = args.pretrain_frames
    snapshots = sorted({f for f in (100_000, 500_000, 1_000_000, frames) if f <= frames})
    pretrain = ["pretrain", "--env", args.domain, "--agent", "edp", "--frames", str(frames),
                "--snapshots", *map(str, snapshots)]

    def label(method, from_snapshot):
        return f"{method}_from_edp" if from_snapshot else f"{method}_scratch"

    def kept(task, method, seed, from_snapshot):
        """The finished record of this run at --frames, if any."""
        for config in sorted((args.records / task / label(method, from_snapshot))
                             .glob(f"{seed}-*/config.json")):
            if (finished(config.parent)
                    and json.loads(config.read_text())["config"]["frames"] == args.frames):
                return config.parent
        return None

    def one(task, method, seed, snap):
        cli = ["finetune", "--env", task, "--method", method, "--frames", str(args.frames),
               *shlex.split(args.finetune_args)]
        cli += ["--eval-zero-noise"] if method in DIFFUSION else []  # both evaluations
        if snap is not None:
            cli += ["--snapshot", os.path.relpath(snap)]  # run configs name it from the repo
        try:
            run = run_cli(cli, args.finetune_root, task, label(method, snap is not None), seed)
        except RuntimeError as exc:
            print(exc, flush=True)
        else:
            record(run, args.finetune_root, args.records, RECORDED)

    scratch = [(task, "ddpg", seed, False) for task in args.tasks for seed in args.seeds
               if args.scratch]
    tuned = [(task, method, seed, True) for method in args.methods for task in args.tasks
             for seed in args.seeds]
    todo = [run for run in scratch + tuned if kept(*run) is None]
    print(f"{len(scratch + tuned) - len(todo)} runs recorded, {len(todo)} to run", flush=True)
    # From-scratch runs need no snapshot: they use the other workers during a pre-training.
    scratch_first = not finished(find_run(args.root, args.domain, "edp", args.pretrain_seed))
    with ThreadPoolExecutor(args.jobs) as pool:
        pre = (pool.submit(run_cli, pretrain, args.root, args.domain, "edp", args.pretrain_seed)
               if any(run in todo for run in tuned) else None)
        first, last = [run for run in todo if run in scratch], []
        if not scratch_first:
            first, last = last, first
        futures = [pool.submit(one, *run[:3], None) for run in first]
        try:
            snap = pre.result() if pre is not None else None
        except RuntimeError as exc:  # the from-scratch runs already submitted still finish
            raise SystemExit(f"no snapshot to fine-tune from: {exc}") from None
        futures += [pool.submit(one, *run[:3], snap) for run in todo if run in tuned]
        futures += [pool.submit(one, *run[:3], None) for run in last]
        for future in futures:
            future.result()
    runs = [run for run in (kept(*run) for run in scratch + tuned) if run is not None]
    for run in runs:
        result = json.loads((run / "result.json").read_text())
        print(f"{run.relative_to(args.records)}: {result['final_eval']}")
    path = write_report(ReportConfig(runs=tuple(runs), out=args.report))
    print(path.read_text())


if __name__ == "__main__":
    main()

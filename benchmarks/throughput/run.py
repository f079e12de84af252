"""Throughput of the host loop against the compiled maze loop, and that they learn alike.

    python benchmarks/throughput/run.py            # every part; re-invoke to continue
    python benchmarks/throughput/run.py --parts speed coverage

Parts (each measurement is appended to results.jsonl as it finishes and skipped when the script
runs again, so a stopped benchmark continues where it was):
- speed: frames/s per seed of `edp pretrain` on square_a for (loop, agent, seeds, size). A rate
  is the difference of two runs, `--short` and `--long` frames, both past the seed phase:
  (long - short) frames over the difference of their wall times (and of their CPU times), so
  start-up and compilation cancel. Sizes: `fast`, and `mid` (update every step, 5 iterations,
  batch 1024, DDPG width 256, score nets 128 x 2, K = 20), whose GFLOP/s come from XLA's FLOP
  count of one update and are put next to the machine's measured float32 GEMM rate.
- coverage: the random agent, 3 seeds, host loop (one process per seed) vs compiled loop (one
  process for the 3), square_a and square_tree, 100k frames; and EDP `fast` in the compiled
  loop on square_tree, 3 seeds in one process. Run directories go to runs/ (not committed);
  their small files (config, coverage curve, result) are copied to records/.
Then README.md's tables are printed from results.jsonl (`--table` prints them only).
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent
REPO = HERE.parent.parent
RUNS, RECORDS, RESULTS = HERE / "runs", HERE / "records", HERE / "results.jsonl"
MID = ["--ddpg.update-every", "1", "--ddpg.updates-per-step", "5", "--ddpg.batch-size", "1024",
       "--ddpg.hidden-dim", "256", "--edp.score-hidden-dim", "128", "--edp.score-blocks", "2",
       "--edp.score-time-dim", "128", "--edp.reward-samples", "20"]
SIZES = {"fast": [], "mid": MID}
SPEED = [  # (size, agent, loop, seeds)
    ("fast", "edp", "host", 1), ("fast", "edp", "device", 1),
    ("fast", "ddpg", "host", 1), ("fast", "ddpg", "device", 1),
    ("fast", "edp", "device", 3), ("fast", "edp", "device", 8),
    ("fast", "ddpg", "device", 3), ("fast", "ddpg", "device", 8),
    ("mid", "edp", "host", 1), ("mid", "edp", "device", 1), ("mid", "edp", "device", 3),
]


def results() -> list[dict]:
    if not RESULTS.is_file():
        return []
    return [json.loads(line) for line in RESULTS.read_text().splitlines() if line.strip()]


def append(row: dict) -> None:
    with RESULTS.open("a") as f:
        f.write(json.dumps(row) + "\n")
    print(json.dumps(row), flush=True)


def pretrain(args: list[str], out: Path) -> tuple[float, float]:
    """Run `edp pretrain args` in its own process; (wall seconds, CPU seconds)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "edp.cli", "pretrain", *args, "--out", str(out),
                    "--quiet"], check=True, cwd=REPO)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def speed(size: str, agent: str, loop: str, seeds: int, short: int, long: int) -> dict:
    seed_args = ["--seeds", *map(str, range(seeds))] if seeds > 1 else ["--seed", "0"]
    base = ["--env", "maze/square_a", "--agent", agent, "--loop", loop, *seed_args,
            "--eval-episodes", "0", "--checkpoint-every", "0",
            "--log-every", "1000" if size == "fast" else "250", *SIZES[size]]
    scratch = RUNS / "speed"
    times = [pretrain([*base, "--frames", str(frames)], scratch) for frames in (short, long)]
    shutil.rmtree(scratch, ignore_errors=True)
    wall = times[1][0] - times[0][0]
    cpu = times[1][1] - times[0][1]
    frames = long - short
    row = {"part": "speed", "size": size, "agent": agent, "loop": loop, "seeds": seeds,
           "frames": frames, "wall_s": wall, "cpu_s": cpu, "fps_per_seed": frames / wall,
           "fps_total": seeds * frames / wall, "cpu_ms_per_frame": 1e3 * cpu / (seeds * frames)}
    row.update(gflops(agent, size, row["fps_per_seed"] * seeds))
    return row


def gflops(agent: str, size: str, steps_per_second: float) -> dict:
    """FLOPs of the learning per env step (XLA's count of one update) and the rate achieved."""
    import dataclasses

    import jax

    from edp.agents.registry import make_agent
    from edp.bench import gemm_gflops, update_flops
    from edp.config import resolve
    from edp.device_replay import DeviceReplay
    from edp.presets import pretrain_defaults

    cfg = resolve(pretrain_defaults("fast", "maze/square_a", agent))
    if size == "mid":
        ddpg = dataclasses.replace(cfg.ddpg, update_every=1, updates_per_step=5, batch_size=1024,
                                   hidden_dim=256)
        edp = dataclasses.replace(cfg.edp, score_hidden_dim=128, score_blocks=2,
                                  score_time_dim=128, reward_samples=20)
        cfg = dataclasses.replace(cfg, ddpg=ddpg, edp=edp)
    model = make_agent(cfg, 2, 2)
    replay = DeviceReplay.create(1000, 50, 2, 2, cfg.nstep, cfg.discount)
    batch = jax.eval_shape(lambda r: r.sample(jax.random.PRNGKey(0), model.batch_size,
                                              model.updates_per_step), replay)
    flop_per_step = update_flops(model, model.init(jax.random.PRNGKey(0)), batch) \
        / model.update_every
    gemm = gemm_gflops()
    achieved = flop_per_step * steps_per_second / 1e9
    return {"gflop_per_step": flop_per_step / 1e9, "gflops": achieved, "gemm_gflops": gemm,
            "gemm_share": achieved / gemm}


def coverage(agent: str, maze: str, loop: str, seeds: int = 3) -> list[dict]:
    """Final coverage of each seed at 100k frames (one process per seed on the host loop)."""
    out = RUNS / "coverage" / loop
    groups = [list(range(seeds))] if loop == "device" else [[s] for s in range(seeds)]
    rows = []
    for group in groups:
        seed_args = ["--seeds", *map(str, group)] if len(group) > 1 else ["--seed", str(group[0])]
        wall, cpu = pretrain(["--env", f"maze/{maze}", "--agent", agent, "--loop", loop,
                              *seed_args], out)
        for seed in group:
            run = newest(out / "maze" / maze / agent, seed)
            result = json.loads((run / "result.json").read_text())
            target = RECORDS / loop / "maze" / maze / agent / run.name
            target.mkdir(parents=True, exist_ok=True)
            for name in ("config.json", "coverage.json", "result.json"):
                shutil.copy(run / name, target / name)
            rows.append({"part": "coverage", "agent": agent, "maze": maze, "loop": loop,
                         "seed": seed, "coverage": result["coverage"], "wall_s": wall,
                         "cpu_s": cpu, "seeds_in_process": len(group),
                         "record": str(target.relative_to(REPO))})
    return rows


def newest(parent: Path, seed: int) -> Path:
    return max(parent.glob(f"{seed}-*/result.json"), key=lambda p: p.stat().st_mtime).parent


def machine() -> str:
    import jax

    cpu = platform.processor() or platform.machine()
    return (f"{platform.node()}: {cpu}, {len(__import__('os').sched_getaffinity(0))} cores, "
            f"{jax.default_backend()}, jax {jax.__version__}, Python {platform.python_version()}")


def table() -> None:
    rows = results()
    speeds = [r for r in rows if r["part"] == "speed"]
    if speeds:
        print("| size | agent | loop | seeds | frames/s per seed | frames/s total | CPU ms per "
              "frame | GFLOP/s | share of GEMM |\n| --- | --- | --- | --- | --- | --- | --- | "
              "--- | --- |")
        for r in speeds:
            print(f"| {r['size']} | {r['agent']} | {r['loop']} | {r['seeds']} | "
                  f"{r['fps_per_seed']:.0f} | {r['fps_total']:.0f} | "
                  f"{r['cpu_ms_per_frame']:.2f} | {r['gflops']:.1f} | "
                  f"{100 * r['gemm_share']:.0f}% |")
    covers = [r for r in rows if r["part"] == "coverage"]
    if covers:
        import numpy as np

        print("\n| agent | maze | loop | seeds | coverage per seed | mean | std |\n"
              "| --- | --- | --- | --- | --- | --- | --- |")
        keys = sorted({(r["agent"], r["maze"], r["loop"]) for r in covers})
        for agent, maze, loop in keys:
            values = [r["coverage"] for r in covers
                      if (r["agent"], r["maze"], r["loop"]) == (agent, maze, loop)]
            print(f"| {agent} | {maze} | {loop} | {len(values)} | "
                  f"{', '.join(f'{v:.4f}' for v in values)} | {np.mean(values):.4f} | "
                  f"{np.std(values):.4f} |")


COVERAGE = [("random", "square_a", "host"), ("random", "square_a", "device"),
            ("random", "square_tree", "host"), ("random", "square_tree", "device"),
            ("edp", "square_tree", "device")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--parts", nargs="+", default=["speed", "coverage"],
                        choices=["speed", "coverage"])
    parser.add_argument("--short", type=int, default=5000, help="frames of the shorter run")
    parser.add_argument("--long", type=int, default=9000, help="frames of the longer run")
    parser.add_argument("--table", action="store_true", help="only print the tables")
    args = parser.parse_args()
    if not args.table:
        print(f"command: {' '.join(sys.argv)}\nmachine: {machine()}", flush=True)
        done = results()
        if "speed" in args.parts:
            for size, agent, loop, seeds in SPEED:
                if not any(r["part"] == "speed" and (r["size"], r["agent"], r["loop"],
                           r["seeds"]) == (size, agent, loop, seeds) for r in done):
                    short, long = (args.short, args.long) if size == "fast" else (4250, 4500)
                    append(speed(size, agent, loop, seeds, short, long))
        if "coverage" in args.parts:
            for agent, maze, loop in COVERAGE:
                if not any(r["part"] == "coverage" and (r["agent"], r["maze"], r["loop"]) ==
                           (agent, maze, loop) for r in done):
                    for row in coverage(agent, maze, loop):
                        append(row)
    table()


if __name__ == "__main__":
    main()

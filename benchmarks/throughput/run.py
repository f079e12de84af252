"""Throughput of the host loop against the compiled maze loop, and that they learn alike.

    python benchmarks/throughput/run.py            # every part; re-invoke to continue
    python benchmarks/throughput/run.py --parts speed coverage

Parts (each measurement is appended to results.jsonl as it finishes and skipped when the script
runs again, so a stopped benchmark continues where it was):
- speed: frames/s per seed of `edp pretrain` on square_a for (loop, agent, seeds, size). A rate
  is the difference of two runs, `--short` and `--long` frames, both past the seed phase:
  (long - short) frames over the difference of their wall times (and of their CPU times), so
  start-up and compilation cancel. Sizes: `fast`, and `mid` (update every step, 5 iterations,
  batch 1024, DDPG width 256, score nets 128 x 2, K = 20; 4,100 and 4,200 frames), whose
  GFLOP/s come from XLA's FLOP count of one update and are put next to the machine's measured
  float32 GEMM rate.
- coverage: the random agent, 3 seeds, host loop (one process per seed) vs compiled loop (one
  process for the 3), square_a and square_tree, 100k frames; and EDP `fast` in the compiled
  loop on square_tree, 3 seeds in one process. Run directories go to runs/ (not committed);
  their small files (config, coverage curve, result) are copied to records/.
Then README.md's tables are printed from results.jsonl (`--table` prints them only).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from harness import REPO, Results, edp, machine  # noqa: E402

HERE = Path(__file__).resolve().parent
RUNS, RECORDS = HERE / "runs", HERE / "records"
RESULTS = Results(HERE / "results.jsonl")
MID = ["--ddpg.update-every", "1", "--ddpg.updates-per-step", "5", "--ddpg.batch-size", "1024",
       "--ddpg.hidden-dim", "256", "--edp.score-hidden-dim", "128", "--edp.score-blocks", "2",
       "--edp.score-time-dim", "128", "--edp.reward-samples", "20"]
SIZES = {"fast": [], "mid": MID}
SPEED = [  # (size, agent, loop, seeds)
    ("fast", "edp", "host", 1), ("fast", "edp", "device", 1),
    ("fast", "ddpg", "host", 1), ("fast", "ddpg", "device", 1),
    ("fast", "edp", "device", 3), ("fast", "edp", "device", 8),
    ("fast", "ddpg", "device", 3), ("fast", "ddpg", "device", 8),
    ("mid", "edp", "device", 1), ("mid", "edp", "device", 3), ("mid", "edp", "host", 1),
]


def speed(size: str, agent: str, loop: str, seeds: int, short: int, long: int) -> dict:
    seed_args = ["--seeds", *map(str, range(seeds))] if seeds > 1 else ["--seed", "0"]
    base = ["--env", "maze/square_a", "--agent", agent, "--loop", loop, *seed_args,
            "--eval-episodes", "0", "--checkpoint-every", "0",
            "--log-every", "1000" if size == "fast" else "100", *SIZES[size]]
    scratch = RUNS / "speed"
    times = [edp("pretrain", [*base, "--frames", str(frames)], scratch) for frames in (short, long)]
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
        wall, cpu = edp("pretrain", ["--env", f"maze/{maze}", "--agent", agent, "--loop",
                                     loop, *seed_args], out)
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


def rate(fps: float) -> str:
    """Frames/s with three significant digits, without an exponent (0.664, 83.2, 1386)."""
    return f"{fps:.0f}" if fps >= 100 else f"{fps:.3g}"


def table() -> None:
    rows = RESULTS.rows()
    speeds = [r for r in rows if r["part"] == "speed"]
    if speeds:
        print("| size | agent | loop | seeds | frames/s per seed | frames/s total | CPU ms per "
              "frame | GFLOP/s | share of GEMM |\n| --- | --- | --- | --- | --- | --- | --- | "
              "--- | --- |")
        for r in speeds:
            print(f"| {r['size']} | {r['agent']} | {r['loop']} | {r['seeds']} | "
                  f"{rate(r['fps_per_seed'])} | {rate(r['fps_total'])} | "
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
        done = RESULTS.rows()
        if "speed" in args.parts:
            for size, agent, loop, seeds in SPEED:
                if not any(r["part"] == "speed" and (r["size"], r["agent"], r["loop"],
                           r["seeds"]) == (size, agent, loop, seeds) for r in done):
                    short, long = (args.short, args.long) if size == "fast" else (4100, 4200)
                    RESULTS.append(speed(size, agent, loop, seeds, short, long))
        if "coverage" in args.parts:
            for agent, maze, loop in COVERAGE:
                if not any(r["part"] == "coverage" and (r["agent"], r["maze"], r["loop"]) ==
                           (agent, maze, loop) for r in done):
                    for row in coverage(agent, maze, loop):
                        RESULTS.append(row)
    table()


if __name__ == "__main__":
    main()

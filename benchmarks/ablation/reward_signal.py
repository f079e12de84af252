"""Does EDP's intrinsic reward rank maze states by how rarely they were visited? (issue 20)

    python benchmarks/ablation/reward_signal.py benchmarks/ablation/runs/*/maze/*/edp/*

For each finished EDP maze run: the state model of its last checkpoint, and its replay (the
whole 100k frames, as the coverage metric sees them). The maze cells are cut into square bins
of `--bin` width; in each bin a few uniform points get the reward. Reported per run:
- rho: Spearman rank correlation, over the bins, of the mean reward (many estimates) with the
  bin's visit count in the replay. A reward that seeks rare states has rho near -1.
- rho_visited: the same over visited bins only (the ranking among states the agent has seen).
- unvisited/visited: mean reward of never-visited bins over that of visited ones.
- snr: the spread of the mean reward across bins over the spread of one estimate (the agent's
  K draws, as one learning step sees it) within a bin. Below 1, one reward sample says less
  about where a state lies than the Monte-Carlo noise does.
Rows are appended to reward_signal.jsonl (skipped when a run is already there) and printed as a
table.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from harness import REPO, Results, load_maze_run, maze_bins, replay_episodes, visit_grid  # noqa: E402

HERE = Path(__file__).resolve().parent
RESULTS = Results(HERE / "reward_signal.jsonl")


def measure(run: Path, bin_width: float, points_per_bin: int, estimates: int) -> dict:
    import numpy as np
    from scipy.stats import spearmanr

    from edp.train import reward_draws

    cfg, maze, agent, state, meta, arrays = load_maze_run(run)
    visited = replay_episodes(arrays).reshape(-1, 2)

    counts, _ = visit_grid(maze, visited, bin_width)
    centres, keep = maze_bins(maze, bin_width, counts.shape)
    bins = np.flatnonzero(keep)
    rng = np.random.default_rng(0)
    points = (np.repeat(centres[bins] - bin_width / 2, points_per_bin, 0)
              + rng.uniform(0, bin_width, (len(bins) * points_per_bin, 2))).astype(np.float32)
    draws = reward_draws(agent, state, points, cfg.seed, estimates)
    draws = draws.reshape(estimates, len(bins), points_per_bin)
    mean = draws.mean(axis=(0, 2))
    noise = draws.std(axis=0).mean()
    count = counts.ravel()[bins]
    seen = count > 0
    return {"run": str(run.relative_to(REPO)), "cell": run.parts[-5], "maze": maze.name,
            "seed": cfg.seed, "frame": meta["frame"], "bins": len(bins),
            "visited_bins": int(seen.sum()),
            "rho": float(spearmanr(mean, count).statistic),
            "rho_visited": float(spearmanr(mean[seen], count[seen]).statistic),
            "unvisited_over_visited": float(mean[~seen].mean() / mean[seen].mean())
            if (~seen).any() else None,
            "snr": float(mean.std() / noise), "bin_width": bin_width,
            "reward_samples": agent.cfg.reward_samples}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="*", type=Path, help="EDP maze run directories")
    parser.add_argument("--bin", type=float, default=0.25, help="bin width (maze units)")
    parser.add_argument("--points-per-bin", type=int, default=4)
    parser.add_argument("--estimates", type=int, default=64,
                        help="reward estimates (of K draws each) averaged per point")
    args = parser.parse_args()
    done = {(r["run"], r["bin_width"]) for r in RESULTS.rows()}
    for run in args.runs:
        run = run.resolve()
        if not (run / "config.json").is_file() or not run.is_relative_to(REPO):
            raise SystemExit(f"{run} is not a run directory inside the repository")
        if (str(run.relative_to(REPO)), args.bin) in done:
            continue
        row = measure(run, args.bin, args.points_per_bin, args.estimates)
        RESULTS.append(row)
    print("| cell | maze | seed | frame | bin | rho | rho (visited bins) | unvisited / visited "
          "| snr |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in RESULTS.rows():
        ratio = r["unvisited_over_visited"]
        print(f"| {r['cell']} | {r['maze']} | {r['seed']} | {r['frame']} | {r['bin_width']} | "
              f"{r['rho']:.2f} | "
              f"{r['rho_visited']:.2f} | {'' if ratio is None else f'{ratio:.2f}'} | "
              f"{r['snr']:.2f} |")


if __name__ == "__main__":
    main()

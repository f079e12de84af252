"""Where a maze run loses state coverage: between the maze's cells, or inside them? (issue 20)

    python benchmarks/coverage/where_lost.py                      # every run under runs/
    python benchmarks/coverage/where_lost.py benchmarks/ablation/runs/*/maze/*/edp/*

Coverage counts the 0.05- (0.1-) wide bins that hold at least one of the run's ~102k stored
states. From a run's visit counts (the coverage.npz of its last checkpoint) this splits the gap
to full coverage into two parts, for each run:
- even: the coverage the run's in-maze states would reach if they were spread evenly over the
  whole maze (about 1.0: 102k states over 12,400 bins on square_tree);
- cells: the coverage they would reach if each unit cell kept its share of the states but
  spread them evenly inside it. even - cells is lost *between* cells: some cells get few
  states (far leaves, dead ends) while others get many;
- actual: the metric. cells - actual is lost *inside* cells: the states of a cell pile up
  on few bins (trajectories along walls, a near-deterministic policy repeating its path).
Leaked states (outside the maze's cells) count in actual, as in the metric, and are shown apart.
Three more columns say how the states are spread: the share of them in the most visited tenth
of the cells (0.10 = even across cells), the share on the bins along a wall of their cell (a
point pushed into a wall slides along it: about 10% of the bins on square_a), and the share of
the cells' interior bins (those along none of the four sides) that hold a state.
Prints a mean per (maze, agent) and writes one row per run to --csv; with no runs named (every
run under runs/) the rows go to where_lost.csv beside this script, the committed table of the
`fast` benchmark, which a look at a few named runs leaves alone.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from harness import REPO, maze_bins  # noqa: E402

HERE = Path(__file__).resolve().parent


def split(counts: np.ndarray, maze_name: str) -> dict:
    """actual / cells / even coverage and the leak share of one run's visit-count grid."""
    from edp.coverage import CoverageTracker
    from edp.envs.maze import has_wall

    tracker = CoverageTracker(maze_name)
    width = tracker.maze.bin_width
    centres, inside = maze_bins(tracker.maze, width, counts.shape)
    cell = np.rint(centres).astype(np.int64)
    flat = counts.ravel()
    _, cell_id = np.unique(cell[inside], axis=0, return_inverse=True)
    bins_per_cell = np.bincount(cell_id)
    states_per_cell = np.bincount(cell_id, weights=flat[inside])
    filled = lambda bins, states: bins * (1 - (1 - 1 / bins) ** states)  # noqa: E731
    leak_bins = np.count_nonzero(flat[~inside])
    along_wall, along_side = np.zeros(len(cell), bool), np.zeros(len(cell), bool)
    for axis in (0, 1):
        for sign in (-1, 1):
            near = inside & (sign * (centres[:, axis] - cell[:, axis]) > 0.5 - width)
            along_side |= near
            along_wall |= near & has_wall(tracker.maze, cell, axis, np.full(len(cell), sign))
    interior = inside & ~along_side
    norm = tracker.normaliser
    in_maze = flat[inside].sum()
    return {"actual": np.count_nonzero(flat) / norm,
            "cells": (filled(bins_per_cell, states_per_cell).sum() + leak_bins) / norm,
            "even": (filled(inside.sum(), in_maze) + leak_bins) / norm,
            "leak": leak_bins / norm,
            "top10_share": np.sort(states_per_cell)[::-1][:max(1, len(states_per_cell) // 10)]
            .sum() / in_maze,
            "wall_share": flat[along_wall].sum() / in_maze,
            "interior_filled": np.count_nonzero(flat[interior]) / interior.sum()}


def runs_under(root: Path) -> list[Path]:
    return sorted(p.parent for p in root.glob("maze/*/*/*/config.json"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="*", type=Path,
                        help="maze run directories (default: every run under runs/)")
    parser.add_argument("--csv", type=Path,
                        help="where the per-run rows go (default: where_lost.csv beside this "
                        "script when no runs are named, nowhere otherwise)")
    parser.add_argument("--by", choices=("agent", "cell"), default="agent",
                        help="group the table by agent, or by the ablation cell (the name of "
                        "the directory that holds maze/)")
    args = parser.parse_args()
    from edp.checkpoint import latest
    from edp.envs import EnvId
    from edp.rundir import read_config

    rows = []
    for run in args.runs or runs_under(HERE / "runs"):
        found = latest(run / "checkpoints")
        if found is None or not (found / "coverage.npz").is_file():
            print(f"skipped {run}: no checkpoint with coverage.npz", file=sys.stderr)
            continue
        config, run = read_config(run), run.resolve()
        maze = EnvId.parse(config["env"]).maze
        with np.load(found / "coverage.npz") as data:
            counts = data["counts"]
        rows.append({"maze": maze, "agent": run.parts[-5] if args.by == "cell" else config["agent"],
                     "seed": config["seed"], "frame": int(found.name),
                     "run": os.path.relpath(run, REPO), **split(counts, maze)})
    if not rows:
        raise SystemExit("no runs with coverage counts")
    out = args.csv or (None if args.runs else HERE / "where_lost.csv")
    if out is not None:
        with open(out, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows({k: round(v, 4) if isinstance(v, float) else v
                              for k, v in r.items()} for r in rows)
    print(f"| maze | {args.by} | runs | actual | cells (spread inside cells) | even (spread over "
          "maze) | lost between cells | lost inside cells | leak | states in top 10% cells | "
          "states along walls | interior bins filled |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for key in sorted({(r["maze"], r["agent"]) for r in rows}):
        mine = [r for r in rows if (r["maze"], r["agent"]) == key]
        m = {k: np.mean([r[k] for r in mine]) for k in ("actual", "cells", "even", "leak",
                                                        "top10_share", "wall_share",
                                                        "interior_filled")}
        print(f"| {key[0]} | {key[1]} | {len(mine)} | {m['actual']:.3f} | {m['cells']:.3f} | "
              f"{m['even']:.3f} | {m['even'] - m['cells']:.3f} | {m['cells'] - m['actual']:.3f} "
              f"| {m['leak']:.3f} | {m['top10_share']:.2f} | {m['wall_share']:.2f} "
              f"| {m['interior_filled']:.2f} |")


if __name__ == "__main__":
    main()

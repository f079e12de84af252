"""How a maze run's agent moves: how often its steps run into a wall, and how long they are.

    python benchmarks/coverage/wall_steps.py benchmarks/coverage/cpu/records/maze/*/*/*

A step hits a wall when the point's displacement differs from the action (docs/mazes.md §4.3:
a wall stops the perpendicular part of the step). Over the last --episodes episodes of a run's
final replay: the share of steps that hit a wall, the mean length of the action and of the step
actually made, and the share of action components at the bound (|a_i| >= 0.99). A policy that
presses into walls piles its states on the bins along them, where coverage counts few bins
(where_lost.py). The replay stays behind in the benchmark's work folder, so run.py writes these
figures into the run as moves.json, which its record keeps; this script reads moves.json where
there is one and the replay otherwise (writing moves.json then). Prints a table per
(maze, agent) and writes one row per run to --csv.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from harness import REPO  # noqa: E402


def moves(replay, episodes: int) -> dict:
    """Wall-hit share, mean action and step length, and saturated share of the last episodes."""
    n = int(replay["num_episodes"])
    obs = replay["observation"][max(0, n - episodes):n]
    action = replay["steps/action"][max(0, n - episodes):n].reshape(-1, 2)
    step = (obs[:, 1:] - obs[:, :-1]).reshape(-1, 2)
    return {"episodes": len(obs),
            "wall_hits": float(np.mean(np.abs(step - action).max(-1) > 1e-4)),
            "action_length": float(np.linalg.norm(action, axis=-1).mean()),
            "step_length": float(np.linalg.norm(step, axis=-1).mean()),
            "saturated": float(np.mean(np.abs(action) >= 0.99))}


def write_moves(run: Path, episodes: int = 200) -> dict | None:
    """moves() of the run's final replay, also written to run/moves.json (None: no replay)."""
    from edp.checkpoint import latest

    found = latest(run / "checkpoints")
    if found is None or not (found / "replay.npz").is_file():
        return None
    with np.load(found / "replay.npz") as replay:
        figures = {"frame": int(found.name), **moves(replay, episodes)}
    (run / "moves.json").write_text(json.dumps(figures, indent=1))
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path,
                        help="maze run directories or their records")
    parser.add_argument("--episodes", type=int, default=200,
                        help="the last episodes of a replay to read (default 200: 10k steps)")
    parser.add_argument("--csv", type=Path, help="where the per-run rows go")
    args = parser.parse_args()
    from edp.envs import EnvId
    from edp.rundir import read_config

    rows = []
    for run in args.runs:
        if (run / "moves.json").is_file():
            figures = json.loads((run / "moves.json").read_text())
        elif (figures := write_moves(run, args.episodes)) is None:
            print(f"skipped {run}: no moves.json and no checkpoint with a replay",
                  file=sys.stderr)
            continue
        config = read_config(run)
        rows.append({"maze": EnvId.parse(config["env"]).maze, "agent": config["agent"],
                     "seed": config["seed"], "run": os.path.relpath(run.resolve(), REPO),
                     **figures})
    if not rows:
        raise SystemExit("no maze runs with a replay among the given directories")
    if args.csv:
        with open(args.csv, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows({k: round(v, 4) if isinstance(v, float) else v
                              for k, v in r.items()} for r in rows)
    print("| maze | agent | runs | frame | steps hitting a wall | action length | step length "
          "| action components at the bound |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for key in sorted({(r["maze"], r["agent"]) for r in rows}):
        mine = [r for r in rows if (r["maze"], r["agent"]) == key]
        m = {k: np.mean([r[k] for r in mine]) for k in
             ("wall_hits", "action_length", "step_length", "saturated")}
        frames = sorted({r["frame"] for r in mine})
        print(f"| {key[0]} | {key[1]} | {len(mine)} | {'/'.join(map(str, frames))} "
              f"| {m['wall_hits']:.2f} | {m['action_length']:.2f} | {m['step_length']:.2f} "
              f"| {m['saturated']:.2f} |")


if __name__ == "__main__":
    main()

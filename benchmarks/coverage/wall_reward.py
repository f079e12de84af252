"""Does EDP's reward see the walls its agent presses into? A probe of one run, in one room.

    python benchmarks/coverage/wall_reward.py \
        benchmarks/coverage/work/cpu/maze/square_bottleneck/edp/0-* --box -0.5 4.5 -0.5 4.5

For a finished EDP maze run with its last checkpoint (weights and replay; they stay in the
benchmark's work folder, so this runs on the machine that trained the run) and a rectangular
room of the maze (--box x_min x_max y_min y_max):
- by distance to the nearest wall, the share of the room's area, the share of the run's states
  in the room, and the mean intrinsic reward there (uniform points, --estimates estimates of
  the agent's K draws each). A reward that steered away from crowded states would be lowest
  in the crowded band along the walls;
- for the first and the last --episodes episodes, the share of the states in the room that lie
  within 0.01 of each side of the box: which wall the agent presses into.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from harness import load_maze_run  # noqa: E402

BANDS = (0.0, 0.01, 0.05, 0.1, 0.2, 0.3, 0.5, np.inf)


def wall_distance(maze, points: np.ndarray) -> np.ndarray:
    """Distance of each point (N, 2) to the nearest unit wall segment."""
    distance = np.full(len(points), np.inf)
    for (x_lo, x_hi), (y_lo, y_hi) in maze.walls:
        dx = points[:, 0] - np.clip(points[:, 0], x_lo, x_hi)
        dy = points[:, 1] - np.clip(points[:, 1], y_lo, y_hi)
        distance = np.minimum(distance, np.hypot(dx, dy))
    return distance


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="an EDP maze run directory with checkpoints")
    parser.add_argument("--box", type=float, nargs=4, required=True,
                        metavar=("X_MIN", "X_MAX", "Y_MIN", "Y_MAX"))
    parser.add_argument("--points", type=int, default=20_000)
    parser.add_argument("--estimates", type=int, default=16)
    parser.add_argument("--episodes", type=int, default=1000)
    args = parser.parse_args()
    from edp.envs.maze import inside_maze
    from edp.train import reward_draws

    cfg, maze, agent, state, meta, arrays = load_maze_run(args.run)
    if cfg.agent != "edp":
        raise SystemExit(f"{args.run} is a {cfg.agent} run: the probe reads EDP's state model")
    if "replay" not in arrays:
        raise SystemExit(f"{args.run}'s last checkpoint has no replay")
    x_min, x_max, y_min, y_max = args.box
    in_box = lambda p: ((p[:, 0] > x_min) & (p[:, 0] < x_max)  # noqa: E731
                        & (p[:, 1] > y_min) & (p[:, 1] < y_max))
    rng = np.random.default_rng(0)
    points = np.stack([rng.uniform(x_min, x_max, args.points),
                       rng.uniform(y_min, y_max, args.points)], 1).astype(np.float32)
    points = points[inside_maze(maze, points)]
    reward = reward_draws(agent, state, points, cfg.seed, args.estimates).mean(0)
    observations = arrays["replay"]["observation"][:int(arrays["replay"]["num_episodes"])]
    visited = observations.reshape(-1, 2)
    visited = visited[in_box(visited)]
    near_points, near_visited = wall_distance(maze, points), wall_distance(maze, visited)
    print(f"{args.run}, frame {meta['frame']}, room x {x_min}..{x_max}, y {y_min}..{y_max}: "
          f"{len(visited)} states")
    print("| distance to the nearest wall | share of the room's area | share of its states | "
          "mean reward |")
    print("| --- | --- | --- | --- |")
    for lo, hi in zip(BANDS[:-1], BANDS[1:], strict=True):
        area = (near_points >= lo) & (near_points < hi)
        states = (near_visited >= lo) & (near_visited < hi)
        print(f"| {lo}-{hi} | {area.mean():.3f} | {states.mean():.3f} | "
              f"{reward[area].mean() if area.any() else float('nan'):.3f} |")
    sides = {"x = x_min": lambda p: p[:, 0] < x_min + 0.01,
             "x = x_max": lambda p: p[:, 0] > x_max - 0.01,
             "y = y_min": lambda p: p[:, 1] < y_min + 0.01,
             "y = y_max": lambda p: p[:, 1] > y_max - 0.01}
    print(f"\n| episodes | states in the room | {' | '.join(sides)} |")
    print(f"| --- | --- |{' --- |' * len(sides)}")
    n = len(observations)
    for name, part in (("first", observations[:args.episodes]),
                       ("last", observations[max(0, n - args.episodes):])):
        states = part.reshape(-1, 2)
        room = states[in_box(states)]
        print(f"| {name} {min(args.episodes, n)} | {len(room) / len(states):.2f} | "
              + " | ".join(f"{side(room).mean():.3f}" for side in sides.values()) + " |")


if __name__ == "__main__":
    main()

"""Does an agent's reward see the walls its agent presses into? A probe of one run, in one room.

    python benchmarks/coverage/wall_reward.py \
        benchmarks/coverage/work/cpu/maze/square_bottleneck/edp/0-* --box -0.5 4.5 -0.5 4.5

For a finished maze run with its last checkpoint (weights and replay; they stay in the
benchmark's work folder, so this runs on the machine that trained the run) of an agent that
draws a reward map (EDP, APS, APT, CIC, RND, ProtoRL) and a rectangular room of the maze
(--box x_min x_max y_min y_max):
- by distance to the nearest wall, the share of the room's area, the share of the run's states
  in the room, and the mean intrinsic reward of those states (--states states drawn from the
  whole replay and scored together, as a training batch would score them: the kNN rewards of
  APS, APT and CIC depend on the states around them; --estimates estimates each). A reward that
  steered away from crowded states would be lowest in the crowded band along the walls;
- for EDP, whose reward is a function of the state alone, also the mean reward of uniform
  points of each band (--points points);
- for the first and the last --episodes episodes, the share of the states in the room that lie
  within 0.01 of each side of the box: which wall the agent presses into.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from harness import load_maze_run, replay_episodes  # noqa: E402

BANDS = (0.0, 0.01, 0.05, 0.1, 0.2, 0.3, 0.5, np.inf)
OPEN = 0.1  # the summary line's open space: this far or further from every wall


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
    parser.add_argument("run", type=Path, help="a maze run directory with checkpoints")
    parser.add_argument("--box", type=float, nargs=4, required=True,
                        metavar=("X_MIN", "X_MAX", "Y_MIN", "Y_MAX"))
    parser.add_argument("--points", type=int, default=20_000)
    parser.add_argument("--states", type=int, default=20_000)
    parser.add_argument("--estimates", type=int, default=16)
    parser.add_argument("--episodes", type=int, default=1000)
    args = parser.parse_args()
    from edp.envs.maze import inside_maze
    from edp.train import reward_draws

    cfg, maze, agent, state, meta, arrays = load_maze_run(args.run)
    if not agent.reward_map:
        raise SystemExit(f"{args.run} is a {cfg.agent} run: {cfg.agent} has no reward of a state "
                         "to probe")
    x_min, x_max, y_min, y_max = args.box
    in_box = lambda p: ((p[:, 0] > x_min) & (p[:, 0] < x_max)  # noqa: E731
                        & (p[:, 1] > y_min) & (p[:, 1] < y_max))
    rng = np.random.default_rng(0)
    observations = replay_episodes(arrays)
    everything = observations.reshape(-1, 2)
    sample = everything[rng.integers(len(everything), size=args.states)].astype(np.float32)
    sample_reward = reward_draws(agent, state, sample, cfg.seed, args.estimates).mean(0)
    sample_reward, sample = sample_reward[in_box(sample)], sample[in_box(sample)]
    visited = everything[in_box(everything)]
    near_sample, near_visited = wall_distance(maze, sample), wall_distance(maze, visited)
    points = np.stack([rng.uniform(x_min, x_max, args.points),
                       rng.uniform(y_min, y_max, args.points)], 1).astype(np.float32)
    points = points[inside_maze(maze, points)]
    columns = ["share of the room's area", "share of its states", "mean reward of its states"]
    if cfg.agent == "edp":
        point_reward = reward_draws(agent, state, points, cfg.seed, args.estimates).mean(0)
        columns.append("mean reward of its area")
    near_points = wall_distance(maze, points)
    print(f"{args.run} ({cfg.agent}), frame {meta['frame']}, room x {x_min}..{x_max}, "
          f"y {y_min}..{y_max}: {len(visited)} states, {len(sample)} of them scored")
    print(f"| distance to the nearest wall | {' | '.join(columns)} |")
    print(f"| --- |{' --- |' * len(columns)}")
    for lo, hi in zip(BANDS[:-1], BANDS[1:], strict=True):
        area = (near_points >= lo) & (near_points < hi)
        scored = (near_sample >= lo) & (near_sample < hi)
        cells = [f"{area.mean():.3f}",
                 f"{((near_visited >= lo) & (near_visited < hi)).mean():.3f}",
                 f"{sample_reward[scored].mean():.3f}" if scored.any() else "-"]
        if cfg.agent == "edp":
            cells.append(f"{point_reward[area].mean():.3f}" if area.any() else "-")
        print(f"| {lo}-{hi} | {' | '.join(cells)} |")
    band, open_ = near_sample < BANDS[1], near_sample >= OPEN
    if band.any() and open_.any():
        print(f"\nits states within {BANDS[1]} of a wall get {sample_reward[band].mean():.3f}, "
              f"those {OPEN} or more from any wall {sample_reward[open_].mean():.3f}: ratio "
              f"{sample_reward[band].mean() / sample_reward[open_].mean():.3f}")
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

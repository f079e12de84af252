"""At which diffusion times does EDP's reward see how crowded a state is? A probe of one run.

    python benchmarks/coverage/reward_by_time.py \
        benchmarks/coverage/work/tprobe/maze/square_a/edp/0-*

EDP's reward of a state is its denoising loss averaged over diffusion times t ~ U(1e-3, 1)
(docs/method.md §5.3). At time t the state is blurred by noise of scale sigma_t, so the loss
at t can only tell apart places further apart than about sigma_t. The coverage metric counts
bins 0.05 wide, and an agent that presses into walls piles its states within 0.01 of them; on
the VP schedule sigma_t is below 0.05 only for t < 0.011, about 1% of the reward's draws.

For a finished EDP maze run with its last checkpoint (weights and replay), on --states states
drawn from the replay, and for each interval of t (t uniform in it, --draws draws per state,
the state model in the reward's own mode, dropout as configured), this prints:
- sigma_t over the interval and its share of the reward's time draws;
- the mean loss of the states within 0.01 of a wall (where such runs crowd) and of those 0.1 or
  more from every wall, and their ratio (a loss that tracked crowding would be lower near
  walls);
- Spearman's rho between the loss and the visit count of the state's bin (--bin wide) over all
  drawn states: how well the loss at those times ranks crowded against sparse;
- the interval's share of the reward's wall-minus-open difference (its weight in the reward
  times its own difference).
The last row is the reward itself (t ~ U(1e-3, 1)).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]
from harness import load_maze_run, replay_episodes, visit_grid  # noqa: E402
from wall_reward import wall_distance  # noqa: E402

EDGES = (1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0)
WALL, OPEN = 0.01, 0.1  # crowded band: within WALL of a wall; open space: OPEN or further


def loss_in_interval(agent, state, points: np.ndarray, low: float, high: float, draws: int,
                     key) -> np.ndarray:
    """Per point, the mean denoising loss over `draws` (t ~ U(low, high), z ~ N(0, I)) draws,
    with dropout as the reward uses it."""
    import jax

    from edp import diffusion
    from edp.score_models import score_fn

    @jax.jit
    def one(x0, key):
        k_loss, k_drop = jax.random.split(key)
        fn = score_fn(state.state_model, k_drop if agent.cfg.reward_dropout else None)
        return diffusion.dsm_loss_per_sample(fn, x0, k_loss, num_draws=draws, t_min=low,
                                             t_max=high)

    chunk = 1024
    keys = jax.random.split(key, -(-len(points) // chunk))
    return np.concatenate([np.asarray(one(points[i * chunk:(i + 1) * chunk], k))
                           for i, k in enumerate(keys)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="an EDP maze run directory with checkpoints")
    parser.add_argument("--states", type=int, default=8192, help="replay states drawn")
    parser.add_argument("--draws", type=int, default=64, help="(t, z) draws per state and row")
    parser.add_argument("--bin", type=float, default=0.05, help="bin width of the visit count")
    args = parser.parse_args()
    import jax
    from scipy.stats import spearmanr

    cfg, maze, agent, state, meta, arrays = load_maze_run(args.run)
    if cfg.agent != "edp":
        raise SystemExit(f"{args.run} is a {cfg.agent} run: this probes EDP's state model")
    visited = replay_episodes(arrays).reshape(-1, 2)
    rng = np.random.default_rng(0)
    points = visited[rng.integers(len(visited), size=args.states)].astype(np.float32)
    counts, index = visit_grid(maze, visited, args.bin)
    count = counts[index(points)]
    near = wall_distance(maze, points)
    band, open_ = near < WALL, near >= OPEN
    from edp.diffusion import T_MIN_TRAIN, alpha_sigma

    sigma = lambda t: float(alpha_sigma(np.float32(t))[1])  # noqa: E731
    print(f"{args.run} (edp), frame {meta['frame']}: {len(points)} replay states, "
          f"{band.mean():.2f} of them within {WALL} of a wall, {open_.mean():.2f} {OPEN} or "
          f"more from every wall; {args.draws} draws per state and row")
    print("| t | sigma_t | share of the reward's draws | loss within 0.01 of a wall | "
          "loss 0.1+ from walls | ratio | rho(loss, bin visits) | share of the reward's "
          "wall - open difference |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    key = jax.random.PRNGKey(cfg.seed)
    rows, gaps = [], []
    for low, high in zip(EDGES[:-1], EDGES[1:], strict=True):
        key, k = jax.random.split(key)
        loss = loss_in_interval(agent, state, points, low, high, args.draws, k)
        weight = (high - low) / (1.0 - T_MIN_TRAIN)
        gaps.append(weight * (loss[band].mean() - loss[open_].mean()))
        rows.append((f"{low:g}-{high:g}", f"{sigma(low):.3f}-{sigma(high):.3f}",
                     f"{weight:.3f}", loss, spearmanr(loss, count).statistic))
    key, k = jax.random.split(key)
    loss = loss_in_interval(agent, state, points, T_MIN_TRAIN, 1.0, args.draws, k)
    rows.append(("the reward: 0.001-1", f"{sigma(T_MIN_TRAIN):.3f}-{sigma(1.0):.3f}", "1",
                 loss, spearmanr(loss, count).statistic))
    shares = [f"{g / sum(gaps):.2f}" for g in gaps] + ["1"]
    for (name, sig, weight, loss, rho), share in zip(rows, shares, strict=True):
        wall, open_loss = loss[band].mean(), loss[open_].mean()
        print(f"| {name} | {sig} | {weight} | {wall:.3f} | {open_loss:.3f} | "
              f"{wall / open_loss:.3f} | {rho:+.2f} | {share} |")


if __name__ == "__main__":
    main()

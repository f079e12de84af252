"""How much does an agent's intrinsic reward tell the states of a training batch apart?

    python benchmarks/coverage/reward_spread.py benchmarks/coverage/work/cpu/maze/square_tree/*/*

For each finished maze run with its last checkpoint (weights and replay: the benchmark's work
folder, on the machine that trained it), --batches batches of the agent's batch size are drawn
from the replay as training draws them, and the states the agent's training reward scores
(its `rewarded` field: s, or the n-step next state s+) are each rewarded twice, with independent
draws of the reward's randomness (EDP: its K Monte-Carlo (t, z) draws and dropout; the kNN
agents score a whole batch exactly, so theirs is 0). Per run: the mean reward; its spread
across the batch's states (std); the draw noise (the std of the two rewards' difference, over
sqrt 2); and the signal, the part the two draws share (their covariance across states). For
APS the reward is split into its two terms: r_sf = <w, phi(s+)> with the skill w that acted,
and r_ent, the kNN term. A critic learns to steer the actor only by the signal; signal / mean
reward (the agent's whole reward, both APS terms) says how much of the reward that is.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from harness import load_maze_run, replay_episodes  # noqa: E402


def spread(first: np.ndarray, second: np.ndarray) -> dict[str, float]:
    """Mean, std across states, draw-noise std and signal std of (batches, B) rewards drawn
    twice: the signal's variance is the covariance of the two draws across a batch's states."""
    centred = [x - x.mean(axis=1, keepdims=True) for x in (first, second)]
    covariance = float(np.mean(centred[0] * centred[1]))
    return {"mean": float(first.mean()), "std": float(np.sqrt(np.mean(centred[0] ** 2))),
            "noise": float(np.std(first - second) / np.sqrt(2)),
            "signal": float(np.sqrt(max(covariance, 0.0)))}


def run_terms(run: Path, batches: int) -> tuple[str, int, dict[str, dict[str, float]]]:
    """The run's agent, seed and {term: spread} over `batches` replay batches."""
    import jax

    cfg, _, agent, state, _, arrays = load_maze_run(run)
    if not agent.reward_map:
        raise SystemExit(f"{run} is a {cfg.agent} run: {cfg.agent} has no reward of a state")
    replay = arrays["replay"]
    observation = replay_episodes(arrays)
    episodes = len(observation)
    meta = replay.get("steps/meta")
    rng = np.random.default_rng(cfg.seed)
    keys = iter(jax.random.split(jax.random.PRNGKey(cfg.seed), 2 * batches))
    rewards: dict[str, list[np.ndarray]] = {}
    for _ in range(batches):
        e = rng.integers(episodes, size=agent.batch_size)
        t = rng.integers(observation.shape[1] - cfg.nstep, size=agent.batch_size)  # as replay
        batch = {"observation": observation[e, t],
                 "next_observation": observation[e, t + cfg.nstep]}
        rewarded = batch[agent.rewarded]
        draws = [np.asarray(agent.intrinsic_reward(state, rewarded, next(keys))) for _ in "ab"]
        rewards.setdefault(cfg.agent, []).append(np.stack(draws))
        if cfg.agent == "aps":
            r_sf = np.asarray(agent.reward_terms(state, rewarded, meta[e, t])[1])
            rewards.setdefault("aps r_sf", []).append(np.stack([r_sf, r_sf]))
    terms = {}
    for name, values in rewards.items():
        both = np.stack(values, axis=1)  # (2, batches, B)
        terms[name if name != "aps" else "aps r_ent"] = spread(both[0], both[1])
    return cfg.agent, cfg.seed, terms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, nargs="+", help="maze run directories")
    parser.add_argument("--batches", type=int, default=200,
                        help="training-size batches drawn from each run's replay (default 200)")
    args = parser.parse_args()
    print("| run | term | mean | std across states | draw noise | signal | signal / mean reward |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for run in args.runs:
        agent, seed, terms = run_terms(run, args.batches)
        reward = sum(s["mean"] for s in terms.values())
        for term, s in terms.items():
            print(f"| {run.parent.parent.name}/{agent}/{seed} | {term} | {s['mean']:.3f} | "
                  f"{s['std']:.3f} | {s['noise']:.3f} | {s['signal']:.3f} | "
                  f"{s['signal'] / abs(reward):.3f} |")


if __name__ == "__main__":
    main()

"""Is SMM's density model alive? A probe of finished SMM maze runs.

    python benchmarks/coverage/smm_vae.py benchmarks/coverage/work/cpu/maze/square_a/smm/*

SMM's state-entropy reward h(s|z) is the VAE's reconstruction error of [s, z]: high where the
VAE fits poorly, which should mean rarely visited. For each run's last checkpoint (weights and
replay; they stay in the benchmark's work folder, so this runs on the machine that trained the
run), over the states of its last --episodes episodes:
- the encoder's ReLU units that fire on none of those states (dead units): with a whole layer
  dead, the code mean and variance are constants and the code is noise that carries nothing
  of the input;
- the spread of the reconstruction (mean code, eps = 0) against that of the input, and its error
  against that of predicting the states' own mean: a VAE whose reconstruction does not vary
  with its input makes h(s|z) the squared distance to a fixed point, which rewards the states
  farthest from it;
- the reward and its two state terms on the states within 0.01 of a wall and on those 0.1 or
  more from every wall (`wall_reward.py`'s bands).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from harness import load_maze_run  # noqa: E402


def dead_units(layers: list[dict], x: np.ndarray) -> list[int]:
    """For a ReLU MLP's hidden layers ({"kernel", "bias"} each, applied in turn to x (N, d)),
    how many units of each layer stay at 0 on every row of x."""
    dead, h = [], np.asarray(x, dtype=np.float64)
    for layer in layers:
        h = np.maximum(h @ np.asarray(layer["kernel"]) + np.asarray(layer["bias"]), 0.0)
        dead.append(int((h.max(axis=0) <= 0).sum()))
    return dead


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, nargs="+", help="SMM maze run directories")
    parser.add_argument("--episodes", type=int, default=200)
    args = parser.parse_args()
    import jax
    import jax.numpy as jnp
    from wall_reward import BANDS, OPEN, wall_distance

    for run in args.runs:
        cfg, maze, agent, state, meta, arrays = load_maze_run(run)
        if cfg.agent != "smm":
            raise SystemExit(f"{run} is a {cfg.agent} run, not an smm one")
        replay = arrays["replay"]
        n = int(replay["num_episodes"])
        first = max(n - args.episodes, 0)
        obs = np.asarray(replay["observation"][first:n, :-1]).reshape(-1, 2)
        skill = np.asarray(replay["steps/meta"][first:n]).reshape(len(obs), -1)
        x = np.concatenate([obs, skill], axis=1)
        params = state.vae.params
        recon = np.asarray(agent.vae.apply(
            {"params": params}, jnp.asarray(x), jnp.zeros((len(x), agent.cfg.code_dim)))[0])
        encoder = [params["encoder"][f"Dense_{i}"] for i in range(2)]
        reward, h_sz, h_zs = (np.asarray(a) for a in agent.reward_terms(
            state, jnp.asarray(obs), jnp.asarray(skill), jax.random.PRNGKey(cfg.seed)))
        distance = wall_distance(maze, obs)
        print(f"{run} (smm), frame {meta['frame']}, the last {n - first} episodes, "
              f"{len(obs)} states")
        print(f"  dead encoder units: {dead_units(encoder, x)} of "
              f"{agent.cfg.vae_hidden_dim} per layer")
        print("  state spread (std x, y): input {:.3f} {:.3f}, reconstruction {:.3f} {:.3f} "
              "around ({:.2f}, {:.2f})".format(*x[:, :2].std(0), *recon[:, :2].std(0),
                                               *recon[:, :2].mean(0)))
        print(f"  reconstruction error {((recon - x) ** 2).sum(1).mean():.3f}, predicting the "
              f"states' mean {((x - x.mean(0)) ** 2).sum(1).mean():.3f}")
        for name, mask in ((f"within {BANDS[1]} of a wall", distance < BANDS[1]),
                           (f"{OPEN} or more from every wall", distance >= OPEN)):
            if mask.any():
                print(f"  {name} ({mask.mean():.0%} of the states): reward "
                      f"{reward[mask].mean():.3f}, h(s|z) {h_sz[mask].mean():.3f}, "
                      f"h(z|s) {h_zs[mask].mean():.3f}")


if __name__ == "__main__":
    main()

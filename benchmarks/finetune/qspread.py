"""How much room a diffusion fine-tuning run's critic gives the policy: per-state spreads.

    python benchmarks/finetune/qspread.py <fine-tuning run dir> [--states 256 --samples 32]

Loads the run's latest checkpoint and, on states drawn from its replay, compares the actions of
the pre-trained and the fine-tuned diffusion policies (per-state std), the spread of the
critic's min-twin target Q over those actions and over uniform actions (mean per-state
max - min), and the CEP label sharpness it gives: the mean max_j of the run's own labels
(`cep_labels` with the run's alpha and `standardise_q`, over groups of the run's M =
num_negatives candidates of a state). On raw Q, a spread small next to 1 / alpha means
near-uniform labels, hence weak guidance; on standardised Q the sharpness no longer depends on
the spread, only on alpha and M.
It also gives the share of sampled actions outside the action space (any |a_i| > 1) and the
mean Q at the clipped actions, clip(a) = what the body executes: where the replay holds only
clipped actions (`--clip-actions`), Q beyond the bound is the network's extrapolation.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from edp.evaluate import load_latest
from edp.finetune import iql
from edp.finetune.common import sample_actions
from edp.finetune.edp import cep_labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--states", type=int, default=256)
    parser.add_argument("--samples", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    loaded = load_latest(args.run)
    cfg, env, state = loaded.config, loaded.env, loaded.state
    if getattr(cfg, "method", "ddpg") == "ddpg":
        raise SystemExit("qspread.py: the run must be a fine-tuning run of a diffusion method")
    stored = np.load(loaded.checkpoint / "replay.npz")["observation"]  # (episodes, steps + 1, S)
    rng = np.random.default_rng(args.seed)
    obs = jnp.asarray(stored[rng.integers(0, stored.shape[0], args.states),
                             rng.integers(0, stored.shape[1], args.states)], jnp.float32)
    labelling = cfg.method_config() if cfg.method == "edp" else cfg.edp  # others: edp's
    alpha, standardise, group = (labelling.alpha, labelling.standardise_q,
                                 labelling.num_negatives)
    if args.samples % group:
        raise SystemExit(f"qspread.py: --samples must be a multiple of the run's M = {group}")
    key = jax.random.PRNGKey(args.seed)

    def q_of(actions):
        rep = jnp.broadcast_to(obs[:, None], actions.shape[:2] + obs.shape[-1:])
        return iql.q_min(state.critic.q, rep, actions, state.critic.q_target)

    print(f"run {args.run} at frame {loaded.meta['frame']}: {args.states} replay states x "
          f"{args.samples} actions; labels alpha {alpha}, standardised Q {standardise}, M {group}")
    print("| actions | solver steps | action std / state | outside [-1, 1] | Q mean "
          f"| Q mean at clip(a) | Q max - min / state | label max (uniform {1 / group:.3f}) |\n"
          "| --- | --- | --- | --- | --- | --- | --- | --- |")
    sources = [(name, net, steps) for name, net in (("pre-trained", state.pretrained),
                                                    ("fine-tuned", state.policy))
               for steps in sorted({cfg.method_config().diffusion_steps, 15})]
    for name, net, steps in sources + [("uniform", None, None)]:
        if net is None:
            actions = jax.random.uniform(key, (args.states, args.samples, env.action_dim),
                                         minval=-1.0, maxval=1.0)
        else:
            actions = sample_actions(net, obs, key, steps, args.samples)
        q = q_of(actions)
        label = cep_labels(q.reshape(-1, group), alpha, standardise).max(axis=1).mean()
        outside = (jnp.abs(actions) > 1).any(axis=-1).mean()
        q_clipped = q_of(jnp.clip(actions, -1.0, 1.0)).mean()
        print(f"| {name} | {steps or '-'} | {float(actions.std(axis=1).mean()):.3f} | "
              f"{float(outside):.2f} | {float(q.mean()):.2f} | {float(q_clipped):.2f} | "
              f"{float((q.max(1) - q.min(1)).mean()):.3f} | "
              f"{float(label):.3f} |")


if __name__ == "__main__":
    main()

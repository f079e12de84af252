"""The interface between the training loop and an agent.

An agent object holds only static configuration and jitted pure functions; everything that
changes (parameters, optimizer states, target networks, running statistics) is the agent
*state*, a `flax.struct.PyTreeNode`. The loop never looks inside the state.

A batch is a dict of arrays with a leading `iters` axis, one slice per gradient iteration:
  observation (iters, B, S), action (iters, B, A), reward (iters, B), discount (iters, B),
  next_observation (iters, B, S)
where reward is the n-step discounted extrinsic return and discount the bootstrap discount
(gamma^n times environment discounts).

Skills ("meta", docs/baselines.md §0.5). An agent whose actor and critic also see a
skill or task vector z (DIAYN, SMM, APS, CIC) has `meta_dim > 0` and the three members of
`SkillAgent`; every other agent has none of them and the loop treats it exactly as before. For a
skill agent the loop:
  * draws z with `init_meta` at every episode reset (one row per env copy), and calls
    `update_meta` once per env step, before acting (it resamples every N steps, counted across
    episodes, or infers the task from the replay: APS fine-tuning);
  * acts on the observation with z appended, `with_meta(obs, meta)` (N, S + meta_dim);
  * stores z in the replay as the per-step field "meta", so batches carry
    meta (iters, B, meta_dim); the agent appends it to observation and next_observation itself.
    As in URLB the z stored with step t is the one stored *with observation t*: the reset draw
    at t = 0, else the z that chose the action of step t - 1 (stale at a resample,
    docs/baselines.md §0.5);
  * evaluates with one `init_meta` draw per evaluation round, shared by all its episodes.
`init_meta` and `update_meta` are deterministic in (state, key, step), so resuming at an episode
boundary (where checkpoints are taken) redraws exactly the same skills.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import jax
import numpy as np

Batch = dict[str, jax.Array | np.ndarray]
Metrics = dict[str, jax.Array]
# (n) -> n transitions from the replay as unbatched arrays (n, ...), None while it is empty
Sampler = Callable[[int], Batch | None]


class Agent(Protocol):
    name: str
    batch_size: int  # transitions per gradient iteration
    updates_per_step: int  # gradient iterations per learning call (the `iters` axis)
    update_every: int  # env steps between learning calls
    learning_starts: int  # no learning call before this many env steps

    def init(self, key: jax.Array) -> Any:
        """Fresh agent state."""
        ...

    def act(self, state: Any, observation: jax.Array, key: jax.Array, step: int,
            eval_mode: bool) -> jax.Array:
        """Actions (N, A) for observations (N, S); `step` is the env step count so far."""
        ...

    def update(self, state: Any, batch: Batch, key: jax.Array) -> tuple[Any, Metrics]:
        """All gradient iterations of one learning call; returns the new state and scalars."""
        ...


class SkillAgent(Agent, Protocol):
    meta_dim: int  # width of the skill z appended to the observation (0 or absent: no skill)

    def init_meta(self, state: Any, key: jax.Array, num: int) -> np.ndarray:
        """Skills (num, meta_dim) float32 for an episode reset or an evaluation round."""
        ...

    def update_meta(self, state: Any, meta: np.ndarray, step: int, key: jax.Array,
                    sample: Sampler) -> tuple[Any, np.ndarray]:
        """Called before acting at env step `step`: the (possibly new) state and skills. Only
        task inference reads the replay through `sample` or changes the state."""
        ...


def meta_dim(agent: Any) -> int:
    """The agent's skill width; 0 for agents without skills."""
    return getattr(agent, "meta_dim", 0)


def with_meta(observation: np.ndarray, meta: np.ndarray | None) -> np.ndarray:
    """The actor's input: the observation, with the skill appended when there is one."""
    return observation if meta is None else np.concatenate([observation, meta], axis=-1)


def check_fields(owner: str, cfg: Any, rules: list[tuple[str, bool, str]],
                 prefix: str = "") -> None:
    """Raise ValueError "<owner> <prefix><field>=<value>: must be <valid>" for the first
    broken (field, ok, valid) rule: every config's one-line error."""
    for field, ok, valid in rules:
        if not ok:
            raise ValueError(f"{owner} {prefix}{field}={getattr(cfg, field)!r}: must be {valid}")

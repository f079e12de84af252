"""The base of every agent: what the training loops see of it.

An agent object holds only static configuration and jitted pure functions; everything that
changes (parameters, optimizer states, target networks, running statistics) is the agent
*state*, a `flax.struct.PyTreeNode`. The loop never looks inside the state.

`Agent` owns the update schedule (`batch_size`, `updates_per_step`, `update_every`,
`learning_starts`, from the agent's config) and the one jitted learning call: a subclass writes
`init(key)`, `act` and `_update_once(state, batch_slice, key)`, and `update` runs
`_update_once` once per slice of the batch's `iters` axis in one compiled `lax.scan`. Pre-training
and fine-tuning agents alike start with `init(key)`: a fine-tuning agent is built with what the
pre-trained agent handed over and starts from it.

A batch is a dict of arrays with a leading `iters` axis, one slice per gradient iteration:
  observation (iters, B, S), action (iters, B, A), reward (iters, B), discount (iters, B),
  next_observation (iters, B, S)
where reward is the n-step discounted extrinsic return and discount the bootstrap discount
(gamma^n times environment discounts).

Capabilities are class attributes, read by the loops and the fine-tuning set-up:
  * `meta_dim` (skills, docs/baselines.md §0.5): > 0 for an agent whose actor and critic also see
    a skill or task vector z (DIAYN, SMM, APS, CIC), which then has `init_meta`, `update_meta`,
    `draw_meta` and `step_meta` (`edp.agents.skills.SkillAgent`);
  * `reward_map`: the agent has `intrinsic_reward(state, observations, key)`, drawn as the maze
    figure reward_map.png, and `rewarded`, the batch field ("observation" or
    "next_observation") whose states its training reward scores;
  * `handoff`: what its snapshots hand to fine-tuning: "actor" (the DDPG actor and critic,
    `finetune_agent`), "diffusion_policy" (`state.policy`, for the diffusion methods).
A pre-training agent also declares its config group and presets (`config`, `config_help`,
`fast`, `paper_group`, `paper_backbone`) and how a run config builds it (`from_config`): the
registry, the run config and the presets read them (docs/architecture.md §8).

For a skill agent the loop:
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

import functools
from collections.abc import Callable
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

Batch = dict[str, jax.Array | np.ndarray]
Metrics = dict[str, jax.Array]
# (n) -> n transitions from the replay as unbatched arrays (n, ...), None while it is empty
Sampler = Callable[[int], Batch | None]


class Schedule(NamedTuple):
    """When and how much an agent learns (every agent config carries these four fields)."""

    batch_size: int  # transitions per gradient iteration
    updates_per_step: int  # gradient iterations per learning call (the `iters` axis)
    update_every: int  # env steps between learning calls
    learning_starts: int  # no learning call before this many env steps


URL_BACKBONE = {"batch_size": 1024, "update_every": 2, "updates_per_step": 1}  # URLB's DDPG


class Agent:
    """Schedule, one compiled learning call, and the declarations of a pre-training agent."""

    name: ClassVar[str]
    meta_dim: int = 0
    reward_map: ClassVar[bool] = False
    rewarded: str = "observation"
    handoff: ClassVar[frozenset[str]] = frozenset()
    # the agent's config group in the run config (`--<name>.*`; None: none), its help line
    # and its `fast` preset values
    config: ClassVar[type | None] = None
    config_help: ClassVar[str] = ""
    fast: ClassVar[dict[str, Any]] = {}

    @classmethod
    def from_config(cls, cfg: Any, obs_dim: int, action_dim: int) -> Agent:
        """The agent of a resolved pre-training config (`cfg.<name>`, `cfg.ddpg`)."""
        raise NotImplementedError

    @classmethod
    def paper_group(cls, group: Any, env: Any) -> Any:
        """The agent's config group under the `paper` preset on env (an `EnvId`)."""
        return group

    @classmethod
    def paper_backbone(cls, env: Any) -> dict[str, Any]:
        """The DDPG backbone's schedule under the `paper` preset when this agent is chosen."""
        return URL_BACKBONE

    def __init__(self, schedule: Any, obs_dim: int, action_dim: int):
        """`schedule`: a `Schedule` or a config with its four fields."""
        self.batch_size = schedule.batch_size
        self.updates_per_step = schedule.updates_per_step
        self.update_every = schedule.update_every
        self.learning_starts = schedule.learning_starts
        self.obs_dim, self.action_dim = obs_dim, action_dim
        self._update = jax.jit(functools.partial(scan_iterations, self._update_once))

    def init(self, key: jax.Array) -> Any:
        """The state learning starts from (fine-tuning: the pre-trained agent's hand-over)."""
        raise NotImplementedError

    def act(self, state: Any, observation: jax.Array, key: jax.Array, step: int,
            eval_mode: bool) -> jax.Array:
        """Actions (N, A) for observations (N, S); `step` is the env step count so far (traced
        in the compiled loop)."""
        raise NotImplementedError

    def update(self, state: Any, batch: Batch, key: jax.Array) -> tuple[Any, Metrics]:
        """All gradient iterations of one learning call; returns the new state and scalars."""
        return self._update(state, batch, key)

    def _update_once(self, state: Any, batch: Batch, key: jax.Array) -> tuple[Any, Metrics]:
        """One gradient iteration on one batch slice (no `iters` axis)."""
        raise NotImplementedError


def scan_iterations(step_fn: Callable[[Any, Batch, jax.Array], tuple[Any, Metrics]],
                    state: Any, batch: Batch, key: jax.Array) -> tuple[Any, Metrics]:
    """Run `step_fn(state, batch_slice, key)` once per slice of the leading `iters` axis in
    one compiled loop; metrics are averaged over the iterations."""
    iters = jax.tree.leaves(batch)[0].shape[0]
    keys = jax.random.split(key, iters)
    state, metrics = jax.lax.scan(lambda s, xs: step_fn(s, *xs), state, (batch, keys))
    return state, jax.tree.map(jnp.mean, metrics)


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

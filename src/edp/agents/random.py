"""Uniform-random actions in [-1, 1]: the exploration floor every agent is compared with."""

from __future__ import annotations

from functools import partial
from typing import Any

import flax.struct
import jax

from edp.agents.base import Agent, Schedule


class RandomState(flax.struct.PyTreeNode):
    """No parameters: the random agent has nothing to learn."""


class RandomAgent(Agent):
    name = "random"

    def __init__(self, obs_dim: int, action_dim: int):
        super().__init__(Schedule(batch_size=1, updates_per_step=1, update_every=1,
                                  learning_starts=2**62), obs_dim, action_dim)  # never learns

    @classmethod
    def from_config(cls, cfg: Any, obs_dim: int, action_dim: int) -> RandomAgent:
        return cls(obs_dim, action_dim)

    def init(self, key: jax.Array) -> RandomState:
        return RandomState()

    @partial(jax.jit, static_argnums=(0, 5))
    def act(self, state, observation, key, step, eval_mode=False):
        shape = (observation.shape[0], self.action_dim)
        return jax.random.uniform(key, shape, minval=-1.0, maxval=1.0)

    def _update_once(self, state, batch, key):
        return state, {}

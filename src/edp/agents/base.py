"""The interface between the training loop and an agent.

An agent object holds only static configuration and jitted pure functions; everything that
changes (parameters, optimizer states, target networks, running statistics) is the agent
*state*, a `flax.struct.PyTreeNode`. The loop never looks inside the state.

A batch is a dict of arrays with a leading `iters` axis, one slice per gradient iteration:
  observation (iters, B, S), action (iters, B, A), reward (iters, B), discount (iters, B),
  next_observation (iters, B, S)
where reward is the n-step discounted extrinsic return and discount the bootstrap discount
(gamma^n times environment discounts).
"""

from __future__ import annotations

from typing import Any, Protocol

import jax
import numpy as np

Batch = dict[str, jax.Array | np.ndarray]
Metrics = dict[str, jax.Array]


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

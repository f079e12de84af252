"""What every intrinsic-reward agent on the DDPG backbone shares (docs/baselines.md §0.2).

An agent subclasses `IntrinsicAgent` and writes `init` and `_update_once(state, batch, key)`:
its auxiliary step(s), then its intrinsic reward under the just-updated parameters, then
`self.backbone_step(...)`, which runs the URLB critic / actor / Polyak iteration with that reward
in place of the batch's extrinsic return. The agent's state is a PyTreeNode with a `backbone:
DDPGState` field; acting uses only the backbone actor.
"""

from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from edp.agents import ddpg
from edp.agents.base import Batch, Metrics


class IntrinsicAgent:
    """Acting and one compiled update (all iterations of a learning call) over `_update_once`."""

    name: str

    def __init__(self, backbone: ddpg.DDPGConfig, obs_dim: int, action_dim: int):
        backbone.check()
        self.backbone_cfg = backbone
        self.obs_dim, self.action_dim = obs_dim, action_dim
        self.batch_size = backbone.batch_size
        self.updates_per_step = backbone.updates_per_step
        self.update_every = backbone.update_every
        self.learning_starts = backbone.learning_starts
        self._act = jax.jit(functools.partial(ddpg.select_action, backbone),
                            static_argnames="eval_mode")
        self._update = jax.jit(functools.partial(ddpg.scan_iterations, self._update_once))

    def critic_module(self, backbone: ddpg.DDPGConfig) -> nn.Module:
        """The backbone's critic (APS replaces it)."""
        return ddpg.Critic(backbone.hidden_dim)

    def init_backbone(self, key: jax.Array) -> ddpg.DDPGState:
        return ddpg.init_state(self.backbone_cfg, key, self.obs_dim, self.action_dim,
                               self.critic_module(self.backbone_cfg))

    def act(self, state: Any, observation: jax.Array, key: jax.Array, step: int,
            eval_mode: bool) -> jax.Array:
        # One dtype for every caller (Python int, np.int64, ...): one compiled program.
        return self._act(state.backbone.actor, observation, key, jnp.asarray(step, jnp.int32),
                         eval_mode=eval_mode)

    def update(self, state: Any, batch: Batch, key: jax.Array) -> tuple[Any, Metrics]:
        return self._update(state, batch, key)

    def _update_once(self, state: Any, batch: Batch, key: jax.Array) -> tuple[Any, Metrics]:
        raise NotImplementedError

    def backbone_step(self, backbone: ddpg.DDPGState, batch: Batch, reward: jax.Array,
                      key: jax.Array) -> tuple[ddpg.DDPGState, Metrics]:
        """The DDPG iteration with `reward` (B,) (no gradient) replacing the extrinsic return."""
        reward = jax.lax.stop_gradient(reward)
        backbone, metrics = ddpg.update_backbone(self.backbone_cfg, backbone, batch, reward, key)
        return backbone, {**metrics, "intr_reward": reward.mean(),
                          "intr_reward_max": reward.max()}

"""What every intrinsic-reward agent on the DDPG backbone shares (docs/baselines.md §0.2).

An agent subclasses `IntrinsicAgent` and writes `init` and `_update_once(state, batch, key)`:
its auxiliary step(s), then its intrinsic reward under the just-updated parameters, then
`self.backbone_step(...)`, which runs the URLB critic / actor / Polyak iteration with that reward
in place of the batch's extrinsic return. The agent's state is a PyTreeNode with a `backbone:
DDPGState` field; acting uses only the backbone actor.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax

from edp.agents import ddpg
from edp.agents.base import Batch, Metrics


class IntrinsicAgent(ddpg.BackboneAgent):
    """The backbone's init and learning step for an agent with its own reward."""

    @classmethod
    def from_config(cls, cfg: Any, obs_dim: int, action_dim: int) -> IntrinsicAgent:
        return cls(getattr(cfg, cls.name), cfg.ddpg, obs_dim, action_dim)

    def critic_module(self, backbone: ddpg.DDPGConfig) -> nn.Module:
        """The backbone's critic (APS replaces it)."""
        return ddpg.Critic(backbone.hidden_dim)

    def init_backbone(self, key: jax.Array) -> ddpg.DDPGState:
        """Actor and critic on the observation, with the skill appended for skill agents."""
        return ddpg.init_state(self.backbone_cfg, key, self.obs_dim + self.meta_dim,
                               self.action_dim, self.critic_module(self.backbone_cfg))

    def backbone_step(self, backbone: ddpg.DDPGState, batch: Batch, reward: jax.Array,
                      key: jax.Array) -> tuple[ddpg.DDPGState, Metrics]:
        """The DDPG iteration with `reward` (B,) (no gradient) replacing the extrinsic return."""
        reward = jax.lax.stop_gradient(reward)
        backbone, metrics = ddpg.update_backbone(self.backbone_cfg, backbone, batch, reward, key)
        return backbone, {**metrics, "intr_reward": reward.mean(),
                          "intr_reward_max": reward.max()}

"""DIAYN: skills a discriminator can tell apart from the states they reach
(docs/baselines.md §7).

Skills are one-hot of size skill_dim, drawn uniformly at every reset and whenever the env step
count is a multiple of update_skill_every_step; the actor and critic see [s, z]. Each iteration,
on one batch (s, a, s+, z) with s+ the observation 3 steps ahead:
  1. one Adam step of the discriminator q(z | s+) (Lin -> ReLU -> Lin -> ReLU -> Lin, on s+)
     on the cross-entropy against argmax z;
  2. reward r = diayn_scale * (log q(argmax z | s+) + log skill_dim) under the updated
     discriminator: 0 for a discriminator at chance, highest for the skill that reaches s+;
  3. the DDPG iteration with r on [s, z] and [s+, z].
Fine-tuning: base init; the skills keep their pre-training schedule (random, resampled), the
discriminator is neither copied nor used.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import optax
from flax import struct

from edp.agents import ddpg
from edp.agents.base import Batch, Metrics, check_fields
from edp.agents.modules import OrthMLP
from edp.agents.skills import SkillAgent, SkillSchedule
from edp.train_state import TrainState


@dataclasses.dataclass(frozen=True)
class DIAYNConfig:
    """DIAYN's skills and discriminator (the DDPG backbone has its own group)."""

    skill_dim: int = 16
    """Number of skills (one-hot vectors of this size)."""
    update_skill_every_step: int = 50
    """Redraw the skill whenever the env step count is a multiple of this (and at resets)."""
    hidden_dim: int = 1024
    """Width of the discriminator's two hidden layers."""
    lr: float = 1e-4
    """Adam learning rate of the discriminator."""
    diayn_scale: float = 1.0
    """Multiplier of the reward."""

    def check(self) -> None:
        check_fields("diayn", self, [
            ("skill_dim", self.skill_dim >= 2, ">= 2"),
            ("update_skill_every_step", self.update_skill_every_step >= 0, ">= 0"),
            ("hidden_dim", self.hidden_dim >= 1, ">= 1"),
            ("lr", self.lr > 0, "> 0"),
            ("diayn_scale", self.diayn_scale > 0, "> 0")])


class DIAYNState(struct.PyTreeNode):
    backbone: ddpg.DDPGState
    discriminator: TrainState


def skill_log_prob(logits: jax.Array, skill: jax.Array) -> jax.Array:
    """log softmax(logits)[argmax z] per row (B,)."""
    log_q = jax.nn.log_softmax(logits, axis=-1)
    return jnp.take_along_axis(log_q, skill.argmax(-1)[:, None], axis=-1)[:, 0]


class DIAYNAgent(SkillAgent):
    name = "diayn"
    config = DIAYNConfig
    config_help = "DIAYN: one-hot skills; reward the discriminator's log q(z | s+) + log #skills."
    fast = dict(hidden_dim=128)

    def __init__(self, cfg: DIAYNConfig, backbone: ddpg.DDPGConfig, obs_dim: int,
                 action_dim: int):
        cfg.check()
        self.cfg = cfg
        skills = SkillSchedule(cfg.skill_dim, "one_hot", cfg.update_skill_every_step)
        super().__init__(skills, backbone, obs_dim, action_dim)
        self.discriminator = OrthMLP((cfg.hidden_dim, cfg.hidden_dim), cfg.skill_dim)
        self.tx = optax.adam(cfg.lr)
        self.skill_reward = jax.jit(self._skill_reward)

    def init(self, key: jax.Array) -> DIAYNState:
        k_backbone, k_disc = jax.random.split(key)
        return DIAYNState(backbone=self.init_backbone(k_backbone),
                          discriminator=TrainState.create(self.discriminator, self.tx, k_disc,
                                                          jnp.zeros((1, self.obs_dim))))

    def _skill_reward(self, state: DIAYNState, obs: jax.Array, skill: jax.Array) -> jax.Array:
        """r = diayn_scale * (log q(z | s) + log skill_dim) (B,) for states s (the batch's s+)
        and one-hot skills z; public as the jitted `skill_reward`."""
        logits = self.discriminator.apply({"params": state.discriminator.params}, obs)
        return self.cfg.diayn_scale * (skill_log_prob(logits, skill)
                                       + jnp.log(self.cfg.skill_dim))

    def _update_once(self, state: DIAYNState, batch: Batch, key: jax.Array
                     ) -> tuple[DIAYNState, Metrics]:
        next_obs, skill = batch["next_observation"], batch["meta"]

        def loss_fn(params):
            logits = self.discriminator.apply({"params": params}, next_obs)
            accuracy = jnp.mean(logits.argmax(-1) == skill.argmax(-1))
            return -skill_log_prob(logits, skill).mean(), accuracy

        discriminator, step = state.discriminator.apply_loss_fn(loss_fn)
        state = state.replace(discriminator=discriminator)
        reward = self._skill_reward(state, next_obs, skill)
        backbone, metrics = self.backbone_step(state.backbone, batch, reward, key)
        return state.replace(backbone=backbone), {**metrics, "diayn_loss": step.loss,
                                                  "diayn_accuracy": step.aux}

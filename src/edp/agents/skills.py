"""What the skill agents (SMM, DIAYN, APS, CIC) share (docs/baselines.md §0.5, §0.8).

A `SkillSchedule` is a skill prior and its resampling rule: z is drawn at every episode reset
and again whenever the env step count is a multiple of `every` (0: only at resets), from a
one-hot, a uniform [0, 1]^d, a uniform-on-the-sphere or a constant prior. The reference
pre-trains with a random schedule and keeps one for fine-tuning (SMM, DIAYN) or replaces it
(CIC: the constant 0.5; APS: a task regressed from rewards, `edp.agents.aps`).

`SkillAgent` is an `IntrinsicAgent` whose actor and critic see [s, z] (input width d_s +
meta_dim): it implements the meta protocol of `edp.agents.base` with its pre-training schedule
and appends batch["meta"] to observation and next_observation before the DDPG iteration.

Fine-tuning a skill agent's snapshot with DDPG is `SkillFinetuneAgent`, built by the
pre-training agent's `finetune_agent(cfg, state)`: the agent's own backbone modules (APS: its
successor-feature critic) with the fine-tuning optimisers, URLB's base init (actor and critic
trunk), the extrinsic reward, and the agent's fine-tuning schedule (`finetune_skills`) whose
state (APS: its features and solved task) lives in the agent state, so it is checkpointed.
"""

from __future__ import annotations

import functools
from typing import Any, Literal

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from edp.agents import ddpg
from edp.agents.base import Batch, Metrics, Sampler
from edp.agents.intrinsic import IntrinsicAgent
from edp.agents.modules import l2_normalize

Prior = Literal["one_hot", "uniform", "sphere", "constant"]


@functools.partial(jax.jit, static_argnums=(0, 1, 3))
def draw(prior: Prior, dim: int, key: jax.Array, num: int) -> jax.Array:
    """`num` skills (num, dim) from a random prior."""
    if prior == "one_hot":
        return jax.nn.one_hot(jax.random.randint(key, (num,), 0, dim), dim)
    if prior == "uniform":
        return jax.random.uniform(key, (num, dim))
    if prior == "sphere":
        return l2_normalize(jax.random.normal(key, (num, dim)))
    raise ValueError(f"unknown skill prior '{prior}'")


class SkillSchedule:
    """Prior and resampling period of the skills; subclasses may infer the skill (APS)."""

    def __init__(self, dim: int, prior: Prior, every: int = 0, value: float = 0.0):
        if dim < 1 or every < 0:
            raise ValueError(f"skill dim={dim} must be >= 1 and every={every} >= 0")
        self.dim, self.prior, self.every, self.value = dim, prior, every, value

    def draw(self, key: jax.Array, num: int) -> jax.Array:
        """Fresh skills (num, dim) float32 (`value` everywhere for the constant prior); pure,
        so the compiled loop can call it inside its scan."""
        if self.prior == "constant":
            return jnp.full((num, self.dim), self.value, jnp.float32)
        return draw(self.prior, self.dim, key, num).astype(jnp.float32)

    def sample(self, key: jax.Array, num: int) -> np.ndarray:
        """`draw` as a host array."""
        return np.asarray(self.draw(key, num))

    def resample(self, meta: jax.Array, step: jax.Array, key: jax.Array) -> jax.Array:
        """`update_meta`'s rule as a pure function of a traced step (compiled loop)."""
        if self.every == 0:
            return meta
        return jnp.where(step % self.every == 0, self.draw(key, meta.shape[0]), meta)

    def init(self, key: jax.Array) -> Any:
        """The schedule's own state (kept in the fine-tuning agent's state); none here."""
        return {}

    def start(self, state: Any, pretrained: Any) -> Any:
        """The schedule state at the start of fine-tuning from a pre-trained agent state."""
        return state

    def init_meta(self, state: Any, key: jax.Array, num: int) -> np.ndarray:
        return self.sample(key, num)

    def update_meta(self, state: Any, meta: np.ndarray, step: int, key: jax.Array,
                    sample: Sampler) -> tuple[Any, np.ndarray]:
        if self.every > 0 and step % self.every == 0:
            return state, self.sample(key, meta.shape[0])
        return state, meta


def append_skill(batch: Batch) -> Batch:
    """The backbone's view of a batch: z appended to the observation and the next one."""
    meta = batch["meta"]
    return {**batch,
            "observation": jnp.concatenate([batch["observation"], meta], axis=-1),
            "next_observation": jnp.concatenate([batch["next_observation"], meta], axis=-1)}


class SkillAgent(IntrinsicAgent):
    """An intrinsic agent whose actor and critic also see the skill (docs/baselines.md §0.3,
    §0.5)."""

    def __init__(self, skills: SkillSchedule, backbone: ddpg.DDPGConfig, obs_dim: int,
                 action_dim: int):
        self.skills, self.meta_dim = skills, skills.dim
        super().__init__(backbone, obs_dim, action_dim)

    def init_meta(self, state: Any, key: jax.Array, num: int) -> np.ndarray:
        return self.skills.init_meta({}, key, num)

    def update_meta(self, state: Any, meta: np.ndarray, step: int, key: jax.Array,
                    sample: Sampler) -> tuple[Any, np.ndarray]:
        return state, self.skills.update_meta({}, meta, step, key, sample)[1]

    def draw_meta(self, state: Any, key: jax.Array, num: int) -> jax.Array:
        """Pure `init_meta` (pre-training schedule) for the compiled loop."""
        return self.skills.draw(key, num)

    def step_meta(self, state: Any, meta: jax.Array, step: jax.Array, key: jax.Array
                  ) -> jax.Array:
        """Pure `update_meta` (pre-training schedules never read the replay)."""
        return self.skills.resample(meta, step, key)

    def backbone_step(self, backbone: ddpg.DDPGState, batch: Batch, reward: jax.Array,
                      key: jax.Array) -> tuple[ddpg.DDPGState, Metrics]:
        return super().backbone_step(backbone, append_skill(batch), reward, key)

    def finetune_skills(self) -> SkillSchedule:
        """The skill schedule of fine-tuning; the pre-training one unless overridden."""
        return self.skills

    def finetune_agent(self, cfg: ddpg.DDPGConfig, pretrained: Any = None
                       ) -> SkillFinetuneAgent:
        """The DDPG fine-tuning agent of this agent's snapshots (`edp finetune --method ddpg`),
        starting from `pretrained` (a state of this agent) if given."""
        return SkillFinetuneAgent(cfg, self.critic_module(cfg), self.obs_dim, self.action_dim,
                                  self.finetune_skills(), pretrained)


class SkillFinetuneState(struct.PyTreeNode):
    backbone: ddpg.DDPGState
    skills: Any  # the fine-tuning schedule's state (APS: features, solved task)


class SkillFinetuneAgent(ddpg.BackboneAgent):
    """DDPG on the extrinsic reward with the skill appended to the actor's and critic's inputs
    (URLB fine-tuning runs the skill agent itself with reward_free=false,
    docs/baselines.md §0.8); it starts from URLB's `init_from` of `pretrained` if given."""

    name = "ddpg"

    def __init__(self, cfg: ddpg.DDPGConfig, critic: nn.Module, obs_dim: int, action_dim: int,
                 skills: SkillSchedule, pretrained: Any = None):
        super().__init__(cfg, obs_dim, action_dim)
        self.critic, self.skills, self.meta_dim = critic, skills, skills.dim
        self.pretrained = pretrained

    def init(self, key: jax.Array) -> SkillFinetuneState:
        """Fresh, or the pre-trained actor and critic trunk and the schedule's start."""
        k_backbone, k_skills = jax.random.split(key)
        backbone = ddpg.init_state(self.backbone_cfg, k_backbone, self.obs_dim + self.meta_dim,
                                   self.action_dim, self.critic)
        state = SkillFinetuneState(backbone=backbone, skills=self.skills.init(k_skills))
        if self.pretrained is None:
            return state
        return state.replace(
            backbone=ddpg.init_from_snapshot(state.backbone, self.pretrained.backbone),
            skills=self.skills.start(state.skills, self.pretrained))

    def _update_once(self, state: SkillFinetuneState, batch: Batch, key: jax.Array
                     ) -> tuple[SkillFinetuneState, Metrics]:
        backbone, metrics = ddpg.update_backbone(self.backbone_cfg, state.backbone,
                                                 append_skill(batch), batch["reward"], key)
        return state.replace(backbone=backbone), metrics

    def init_meta(self, state: SkillFinetuneState, key: jax.Array, num: int) -> np.ndarray:
        return self.skills.init_meta(state.skills, key, num)

    def update_meta(self, state: SkillFinetuneState, meta: np.ndarray, step: int,
                    key: jax.Array, sample: Sampler) -> tuple[SkillFinetuneState, np.ndarray]:
        skills, meta = self.skills.update_meta(state.skills, meta, step, key, sample)
        return state.replace(skills=skills), meta

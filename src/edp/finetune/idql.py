"""IDQL fine-tuning baseline (method `idql`, docs/method.md §6.5).

The policy is the pre-trained diffusion policy kept up to date by plain behaviour cloning
(one denoising step on the replay actions per iteration); the improvement comes only from
acting: N unguided candidates per state, keep the one with the highest min-twin q0_target
(greedy, as the reference; training and evaluation alike). One iteration: BC step, IQL step.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp

from edp.agents.base import Batch, Metrics
from edp.finetune import iql
from edp.finetune.common import (
    DiffusionFinetuneAgent,
    DiffusionFinetuneConfig,
    PolicyCriticState,
    policy_dsm_step,
    sample_actions,
)


@dataclasses.dataclass(frozen=True)
class IDQLConfig(DiffusionFinetuneConfig):
    """IDQL: behaviour-cloned diffusion policy, IQL critic, best-of-N acting."""

    method: ClassVar[str] = "idql"

    num_candidates: int = 4
    """N: unguided samples per state at acting time; the argmax of min-twin q0_target acts."""

    def rules(self) -> list[tuple[str, bool, str]]:
        return super().rules() + [("num_candidates", self.num_candidates >= 1, ">= 1")]


class IDQLAgent(DiffusionFinetuneAgent):
    name = "idql"

    def _act(self, state: PolicyCriticState, obs: jax.Array, key: jax.Array) -> jax.Array:
        candidates = sample_actions(state.policy, obs, key, self.cfg.diffusion_steps,
                                    self.cfg.num_candidates)
        obs_rep = jnp.broadcast_to(obs[:, None], candidates.shape[:2] + obs.shape[-1:])
        q = iql.q_min(state.critic.q, obs_rep, candidates, state.critic.q_target)
        best = jnp.argmax(q, axis=-1)
        return jnp.take_along_axis(candidates, best[:, None, None], axis=1)[:, 0]

    def _update_once(self, state: PolicyCriticState, batch: Batch, key: jax.Array
                     ) -> tuple[PolicyCriticState, Metrics]:
        policy, metrics = policy_dsm_step(state.policy, batch["action"], batch["observation"],
                                          key)
        critic, critic_metrics = self.critic_step(state.critic, policy, batch, key)
        return PolicyCriticState(policy=policy, critic=critic), {**metrics, **critic_metrics}

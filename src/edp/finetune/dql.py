"""Diffusion-QL fine-tuning baseline (method `dql`, docs/method.md §6.6).

Policy loss = BC-DSM on the replay actions + eta * L_Q, where L_Q differentiates the IQL q0
(online, not the target) through actions sampled by the full unguided DPM-Solver++ chain of the
policy being trained, with dropout on in that chain (as the reference). L_Q is, with
probability 1/2 each, -mean(q1) / mean(|q2|) or -mean(q2) / mean(|q1|), the denominators
detached. One iteration: policy step, then IQL step. Acting: one unguided sample.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp

from edp import diffusion
from edp.agents.base import Batch, Metrics
from edp.finetune.common import (
    DiffusionFinetuneAgent,
    DiffusionFinetuneConfig,
    PolicyCriticState,
    per_call_dropout_score_fn,
    policy_dsm_step,
)


@dataclasses.dataclass(frozen=True)
class DQLConfig(DiffusionFinetuneConfig):
    """Diffusion-QL: BC + Q maximisation through the differentiable sampler."""

    method: ClassVar[str] = "dql"

    eta: float = 1.0
    """Weight of the normalised Q term in the policy loss."""

    def rules(self) -> list[tuple[str, bool, str]]:
        return super().rules() + [("eta", self.eta >= 0, ">= 0")]


def normalised_q_loss(q1: jax.Array, q2: jax.Array, use_q1: jax.Array) -> jax.Array:
    """-mean(q1)/|q2|-scale or -mean(q2)/|q1|-scale (scales detached), chosen by use_q1."""
    scale1 = jax.lax.stop_gradient(jnp.mean(jnp.abs(q1)))
    scale2 = jax.lax.stop_gradient(jnp.mean(jnp.abs(q2)))
    return jnp.where(use_q1, -jnp.mean(q1) / scale2, -jnp.mean(q2) / scale1)


class DQLAgent(DiffusionFinetuneAgent):
    name = "dql"

    def _update_once(self, state: PolicyCriticState, batch: Batch, key: jax.Array
                     ) -> tuple[PolicyCriticState, Metrics]:
        obs = batch["observation"]

        def q_term(params, k):
            k_noise, k_drop, k_coin = jax.random.split(k, 3)
            fn = per_call_dropout_score_fn(state.policy, params, k_drop)
            x_T = jax.random.normal(k_noise, (obs.shape[0], self.action_dim), obs.dtype)
            actions = diffusion.dpm_solver_pp(fn, x_T, obs, self.cfg.diffusion_steps)
            q1, q2 = state.critic.q.apply(actions, obs)
            loss = normalised_q_loss(q1, q2, jax.random.bernoulli(k_coin, 0.5))
            return self.cfg.eta * loss, {"policy_q_loss": loss}

        policy, metrics = policy_dsm_step(state.policy, batch["action"], obs, key,
                                          extra_loss=q_term)
        critic, critic_metrics = self.critic_step(state.critic, policy, batch, key)
        return PolicyCriticState(policy=policy, critic=critic), {**metrics, **critic_metrics}

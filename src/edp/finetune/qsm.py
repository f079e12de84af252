"""Q-score matching fine-tuning baseline (method `qsm`, docs/method.md §6.7).

The policy's (sigma-scaled) score is regressed onto the action-gradient of the critic: at
x_t = alpha_t a + sigma_t z from a replay action a, loss = mean over batch and dims of
(sigma_t s_theta(x_t, t, s) - scale * (grad_x q1 + grad_x q2)(x_t, s) / 2)^2, scale 10, q from
the online IQL q0; no behaviour-cloning term. The reference marks this method as not working
(a code comment); it is reproduced as specified. One iteration: policy step, then IQL step.
Acting: one unguided sample.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp

from edp import diffusion
from edp.agents.base import Batch, Metrics
from edp.finetune.common import DiffusionFinetuneAgent, DiffusionFinetuneConfig, PolicyCriticState
from edp.score_models import score_fn
from edp.train_state import TrainState


@dataclasses.dataclass(frozen=True)
class QSMConfig(DiffusionFinetuneConfig):
    """QSM: match the policy score to the critic's action-gradient."""

    method: ClassVar[str] = "qsm"

    q_grad_scale: float = 10.0
    """Multiplier of the mean twin-Q action-gradient used as the score target."""

    def rules(self) -> list[tuple[str, bool, str]]:
        return super().rules() + [("q_grad_scale", self.q_grad_scale > 0, "> 0")]


def q_score_target(q: TrainState, x: jax.Array, obs: jax.Array, scale: float) -> jax.Array:
    """scale * (grad_x q1 + grad_x q2) / 2 at (x, s), per sample: (B, A)."""
    def mean_q_sum(x_):
        q1, q2 = q.apply(x_, obs)
        return 0.5 * (q1 + q2).sum()

    return scale * jax.grad(mean_q_sum)(x)


class QSMAgent(DiffusionFinetuneAgent):
    name = "qsm"

    def _update_once(self, state: PolicyCriticState, batch: Batch, key: jax.Array
                     ) -> tuple[PolicyCriticState, Metrics]:
        obs, action = batch["observation"], batch["action"]
        k_t, k_z, k_drop = jax.random.split(key, 3)
        t = diffusion.sample_train_times(k_t, (obs.shape[0],))
        x_t = diffusion.perturb(action, t, jax.random.normal(k_z, action.shape))
        sigma = diffusion.alpha_sigma(t)[1]
        target = jax.lax.stop_gradient(
            q_score_target(state.critic.q, x_t, obs, self.cfg.q_grad_scale))

        def loss_fn(params):
            score = score_fn(state.policy, k_drop, params)(x_t, t, obs)
            return jnp.mean((sigma[:, None] * score - target) ** 2), None

        policy, step = state.policy.apply_loss_fn(loss_fn)
        critic, critic_metrics = self.critic_step(state.critic, policy, batch, key)
        metrics = {"qsm_loss": step.loss,
                   "qsm_target_norm": jnp.linalg.norm(target, axis=-1).mean(), **critic_metrics}
        return PolicyCriticState(policy=policy, critic=critic), metrics

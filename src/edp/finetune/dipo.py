"""DIPO fine-tuning baseline (method `dipo`, docs/method.md §6.8).

Action gradient: the batch's replay actions are improved by K = 20 Adam steps (lr 0.03,
eps 1e-5) on -sum_b min(q1, q2)(s_b, a_b) with the online IQL q0, each gradient clipped to a
global L2 norm (over the whole (B, A) tensor) of 0.1 * A and the actions clamped to [-1, 1]
after every step; then one behaviour-cloning (DSM) step of the policy on the improved actions.
One iteration: policy step, then IQL step (on the original replay actions). Acting: one
unguided sample. (The original DIPO also writes the improved actions back into the replay
buffer; the reference's fine-tuning does not, and neither does this.)
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp
import optax

from edp.agents.base import Batch, Metrics
from edp.finetune import iql
from edp.finetune.common import (
    DiffusionFinetuneAgent,
    DiffusionFinetuneConfig,
    PolicyCriticState,
    policy_dsm_step,
)
from edp.train_state import TrainState


@dataclasses.dataclass(frozen=True)
class DIPOConfig(DiffusionFinetuneConfig):
    """DIPO: behaviour cloning of critic-improved replay actions."""

    method: ClassVar[str] = "dipo"

    action_steps: int = 20
    """Adam steps of action-gradient ascent on Q per batch."""
    action_lr: float = 0.03
    """Adam learning rate of the action-gradient steps."""
    action_eps: float = 1e-5
    """Adam epsilon of the action-gradient steps."""
    action_grad_norm: float = 0.1
    """Global L2 clip of each action gradient, per action dimension (clip = this * A)."""

    def rules(self) -> list[tuple[str, bool, str]]:
        return super().rules() + [
            ("action_steps", self.action_steps >= 0, ">= 0"),
            ("action_lr", self.action_lr > 0, "> 0"),
            ("action_eps", self.action_eps > 0, "> 0"),
            ("action_grad_norm", self.action_grad_norm > 0, "> 0"),
        ]


def improve_actions(cfg: DIPOConfig, q: TrainState, obs: jax.Array, action: jax.Array
                    ) -> jax.Array:
    """Clipped Adam ascent of min-twin q0 in the actions, clamped to [-1, 1]: (B, A)."""
    tx = optax.chain(optax.clip_by_global_norm(cfg.action_grad_norm * action.shape[-1]),
                     optax.adam(cfg.action_lr, eps=cfg.action_eps))
    loss = lambda a: -jnp.sum(iql.q_min(q, obs, a))

    def step(carry, _):
        a, opt_state = carry
        updates, opt_state = tx.update(jax.grad(loss)(a), opt_state, a)
        return (jnp.clip(optax.apply_updates(a, updates), -1.0, 1.0), opt_state), None

    (improved, _), _ = jax.lax.scan(step, (action, tx.init(action)), None,
                                    length=cfg.action_steps)
    return jax.lax.stop_gradient(improved)


class DIPOAgent(DiffusionFinetuneAgent):
    name = "dipo"

    def _update_once(self, state: PolicyCriticState, batch: Batch, key: jax.Array
                     ) -> tuple[PolicyCriticState, Metrics]:
        obs, action = batch["observation"], batch["action"]
        improved = improve_actions(self.cfg, state.critic.q, obs, action)
        policy, metrics = policy_dsm_step(state.policy, improved, obs, key)
        critic, critic_metrics = self.critic_step(state.critic, policy, batch, key)
        shift = jnp.linalg.norm(improved - action, axis=-1).mean()
        return PolicyCriticState(policy=policy, critic=critic), {**metrics, **critic_metrics,
                                                         "action_shift": shift}

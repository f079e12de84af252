"""The IQL critic shared by every diffusion fine-tuning method (docs/method.md §6.3).

A twin Q network q0 with an EMA target, and a state value V fitted by expectile regression on
the target's min-twin Q of the *replay* actions (in-sample: no policy action is ever queried).
One iteration, in the reference order:
  1. V step on u = min(q1', q2')(s, a) - V(s), loss mean(|tau - 1[u < 0]| u^2);
  2. Q step on y = r + discount * V(s') with the just-updated V, loss the mean of the two
     heads' MSE;
  3. EMA q0_target <- rate * q0 + (1 - rate) * q0_target.

`discount` is the batch's n-step bootstrap discount (gamma^n, zero at terminations). The
reference bootstraps 3-step returns with a fixed 0.99 instead (a bug: docs/architecture.md §4,
decision 4); `reference_discount=True` reproduces that: 0.99 where the batch's discount
is non-zero, 0 where it is zero (the reference's (1 - done)).

`backup="policy"` (beyond the paper, an option): a TD critic of the current policy, as
Diffusion-QL's: y = r + discount * min-twin q0_target(s', a') with a' one sample of the
fine-tuned policy at s' (drawn by the method, `DiffusionFinetuneAgent.critic_step`); V is then
neither trained nor used. The in-sample IQL backup only ever bootstraps on the replay's own
actions, so its Q cannot tell the current policy's actions from the behaviour's.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import jax
import jax.numpy as jnp
import optax
from flax import struct

from edp.agents.base import Batch, Metrics, check_fields
from edp.networks import TwinQ, ValueMLP
from edp.train_state import Params, TrainState

REFERENCE_DISCOUNT = 0.99  # the reference's hard-coded IQL bootstrap discount
BACKUPS = ("value", "policy")


@dataclasses.dataclass(frozen=True)
class IQLConfig:
    """IQL critic: twin Q with EMA target, expectile value network."""

    hidden_dim: int = 256
    """Width of the hidden layers of q1, q2 and V."""
    num_layers: int = 2
    """Hidden layers of q1, q2 and V."""
    lr: float = 3e-4
    """Adam learning rate of the twin Q and of V."""
    expectile: float = 0.7
    """Expectile tau of the V regression (0.5: mean; -> 1: max of the in-sample Q)."""
    target_ema: float = 0.005
    """EMA rate of the target twin Q, applied after every Q step."""
    reference_discount: bool = False
    """Bootstrap with the reference's fixed 0.99 instead of the batch's n-step discount."""
    backup: Literal["value", "policy"] = "value"
    """Bootstrap on V(s') (`value`, IQL: the paper) or on min-twin q0_target(s', a'), a' a
    sample of the current policy (`policy`, Diffusion-QL's TD critic; beyond the paper)."""

    def check(self, method: str) -> None:
        """Raise ValueError naming the first impossible field (prefixed `critic.`)."""
        rules = [
            ("hidden_dim", self.hidden_dim >= 1, ">= 1"),
            ("num_layers", self.num_layers >= 1, ">= 1"),
            ("lr", self.lr > 0, "> 0"),
            ("expectile", 0 < self.expectile < 1, "in (0, 1)"),
            ("target_ema", 0 < self.target_ema <= 1, "in (0, 1]"),
            ("backup", self.backup in BACKUPS, f"one of {', '.join(BACKUPS)}"),
        ]
        check_fields(method, self, rules, prefix="critic.")


class IQLState(struct.PyTreeNode):
    q: TrainState  # the twin Q, TwinQ(action, obs)
    q_target: Params
    value: TrainState


def init_iql(cfg: IQLConfig, key: jax.Array, obs_dim: int, action_dim: int,
             clip_actions: bool = False) -> IQLState:
    """Fresh critic (docs/method.md §3.5: nothing of it survives pre-training); target = copy of
    q0. `clip_actions`: the twin Q scores clip(a, -1, 1) (`TwinQ`)."""
    k_q, k_v = jax.random.split(key)
    obs, action = jnp.zeros((1, obs_dim)), jnp.zeros((1, action_dim))
    tx = optax.adam(cfg.lr)
    q = TrainState.create(TwinQ(cfg.hidden_dim, cfg.num_layers, clip_actions), tx, k_q, action, obs)
    value = TrainState.create(ValueMLP(cfg.hidden_dim, cfg.num_layers), tx, k_v, obs)
    return IQLState(q=q, q_target=q.params, value=value)


def q_min(q: TrainState, obs: jax.Array, action: jax.Array, params: Params | None = None
          ) -> jax.Array:
    """min(q1, q2)(s, a) (at `params`, e.g. the target's, if given) over any leading shape:
    obs (..., S), action (..., A) -> (...)."""
    q1, q2 = q.apply(action, obs, params=params)
    return jnp.minimum(q1, q2)


def expectile_loss(diff: jax.Array, expectile: float) -> jax.Array:
    """mean(|tau - 1[u < 0]| * u^2): asymmetric squared loss of u = Q - V."""
    weight = jnp.abs(expectile - (diff < 0).astype(diff.dtype))
    return jnp.mean(weight * diff**2)


def bootstrap_discount(cfg: IQLConfig, discount: jax.Array) -> jax.Array:
    """The batch's n-step discount, or the reference's 0.99 * (1 - done)."""
    if cfg.reference_discount:
        return jnp.where(discount > 0, REFERENCE_DISCOUNT, 0.0).astype(discount.dtype)
    return discount


def update_value(cfg: IQLConfig, state: IQLState, obs: jax.Array, action: jax.Array
                 ) -> tuple[IQLState, Metrics]:
    """One Adam step of V on the expectile loss of u = min-twin q0_target(s, a) - V(s)."""
    q_target = q_min(state.q, obs, action, state.q_target)

    def loss_fn(params):
        v = state.value.apply(obs, params=params)
        return expectile_loss(q_target - v, cfg.expectile), v

    value, step = state.value.apply_loss_fn(loss_fn)
    return state.replace(value=value), {"value_loss": step.loss, "value": step.aux.mean()}


def update_q(cfg: IQLConfig, state: IQLState, batch: Batch,
             next_action: jax.Array | None = None) -> tuple[IQLState, Metrics]:
    """One Adam step of the twin Q on y = r + discount * V(s') (current V), or on
    min-twin q0_target(s', next_action) if given, then the EMA."""
    obs, action, next_obs = batch["observation"], batch["action"], batch["next_observation"]
    next_v = state.value.apply(next_obs) if next_action is None \
        else q_min(state.q, next_obs, next_action, state.q_target)
    y = jax.lax.stop_gradient(
        batch["reward"] + bootstrap_discount(cfg, batch["discount"]) * next_v)

    def loss_fn(params):
        q1, q2 = state.q.apply(action, obs, params=params)
        return 0.5 * (jnp.mean((q1 - y) ** 2) + jnp.mean((q2 - y) ** 2)), (q1, q2)

    q, step = state.q.apply_loss_fn(loss_fn)
    target = optax.incremental_update(q.params, state.q_target, cfg.target_ema)
    q1, q2 = step.aux
    state = state.replace(q=q, q_target=target)
    return state, {"q_loss": step.loss, "q1": q1.mean(), "q2": q2.mean(),
                   "q_target_y": y.mean()}


def update_iql(cfg: IQLConfig, state: IQLState, batch: Batch,
               next_action: jax.Array | None = None) -> tuple[IQLState, Metrics]:
    """One IQL iteration on one batch slice (no iters axis): V step, Q step, EMA; with
    `backup="policy"`, the Q step on next_action (a' ~ pi(s'), (B, A)) and no V step."""
    if (cfg.backup == "policy") != (next_action is not None):
        wanted = "a policy sample at s'" if next_action is None else "None"
        raise ValueError(f"critic backup '{cfg.backup}' needs next_action = {wanted}")
    value_metrics = {}
    if next_action is None:
        state, value_metrics = update_value(cfg, state, batch["observation"], batch["action"])
    state, q_metrics = update_q(cfg, state, batch, next_action)
    return state, {**value_metrics, **q_metrics, "batch_reward": batch["reward"].mean()}

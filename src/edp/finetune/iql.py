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
from typing import Any, Literal

import jax
import jax.numpy as jnp
import optax
from flax import struct

from edp.agents.base import Batch, Metrics, check_fields
from edp.networks import TwinQ, ValueMLP

Params = Any
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
    q: Params
    q_target: Params
    value: Params
    q_opt: optax.OptState
    value_opt: optax.OptState


@dataclasses.dataclass(frozen=True)
class IQLNets:
    """Static half of the critic (modules and optimiser), closed over by jitted code."""

    q: TwinQ
    value: ValueMLP
    tx: optax.GradientTransformation


def make_iql(cfg: IQLConfig) -> IQLNets:
    return IQLNets(q=TwinQ(cfg.hidden_dim, cfg.num_layers),
                   value=ValueMLP(cfg.hidden_dim, cfg.num_layers), tx=optax.adam(cfg.lr))


def init_iql(nets: IQLNets, key: jax.Array, obs_dim: int, action_dim: int) -> IQLState:
    """Fresh critic (docs/method.md §3.5: nothing of it survives pre-training); target = copy of
    q0."""
    k_q, k_v = jax.random.split(key)
    obs, action = jnp.zeros((1, obs_dim)), jnp.zeros((1, action_dim))
    q = nets.q.init(k_q, action, obs)["params"]
    value = nets.value.init(k_v, obs)["params"]
    return IQLState(q=q, q_target=q, value=value, q_opt=nets.tx.init(q),
                    value_opt=nets.tx.init(value))


def q_min(nets: IQLNets, q_params: Params, obs: jax.Array, action: jax.Array) -> jax.Array:
    """min(q1, q2)(s, a) over any leading shape: obs (..., S), action (..., A) -> (...)."""
    q1, q2 = nets.q.apply({"params": q_params}, action, obs)
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


def update_value(cfg: IQLConfig, nets: IQLNets, state: IQLState, obs: jax.Array,
                 action: jax.Array) -> tuple[IQLState, Metrics]:
    """One Adam step of V on the expectile loss of u = min-twin q0_target(s, a) - V(s)."""
    q_target = q_min(nets, state.q_target, obs, action)

    def loss_fn(value):
        v = nets.value.apply({"params": value}, obs)
        return expectile_loss(q_target - v, cfg.expectile), v

    (loss, v), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.value)
    updates, value_opt = nets.tx.update(grads, state.value_opt, state.value)
    state = state.replace(value=optax.apply_updates(state.value, updates), value_opt=value_opt)
    return state, {"value_loss": loss, "value": v.mean()}


def update_q(cfg: IQLConfig, nets: IQLNets, state: IQLState, batch: Batch,
             next_action: jax.Array | None = None) -> tuple[IQLState, Metrics]:
    """One Adam step of the twin Q on y = r + discount * V(s') (current V), or on
    min-twin q0_target(s', next_action) if given, then the EMA."""
    obs, action, next_obs = batch["observation"], batch["action"], batch["next_observation"]
    next_v = nets.value.apply({"params": state.value}, next_obs) if next_action is None \
        else q_min(nets, state.q_target, next_obs, next_action)
    y = jax.lax.stop_gradient(
        batch["reward"] + bootstrap_discount(cfg, batch["discount"]) * next_v)

    def loss_fn(q):
        q1, q2 = nets.q.apply({"params": q}, action, obs)
        return 0.5 * (jnp.mean((q1 - y) ** 2) + jnp.mean((q2 - y) ** 2)), (q1, q2)

    (loss, (q1, q2)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.q)
    updates, q_opt = nets.tx.update(grads, state.q_opt, state.q)
    q = optax.apply_updates(state.q, updates)
    target = optax.incremental_update(q, state.q_target, cfg.target_ema)
    state = state.replace(q=q, q_target=target, q_opt=q_opt)
    return state, {"q_loss": loss, "q1": q1.mean(), "q2": q2.mean(), "q_target_y": y.mean()}


def update_iql(cfg: IQLConfig, nets: IQLNets, state: IQLState, batch: Batch,
               next_action: jax.Array | None = None) -> tuple[IQLState, Metrics]:
    """One IQL iteration on one batch slice (no iters axis): V step, Q step, EMA; with
    `backup="policy"`, the Q step on next_action (a' ~ pi(s'), (B, A)) and no V step."""
    if (cfg.backup == "policy") != (next_action is not None):
        wanted = "a policy sample at s'" if next_action is None else "None"
        raise ValueError(f"critic backup '{cfg.backup}' needs next_action = {wanted}")
    value_metrics = {}
    if next_action is None:
        state, value_metrics = update_value(cfg, nets, state, batch["observation"],
                                            batch["action"])
    state, q_metrics = update_q(cfg, nets, state, batch, next_action)
    return state, {**value_metrics, **q_metrics, "batch_reward": batch["reward"].mean()}

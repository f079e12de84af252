"""ICM: curiosity as the error of a learned forward model (docs/baselines.md §1).

Each iteration, on one batch (s, a, s+) with s+ the observation 3 steps ahead:
  1. one Adam step on mean ||s+ - f(s, a)|| + mean ||a - g(s, s+)|| (plain L2 norms);
  2. reward r = log(1 + icm_scale * ||s+ - f(s, a)||) under the just-updated forward model;
  3. the DDPG critic / actor / Polyak iteration with r.
With states there is no shared feature layer, so the inverse model g cannot change the reward;
it is kept for parity. `ICMNets` with a representation trunk is also ICM-APT's module (apt.py).
Fine-tuning: base init (`ddpg.init_from_snapshot` on `state.backbone`); the ICM stays idle.
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax import struct

from edp.agents import ddpg
from edp.agents.base import Batch, Metrics, check_fields
from edp.agents.intrinsic import IntrinsicAgent
from edp.agents.modules import OrthMLP, safe_norm
from edp.train_state import TrainState


@dataclasses.dataclass(frozen=True)
class ICMConfig:
    """ICM's forward and inverse models (the DDPG backbone has its own group)."""

    hidden_dim: int = 1024
    """Width of the hidden layer of the forward and inverse models."""
    lr: float = 1e-4
    """Adam learning rate of the forward and inverse models."""
    icm_scale: float = 1.0
    """Multiplier of the forward error inside the log of the reward."""

    def check(self) -> None:
        check_fields("icm", self, [("hidden_dim", self.hidden_dim >= 1, ">= 1"),
                                   ("lr", self.lr > 0, "> 0"),
                                   ("icm_scale", self.icm_scale > 0, "> 0")])


class ICMNets(nn.Module):
    """Forward model f([phi(s), a]) -> phi(s+) and inverse model g([phi(s), phi(s+)]) -> a.

    phi is the identity when `rep_dim` is None (ICM), else Lin -> LN -> tanh to `rep_dim`
    (ICM-APT). All layers orth init. Calling the module returns the per-transition forward
    and inverse errors (B,), (B,); `rep` gives phi(s).
    """

    obs_dim: int
    action_dim: int
    hidden_dim: int
    rep_dim: int | None = None

    def setup(self):
        self.trunk = None if self.rep_dim is None else ddpg.Trunk(self.rep_dim)
        self.forward_net = OrthMLP((self.hidden_dim,), self.rep_dim or self.obs_dim)
        self.backward_net = OrthMLP((self.hidden_dim,), self.action_dim)

    def rep(self, obs: jax.Array) -> jax.Array:
        return obs if self.trunk is None else self.trunk(obs)

    def __call__(self, obs: jax.Array, action: jax.Array, next_obs: jax.Array
                 ) -> tuple[jax.Array, jax.Array]:
        # the target phi(s+) is not stop-gradient: the forward loss trains phi through both
        phi, next_phi = self.rep(obs), self.rep(next_obs)
        next_phi_hat = self.forward_net(jnp.concatenate([phi, action], axis=-1))
        action_hat = jnp.tanh(self.backward_net(jnp.concatenate([phi, next_phi], axis=-1)))
        return safe_norm(next_phi - next_phi_hat), safe_norm(action - action_hat)


def icm_step(icm: TrainState, obs: jax.Array, action: jax.Array, next_obs: jax.Array
             ) -> tuple[TrainState, Metrics]:
    """One Adam step on mean forward error + mean inverse error."""
    def loss_fn(params):
        forward_error, backward_error = icm.apply(obs, action, next_obs, params=params)
        return forward_error.mean() + backward_error.mean(), (forward_error, backward_error)

    icm, step = icm.apply_loss_fn(loss_fn)
    forward_error, backward_error = step.aux
    return icm, {"icm_loss": step.loss, "icm_forward_error": forward_error.mean(),
                 "icm_backward_error": backward_error.mean()}


class ICMState(struct.PyTreeNode):
    backbone: ddpg.DDPGState
    icm: TrainState


class ICMAgent(IntrinsicAgent):
    name = "icm"
    config = ICMConfig
    config_help = "ICM: forward/inverse models; reward log(1 + forward error) (URLB)."
    fast = dict(hidden_dim=128)

    def __init__(self, cfg: ICMConfig, backbone: ddpg.DDPGConfig, obs_dim: int, action_dim: int):
        cfg.check()
        super().__init__(backbone, obs_dim, action_dim)
        self.cfg = cfg
        self.icm_net = ICMNets(obs_dim, action_dim, cfg.hidden_dim)
        self.icm_tx = optax.adam(cfg.lr)
        self.transition_reward = jax.jit(self._transition_reward)

    def init(self, key: jax.Array) -> ICMState:
        k_backbone, k_icm = jax.random.split(key)
        obs, action = jnp.zeros((1, self.obs_dim)), jnp.zeros((1, self.action_dim))
        return ICMState(backbone=self.init_backbone(k_backbone),
                        icm=TrainState.create(self.icm_net, self.icm_tx, k_icm, obs, action, obs))

    def _transition_reward(self, state: ICMState, obs: jax.Array, action: jax.Array,
                           next_obs: jax.Array) -> jax.Array:
        """r = log(1 + icm_scale * ||s+ - f(s, a)||) (B,); public as `transition_reward`."""
        forward_error, _ = self.icm_net.apply({"params": state.icm.params}, obs, action, next_obs)
        return jnp.log1p(self.cfg.icm_scale * forward_error)

    def _update_once(self, state: ICMState, batch: Batch, key: jax.Array
                     ) -> tuple[ICMState, Metrics]:
        obs, action, next_obs = batch["observation"], batch["action"], batch["next_observation"]
        icm, metrics = icm_step(state.icm, obs, action, next_obs)
        state = state.replace(icm=icm)
        reward = self._transition_reward(state, obs, action, next_obs)
        backbone, backbone_metrics = self.backbone_step(state.backbone, batch, reward, key)
        return state.replace(backbone=backbone), {**metrics, **backbone_metrics}

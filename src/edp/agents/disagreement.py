"""Disagreement: novelty as the spread of an ensemble of forward models (docs/baselines.md §3).

Each iteration, on one batch (s, a, s+) with s+ the observation 3 steps ahead:
  1. one Adam step on the mean over batch and members of ||s+ - f_m(s, a)|| (every member on the
     same batch, no bootstrapping, one optimiser);
  2. reward: the unbiased variance (ddof 1) across members of the updated predictions f_m(s, a),
     averaged over the state dimensions; s+ is not used, no scale or normalisation;
  3. the DDPG iteration with r.
The members are the only extra networks of URLB with PyTorch's default init (not orth).
Fine-tuning: base init.
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
from edp.agents.modules import safe_norm
from edp.networks import MLP
from edp.train_state import TrainState


@dataclasses.dataclass(frozen=True)
class DisagreementConfig:
    """Disagreement's ensemble of forward models (the DDPG backbone has its own group)."""

    hidden_dim: int = 1024
    """Width of the hidden layer of every forward model."""
    ensemble_size: int = 5
    """Forward models in the ensemble (hard-coded 5 in the reference)."""
    lr: float = 1e-4
    """Adam learning rate of the ensemble."""

    def check(self) -> None:
        check_fields("disagreement", self, [
            ("hidden_dim", self.hidden_dim >= 1, ">= 1"),
            ("ensemble_size", self.ensemble_size >= 2, ">= 2 (the reward is a variance)"),
            ("lr", self.lr > 0, "> 0")])


class ForwardEnsemble(nn.Module):
    """`size` independent MLPs [s, a] -> s+ (Lin -> ReLU -> Lin, torch-default init); returns
    the predictions (size, B, obs_dim). Parameters carry a leading member axis."""

    obs_dim: int
    hidden_dim: int
    size: int

    @nn.compact
    def __call__(self, obs: jax.Array, action: jax.Array) -> jax.Array:
        members = nn.vmap(MLP, variable_axes={"params": 0}, split_rngs={"params": True},
                          in_axes=None, axis_size=self.size)
        return members((self.hidden_dim,), self.obs_dim, name="members")(
            jnp.concatenate([obs, action], axis=-1))


class DisagreementState(struct.PyTreeNode):
    backbone: ddpg.DDPGState
    ensemble: TrainState


class DisagreementAgent(IntrinsicAgent):
    name = "disagreement"
    config = DisagreementConfig
    config_help = ("Disagreement: ensemble of forward "
                   "models; reward the variance of their predictions.")
    fast = dict(hidden_dim=128)

    def __init__(self, cfg: DisagreementConfig, backbone: ddpg.DDPGConfig, obs_dim: int,
                 action_dim: int):
        cfg.check()
        super().__init__(backbone, obs_dim, action_dim)
        self.cfg = cfg
        self.net = ForwardEnsemble(obs_dim, cfg.hidden_dim, cfg.ensemble_size)
        self.tx = optax.adam(cfg.lr)
        self.transition_reward = jax.jit(self._transition_reward)

    def init(self, key: jax.Array) -> DisagreementState:
        k_backbone, k_ensemble = jax.random.split(key)
        obs, action = jnp.zeros((1, self.obs_dim)), jnp.zeros((1, self.action_dim))
        return DisagreementState(
            backbone=self.init_backbone(k_backbone),
            ensemble=TrainState.create(self.net, self.tx, k_ensemble, obs, action))

    def _transition_reward(self, state: DisagreementState, obs: jax.Array, action: jax.Array
                           ) -> jax.Array:
        """Mean over state dims of the across-member unbiased variance (B,); public as
        `transition_reward` (it needs the action, so there is no state-only reward map)."""
        predictions = self.net.apply({"params": state.ensemble.params}, obs, action)
        return jnp.var(predictions, axis=0, ddof=1).mean(axis=-1)

    def _update_once(self, state: DisagreementState, batch: Batch, key: jax.Array
                     ) -> tuple[DisagreementState, Metrics]:
        obs, action, next_obs = batch["observation"], batch["action"], batch["next_observation"]

        def loss_fn(params):
            predictions = self.net.apply({"params": params}, obs, action)
            return safe_norm(next_obs - predictions).mean(), None

        ensemble, step = state.ensemble.apply_loss_fn(loss_fn)
        state = state.replace(ensemble=ensemble)
        reward = self._transition_reward(state, obs, action)
        backbone, metrics = self.backbone_step(state.backbone, batch, reward, key)
        return state.replace(backbone=backbone), {**metrics, "disagreement_loss": step.loss}

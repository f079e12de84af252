"""RND: novelty as the error of predicting a frozen random network (docs/baselines.md §2).

Each iteration, on the batch's current observations s (not s+):
  1. normalise s per feature with the *batch's* mean and biased variance (eps 1e-5), no affine,
     and clamp to [-obs_clip, obs_clip] (URLB's BatchNorm1d, always in training mode);
  2. one Adam step of the predictor P on mean_i e_i, e_i = mean over rep_dim of (T(s^) - P(s^))^2,
     with the target T a frozen, independently orth-initialised copy of the architecture;
  3. recompute e under the updated predictor, merge the B values into the running moments, and
     r = rnd_scale * e / (sqrt(running var) + 1e-8) (divided by the std, not mean-centred);
  4. the DDPG iteration with r.
The normaliser's running statistics (momentum 0.1, unbiased variance, as BatchNorm1d keeps them)
are unused in training, as in the reference; `intrinsic_reward` (reward maps) normalises with
them, i.e. the BatchNorm's eval mode, so that a state's reward does not depend on the states
scored with it. Fine-tuning: base init.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import optax
from flax import struct

from edp.agents import ddpg
from edp.agents.base import Batch, Metrics, check_fields
from edp.agents.intrinsic import IntrinsicAgent
from edp.agents.modules import OrthMLP
from edp.rms import RunningMoments
from edp.train_state import TrainState

BN_EPS = 1e-5
BN_MOMENTUM = 0.1


@dataclasses.dataclass(frozen=True)
class RNDConfig:
    """RND's predictor and frozen target networks (the DDPG backbone has its own group)."""

    hidden_dim: int = 1024
    """Width of the two hidden layers of the predictor and of the target."""
    rep_dim: int = 512
    """Output width of the predictor and of the target."""
    lr: float = 1e-4
    """Adam learning rate of the predictor."""
    rnd_scale: float = 1.0
    """Multiplier of the normalised prediction error."""
    obs_clip: float = 5.0
    """Normalised observations are clamped to +-obs_clip (hard-coded 5 in the reference)."""

    def check(self) -> None:
        check_fields("rnd", self, [("hidden_dim", self.hidden_dim >= 1, ">= 1"),
                                   ("rep_dim", self.rep_dim >= 1, ">= 1"),
                                   ("lr", self.lr > 0, "> 0"),
                                   ("rnd_scale", self.rnd_scale > 0, "> 0"),
                                   ("obs_clip", self.obs_clip > 0, "> 0")])


class RNDState(struct.PyTreeNode):
    backbone: ddpg.DDPGState
    predictor: TrainState
    target: ddpg.Params  # frozen
    reward_rms: RunningMoments
    obs_mean: jax.Array  # normaliser running statistics: reward maps only
    obs_var: jax.Array


class RNDAgent(IntrinsicAgent):
    name = "rnd"
    config = RNDConfig
    config_help = ("RND: predictor of a frozen random "
                   "network; reward its error over the running std.")
    fast = dict(hidden_dim=128, rep_dim=64)
    reward_map = True

    def __init__(self, cfg: RNDConfig, backbone: ddpg.DDPGConfig, obs_dim: int, action_dim: int):
        cfg.check()
        super().__init__(backbone, obs_dim, action_dim)
        self.cfg = cfg
        self.net = OrthMLP((cfg.hidden_dim, cfg.hidden_dim), cfg.rep_dim)
        self.tx = optax.adam(cfg.lr)
        self.intrinsic_reward = jax.jit(self._intrinsic_reward)

    def init(self, key: jax.Array) -> RNDState:
        k_backbone, k_predictor, k_target = jax.random.split(key, 3)
        obs = jnp.zeros((1, self.obs_dim))
        return RNDState(
            backbone=self.init_backbone(k_backbone),
            predictor=TrainState.create(self.net, self.tx, k_predictor, obs),
            target=self.net.init(k_target, obs)["params"],
            reward_rms=RunningMoments.create(),
            obs_mean=jnp.zeros(self.obs_dim), obs_var=jnp.ones(self.obs_dim))

    def normalise(self, obs: jax.Array, mean: jax.Array, var: jax.Array) -> jax.Array:
        clip = self.cfg.obs_clip
        return jnp.clip((obs - mean) / jnp.sqrt(var + BN_EPS), -clip, clip)

    def prediction_error(self, predictor: ddpg.Params, target_out: jax.Array,
                         obs_hat: jax.Array) -> jax.Array:
        """e (B,): mean over the rep_dim outputs of (T(s^) - P(s^))^2, s^ normalised and
        target_out = T(s^)."""
        return jnp.mean((target_out - self.net.apply({"params": predictor}, obs_hat)) ** 2,
                        axis=-1)

    def target_out(self, state: RNDState, obs_hat: jax.Array) -> jax.Array:
        return jax.lax.stop_gradient(self.net.apply({"params": state.target}, obs_hat))

    def _intrinsic_reward(self, state: RNDState, obs: jax.Array, key: jax.Array) -> jax.Array:
        """Reward of states with the normaliser's running statistics and the current running
        std (no statistics update); public as the jitted `intrinsic_reward`."""
        obs_hat = self.normalise(obs, state.obs_mean, state.obs_var)
        e = self.prediction_error(state.predictor.params, self.target_out(state, obs_hat), obs_hat)
        return self.cfg.rnd_scale * e / (jnp.sqrt(state.reward_rms.var) + 1e-8)

    def _update_once(self, state: RNDState, batch: Batch, key: jax.Array
                     ) -> tuple[RNDState, Metrics]:
        obs = batch["observation"]
        batch_mean, batch_var = obs.mean(axis=0), obs.var(axis=0)
        obs_hat = self.normalise(obs, batch_mean, batch_var)
        m = obs.shape[0]
        obs_mean = (1 - BN_MOMENTUM) * state.obs_mean + BN_MOMENTUM * batch_mean
        obs_var = (1 - BN_MOMENTUM) * state.obs_var + BN_MOMENTUM * batch_var * m / max(m - 1, 1)

        target_out = self.target_out(state, obs_hat)  # frozen: one forward for loss and reward

        def loss_fn(params):
            return self.prediction_error(params, target_out, obs_hat).mean(), None

        predictor, step = state.predictor.apply_loss_fn(loss_fn)
        e = jax.lax.stop_gradient(self.prediction_error(predictor.params, target_out, obs_hat))
        rms = state.reward_rms.update(e)
        reward = self.cfg.rnd_scale * e / (jnp.sqrt(rms.var) + 1e-8)
        backbone, metrics = self.backbone_step(state.backbone, batch, reward, key)
        state = RNDState(backbone, predictor, state.target, rms, obs_mean, obs_var)
        return state, {**metrics, "rnd_loss": step.loss, "intr_reward_raw": e.mean(),
                       "intr_reward_std": jnp.sqrt(rms.var)}

"""APT: particle-based entropy of a representation (docs/baselines.md §4).

`apt` is URLB's APT, i.e. ICM-APT (§4a; url_benchmark #15). Each iteration, on one batch:
  1. one Adam step of the ICM module in representation space: phi = Lin -> LN -> tanh (rep_dim),
     forward model [phi(s), a] -> phi(s+), inverse model [phi(s), phi(s+)] -> a, loss
     mean ||phi(s+) - F(phi(s), a)|| + mean ||a - G(phi(s), phi(s+))|| (phi(s+) not detached);
  2. reward: PBE (§0.7, `edp.agents.knn`) on phi(s) under the updated trunk, each state against
     the batch's states, self-distance included among the k: with the defaults
     r_i = log(1 + mean of the 12 smallest distances), no normalisation, no clip;
  3. the DDPG iteration with r.
`--apt.representation state` is the *reconstructed* state-APT (§4b: URLB's configs for it do
not run): PBE on the raw state, no auxiliary network or loss. Its reference kNN settings are
`--apt.knn-rms --apt.knn-clip 1e-4` (the defaults here are ICM-APT's). `--apt.knn-on-next`
scores s+ against the batch's s+ instead of s (§4c). Fine-tuning: base init.

The reward of a state depends on the batch it is scored with: `intrinsic_reward(state, obs,
key)` scores each state of `obs` in a batch of batch_size states of `obs` (all of them when
there are no more), reading, never updating, the running moments.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import jax
import jax.numpy as jnp
import optax
from flax import struct

from edp.agents import ddpg, knn
from edp.agents.base import Batch, Metrics, check_fields
from edp.agents.icm import ICMNets, icm_step
from edp.agents.intrinsic import IntrinsicAgent
from edp.rms import RunningMoments
from edp.train_state import TrainState


@dataclasses.dataclass(frozen=True)
class APTConfig:
    """APT's representation and kNN reward (the DDPG backbone has its own group)."""

    representation: Literal["icm", "state"] = "icm"
    """icm: URLB's ICM-APT; state: reconstructed state-APT (+ --apt.knn-rms --apt.knn-clip 1e-4)."""
    rep_dim: int = 512
    """Width of the representation phi(s) (icm only)."""
    hidden_dim: int = 1024
    """Width of the hidden layer of the forward and inverse models (icm only)."""
    lr: float = 1e-4
    """Adam learning rate of phi and the forward and inverse models (icm only)."""
    knn_k: int = 12
    """Nearest neighbours of the particle reward (the self-distance 0 is one of them)."""
    knn_avg: bool = True
    """Average the k distances (else keep only the k-th)."""
    knn_rms: bool = False
    """Divide distances by their running mean (reference state-APT: True)."""
    knn_clip: float = 0.0
    """Subtract this from the (normalised) distances, floor 0; < 0 disables (state-APT: 1e-4)."""
    knn_on_next: bool = False
    """Score s+ against the batch's s+ instead of s against s (docs/baselines.md §4c)."""

    def check(self) -> None:
        check_fields("apt", self, [
            ("representation", self.representation in ("icm", "state"), "icm or state"),
            ("rep_dim", self.rep_dim >= 1, ">= 1"),
            ("hidden_dim", self.hidden_dim >= 1, ">= 1"),
            ("lr", self.lr > 0, "> 0"),
            ("knn_k", self.knn_k >= 1, ">= 1")])


class APTState(struct.PyTreeNode):
    backbone: ddpg.DDPGState
    icm: TrainState | None  # None for state-APT
    knn_rms: RunningMoments  # updated only with knn_rms


class APTAgent(IntrinsicAgent):
    name = "apt"
    config = APTConfig
    config_help = "APT: kNN particle reward on an ICM representation (URLB), or on raw states."
    fast = dict(hidden_dim=128, rep_dim=64)
    reward_map = True

    def __init__(self, cfg: APTConfig, backbone: ddpg.DDPGConfig, obs_dim: int, action_dim: int):
        cfg.check()
        super().__init__(backbone, obs_dim, action_dim)
        knn.check_k("apt", cfg.knn_k, backbone.batch_size)
        self.cfg = cfg
        self.icm_net = (ICMNets(obs_dim, action_dim, cfg.hidden_dim, cfg.rep_dim)
                        if cfg.representation == "icm" else None)
        self.icm_tx = optax.adam(cfg.lr)
        self.intrinsic_reward = jax.jit(self._intrinsic_reward)

    @property
    def rewarded(self) -> str:
        return "next_observation" if self.cfg.knn_on_next else "observation"

    def init(self, key: jax.Array) -> APTState:
        k_backbone, k_icm = jax.random.split(key)
        icm = None
        if self.icm_net is not None:
            obs, action = jnp.zeros((1, self.obs_dim)), jnp.zeros((1, self.action_dim))
            icm = TrainState.create(self.icm_net, self.icm_tx, k_icm, obs, action, obs)
        return APTState(backbone=self.init_backbone(k_backbone), icm=icm,
                        knn_rms=RunningMoments.create())

    def rep(self, icm: TrainState | None, obs: jax.Array) -> jax.Array:
        """phi(obs) (icm) or obs itself (state)."""
        if self.icm_net is None:
            return obs
        return self.icm_net.apply({"params": icm.params}, obs, method=ICMNets.rep)

    def _intrinsic_reward(self, state: APTState, obs: jax.Array, key: jax.Array) -> jax.Array:
        """Reward of every state of `obs` in a batch made of it and other states of `obs`: all
        of them up to the batch size (exact PBE), else batch_size - 1 drawn with `key` (reward
        maps); reads, never updates, the running moments. Public as `intrinsic_reward`."""
        rep = self.rep(state.icm, obs)
        dists = knn.batch_knn_distances(rep, self.cfg.knn_k, self.batch_size, key)
        return knn.configured_reward(self.cfg, dists, state.knn_rms, update_rms=False)[0]

    def _update_once(self, state: APTState, batch: Batch, key: jax.Array
                     ) -> tuple[APTState, Metrics]:
        obs, action, next_obs = batch["observation"], batch["action"], batch["next_observation"]
        metrics = {}
        icm = state.icm
        if self.icm_net is not None:
            icm, metrics = icm_step(icm, obs, action, next_obs)
        rep = jax.lax.stop_gradient(self.rep(icm, batch[self.rewarded]))
        dists = knn.knn_distances(rep, rep, self.cfg.knn_k, same=True)
        reward, rms = knn.configured_reward(self.cfg, dists, state.knn_rms, update_rms=True)
        backbone, backbone_metrics = self.backbone_step(state.backbone, batch, reward, key)
        return APTState(backbone, icm, rms), {**metrics, **backbone_metrics}

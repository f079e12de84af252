"""CIC: contrastive intrinsic control (docs/baselines.md §9, CIC repo).

Skills z are uniform in [0, 1]^skill_dim, drawn at every reset and whenever the env step count is
a multiple of update_skill_every_step; the actor and critic see [s, z]. Each iteration, on one
batch (s, a, s+, z) with s+ the observation 3 steps ahead:
  1. one Adam step of state_net, pred_net and skill_net on the CPC loss, temperature T:
     q = normalize(skill_net(z)), k = normalize(pred_net([state_net(s), state_net(s+)])),
     L = q k^T / T, loss_i = -log(exp(L_ii) / (max(sum_j exp(L_ij) - e^(1/T), 1e-6) + 1e-6))
     (the reference subtracts the largest possible self-term, not the diagonal);
  2. reward under the updated state_net, x = state_net(s+): an APT-style kNN among the batch's
     x (k 16 with the self-distance, divided by the running *variance*, clip 5e-4,
     log(1 + mean)): high for transitions far from the others in the learned space. The skill
     and the contrastive loss do not enter the reward (cic #6);
  3. the DDPG iteration with r on [s, z] and [s+, z].
Fine-tuning: base init; the skill is fixed to the constant 0.5 (cic #2: no skill search).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import optax
from flax import struct

from edp.agents import ddpg, knn
from edp.agents.base import Batch, Metrics, check_fields
from edp.agents.modules import OrthMLP, l2_normalize
from edp.agents.skills import SkillAgent, SkillSchedule
from edp.rms import RunningMoments
from edp.train_state import TrainState

FINETUNE_SKILL = 0.5  # every coordinate of the fine-tuning skill (CIC repo, init_meta)


@dataclasses.dataclass(frozen=True)
class CICConfig:
    """CIC's skills, contrastive networks and kNN reward (the DDPG backbone has its own
    group)."""

    skill_dim: int = 64
    """Width of the skill, uniform in [0, 1]^skill_dim (also the embeddings' width)."""
    update_skill_every_step: int = 50
    """Redraw the skill whenever the env step count is a multiple of this (and at resets)."""
    hidden_dim: int = 1024
    """Width of the two hidden layers of state_net, pred_net and skill_net."""
    lr: float = 1e-4
    """Adam learning rate of the contrastive networks (one optimiser)."""
    project_skill: bool = True
    """Embed the skill with skill_net (else the raw skill is the query)."""
    temp: float = 0.5
    """Temperature T of the CPC logits."""
    knn_k: int = 16
    """Nearest neighbours of the reward (the self-distance 0 is one of them; hard-coded)."""
    knn_clip: float = 5e-4
    """Subtracted from the variance-normalised distances, floor 0 (hard-coded)."""

    def check(self) -> None:
        check_fields("cic", self, [
            ("skill_dim", self.skill_dim >= 1, ">= 1"),
            ("update_skill_every_step", self.update_skill_every_step >= 0, ">= 0"),
            ("hidden_dim", self.hidden_dim >= 1, ">= 1"),
            ("lr", self.lr > 0, "> 0"),
            ("temp", self.temp > 0, "> 0"),
            ("knn_k", self.knn_k >= 1, ">= 1")])


class CICState(struct.PyTreeNode):
    backbone: ddpg.DDPGState
    cic: TrainState  # params {"state_net", "pred_net", "skill_net"}: one optimiser
    knn_rms: RunningMoments


def cpc_loss(query: jax.Array, key: jax.Array, temp: float) -> jax.Array:
    """Per-sample CPC loss (B,) of queries against keys (both (B, D), unnormalised)."""
    logits = l2_normalize(query) @ l2_normalize(key).T / temp
    negatives = jnp.maximum(jnp.exp(logits).sum(-1) - jnp.exp(1.0 / temp), 1e-6)
    return jnp.log(negatives + 1e-6) - jnp.diagonal(logits)


class CICAgent(SkillAgent):
    name = "cic"
    config = CICConfig
    config_help = "CIC: uniform skills, contrastive (CPC) representation; reward kNN entropy of s+."
    fast = dict(hidden_dim=128)
    reward_map = True
    rewarded = "next_observation"

    def __init__(self, cfg: CICConfig, backbone: ddpg.DDPGConfig, obs_dim: int, action_dim: int):
        cfg.check()
        knn.check_k("cic", cfg.knn_k, backbone.batch_size)
        self.cfg = cfg
        skills = SkillSchedule(cfg.skill_dim, "uniform", cfg.update_skill_every_step)
        super().__init__(skills, backbone, obs_dim, action_dim)
        widths, out = (cfg.hidden_dim, cfg.hidden_dim), cfg.skill_dim
        self.state_net, self.pred_net, self.skill_net = (OrthMLP(widths, out) for _ in range(3))
        self.tx = optax.adam(cfg.lr)
        self.intrinsic_reward = jax.jit(self._intrinsic_reward)

    def init(self, key: jax.Array) -> CICState:
        k_backbone, k_state, k_pred, k_skill = jax.random.split(key, 4)
        d = self.cfg.skill_dim
        params = {"state_net": self.state_net.init(k_state, jnp.zeros((1, self.obs_dim))),
                  "pred_net": self.pred_net.init(k_pred, jnp.zeros((1, 2 * d))),
                  "skill_net": self.skill_net.init(k_skill, jnp.zeros((1, d)))}
        params = {name: p["params"] for name, p in params.items()}
        if not self.cfg.project_skill:
            del params["skill_net"]
        return CICState(backbone=self.init_backbone(k_backbone),
                        cic=TrainState.from_params(None, self.tx, params),
                        knn_rms=RunningMoments.create())

    def embed(self, params: dict, obs: jax.Array) -> jax.Array:
        """state_net(obs) (B, skill_dim)."""
        return self.state_net.apply({"params": params["state_net"]}, obs)

    def loss(self, params: dict, obs: jax.Array, next_obs: jax.Array, skill: jax.Array
             ) -> tuple[jax.Array, None]:
        pair = jnp.concatenate([self.embed(params, obs), self.embed(params, next_obs)], axis=-1)
        key = self.pred_net.apply({"params": params["pred_net"]}, pair)
        query = (self.skill_net.apply({"params": params["skill_net"]}, skill)
                 if self.cfg.project_skill else skill)
        return cpc_loss(query, key, self.cfg.temp).mean(), None

    def particle_reward(self, x: jax.Array, rms: RunningMoments, update_rms: bool
                        ) -> tuple[jax.Array, RunningMoments]:
        dists = knn.knn_distances(x, x, self.cfg.knn_k, same=True)
        return knn.particle_reward(dists, rms, avg=True, normaliser="var",
                                   clip=self.cfg.knn_clip, update_rms=update_rms)

    def _intrinsic_reward(self, state: CICState, obs: jax.Array, key: jax.Array) -> jax.Array:
        """Reward of a batch of states (each among all of them; no skill), reading the running
        variance without updating it; public as the jitted `intrinsic_reward`."""
        x = self.embed(state.cic.params, obs)
        dists = knn.batch_knn_distances(x, self.cfg.knn_k, self.batch_size, key)
        return knn.particle_reward(dists, state.knn_rms, avg=True, normaliser="var",
                                   clip=self.cfg.knn_clip, update_rms=False)[0]

    def _update_once(self, state: CICState, batch: Batch, key: jax.Array
                     ) -> tuple[CICState, Metrics]:
        obs, next_obs, skill = batch["observation"], batch["next_observation"], batch["meta"]
        cic, step = state.cic.apply_loss_fn(lambda p: self.loss(p, obs, next_obs, skill))
        x = jax.lax.stop_gradient(self.embed(cic.params, next_obs))
        reward, rms = self.particle_reward(x, state.knn_rms, update_rms=True)
        backbone, metrics = self.backbone_step(state.backbone, batch, reward, key)
        return CICState(backbone, cic, rms), {**metrics, "cic_loss": step.loss}

    def finetune_skills(self) -> SkillSchedule:
        return SkillSchedule(self.cfg.skill_dim, "constant", every=0, value=FINETUNE_SKILL)

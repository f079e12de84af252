"""APS: successor features with a particle-entropy reward (docs/baselines.md §8).

The skill is a task vector w, uniform on the unit sphere of R^sf_dim, drawn at every reset and
whenever the env step count is a multiple of update_task_every_step. The critic is a
successor-feature critic: a trunk on [s, w, a] and two heads psi_1, psi_2 in R^sf_dim, with
Q_j = <w, psi_j>; the actor is the usual one on [s, w]. Each iteration, on one batch
(s, a, s+, w) with s+ the observation 3 steps ahead:
  1. one Adam step of the features phi (Lin -> ReLU -> Lin -> ReLU -> Lin) on
     -mean <w, normalize(phi(s+))>;
  2. reward under the updated phi, e = phi(s+) unnormalised: r = r_ent + r_sf with
     r_sf = <w, normalize(e)> (how far s+ lies along the task in feature space) and
     r_ent = PBE(e) (docs/baselines.md §0.7: kNN among the batch's e, k 12 with the
     self-distance, divided by the running mean, clip 1e-4, log(1 + mean));
  3. the DDPG iteration with r.

Fine-tuning (`finetune_skills`, `TaskRegression`): a random task every update_task_every_step
steps until num_init_steps; after that, at every such step, the task is regressed from
lstsq_batch_size replay transitions: F = normalize(phi(s)), R the n-step extrinsic return, and
the reference's swapped least squares w = F^T R / ||F^T R||. The solved task is acted on,
stored, and used for evaluation. As in the reference, phi is a fresh, never-trained network
(URLB does not copy it) and the regression re-runs at every such step. Flags (not the reference):
--aps.finetune-copy-phi, --aps.finetune-lstsq (w = argmin ||F w - R||, normalised),
--aps.finetune-task-once (regress once, then keep w). Where the reference would produce a NaN
task (every sampled reward 0), the previous task is kept.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from edp.agents import ddpg, knn
from edp.agents.base import Batch, Metrics, Sampler, check_fields
from edp.agents.modules import OrthMLP, l2_normalize
from edp.agents.skills import SkillAgent, SkillSchedule
from edp.rms import RunningMoments
from edp.train_state import TrainState


@dataclasses.dataclass(frozen=True)
class APSConfig:
    """APS's task vectors, features, successor-feature critic and kNN reward (the DDPG backbone
    has its own group)."""

    sf_dim: int = 10
    """Width of the features phi, the successor features and the task vector w."""
    update_task_every_step: int = 5
    """Redraw (pre-training) or re-regress (fine-tuning) w whenever the env step count is a
    multiple of this."""
    hidden_dim: int = 1024
    """Width of the two hidden layers of phi."""
    lr: float = 1e-4
    """Adam learning rate of phi."""
    knn_k: int = 12
    """Nearest neighbours of the particle reward (the self-distance 0 is one of them)."""
    knn_avg: bool = True
    """Average the k distances (else keep only the k-th)."""
    knn_rms: bool = True
    """Divide distances by their running mean."""
    knn_clip: float = 1e-4
    """Subtract this from the (normalised) distances, floor 0; < 0 disables."""
    num_init_steps: int = 4096
    """Fine-tuning: random tasks until this many env steps, then the task is regressed."""
    lstsq_batch_size: int = 4096
    """Fine-tuning: replay transitions per task regression."""
    finetune_copy_phi: bool = False
    """Fine-tuning: regress on the snapshot's phi (the reference uses a fresh, untrained one)."""
    finetune_lstsq: bool = False
    """Fine-tuning: w = argmin ||F w - R|| (the reference solves the swapped problem)."""
    finetune_task_once: bool = False
    """Fine-tuning: regress once and keep w (the reference re-regresses every few steps)."""

    def check(self) -> None:
        check_fields("aps", self, [
            ("sf_dim", self.sf_dim >= 1, ">= 1"),
            ("update_task_every_step", self.update_task_every_step >= 1, ">= 1"),
            ("hidden_dim", self.hidden_dim >= 1, ">= 1"),
            ("lr", self.lr > 0, "> 0"),
            ("knn_k", self.knn_k >= 1, ">= 1"),
            ("num_init_steps", self.num_init_steps >= 0, ">= 0"),
            ("lstsq_batch_size", self.lstsq_batch_size >= 1, ">= 1")])


class SFCritic(nn.Module):
    """Twin Q = <w, psi_j(s, w, a)>; the input `obs` is [s, w] (w its last sf_dim entries).
    Params `trunk` (copied at fine-tuning), `q1`, `q2` like `ddpg.Critic`."""

    hidden_dim: int
    sf_dim: int

    @nn.compact
    def __call__(self, obs: jax.Array, action: jax.Array) -> tuple[jax.Array, jax.Array]:
        task = obs[..., -self.sf_dim:]
        h = ddpg.Trunk(self.hidden_dim, name="trunk")(jnp.concatenate([obs, action], axis=-1))
        psi1 = ddpg.Head(self.hidden_dim, self.sf_dim, name="q1")(h)
        psi2 = ddpg.Head(self.hidden_dim, self.sf_dim, name="q2")(h)
        return jnp.sum(task * psi1, axis=-1), jnp.sum(task * psi2, axis=-1)


class APSState(struct.PyTreeNode):
    backbone: ddpg.DDPGState
    phi: TrainState
    knn_rms: RunningMoments


class APSAgent(SkillAgent):
    name = "aps"
    config = APSConfig
    config_help = "APS: task vectors, successor-feature critic; reward <w, phi(s+)> + kNN entropy."
    fast = dict(hidden_dim=128)
    reward_map = True
    rewarded = "next_observation"

    def __init__(self, cfg: APSConfig, backbone: ddpg.DDPGConfig, obs_dim: int, action_dim: int):
        cfg.check()
        knn.check_k("aps", cfg.knn_k, backbone.batch_size)
        self.cfg = cfg
        skills = SkillSchedule(cfg.sf_dim, "sphere", cfg.update_task_every_step)
        super().__init__(skills, backbone, obs_dim, action_dim)
        self.phi = OrthMLP((cfg.hidden_dim, cfg.hidden_dim), cfg.sf_dim)
        self.tx = optax.adam(cfg.lr)
        self.reward_terms = jax.jit(self._reward_terms)
        self.intrinsic_reward = jax.jit(self._intrinsic_reward)

    def critic_module(self, backbone: ddpg.DDPGConfig) -> nn.Module:
        return SFCritic(backbone.hidden_dim, self.cfg.sf_dim)

    def init(self, key: jax.Array) -> APSState:
        k_backbone, k_phi = jax.random.split(key)
        return APSState(backbone=self.init_backbone(k_backbone),
                        phi=TrainState.create(self.phi, self.tx, k_phi,
                                              jnp.zeros((1, self.obs_dim))),
                        knn_rms=RunningMoments.create())

    def rewards(self, phi: Any, next_obs: jax.Array, task: jax.Array, rms: RunningMoments,
                update_rms: bool) -> tuple[jax.Array, jax.Array, jax.Array, RunningMoments]:
        """(r, r_sf, r_ent) (B,) each, and the running moments, for a batch of s+ and w."""
        e = self.phi.apply({"params": phi}, next_obs)
        dists = knn.knn_distances(e, e, self.cfg.knn_k, same=True)
        r_ent, rms = knn.configured_reward(self.cfg, dists, rms, update_rms)
        r_sf = jnp.sum(task * l2_normalize(e), axis=-1)
        return r_ent + r_sf, r_sf, r_ent, rms

    def _reward_terms(self, state: APSState, next_obs: jax.Array, task: jax.Array
                      ) -> tuple[jax.Array, jax.Array, jax.Array]:
        """(r, r_sf, r_ent) of a batch, reading (never updating) the running mean; public as
        the jitted `reward_terms`."""
        return self.rewards(state.phi.params, next_obs, task, state.knn_rms, False)[:3]

    def _intrinsic_reward(self, state: APSState, next_obs: jax.Array, key: jax.Array
                          ) -> jax.Array:
        """The reward averaged over tasks, for reward maps and probes: r_ent of each s+ in a
        batch of `next_obs` (as `knn.batch_knn_distances`), since r_sf = <w, x> averages to 0
        over w uniform on the sphere. Reads, never updates, the running mean; public as the
        jitted `intrinsic_reward`."""
        e = self.phi.apply({"params": state.phi.params}, next_obs)
        dists = knn.batch_knn_distances(e, self.cfg.knn_k, self.batch_size, key)
        return knn.configured_reward(self.cfg, dists, state.knn_rms, update_rms=False)[0]

    def _update_once(self, state: APSState, batch: Batch, key: jax.Array
                     ) -> tuple[APSState, Metrics]:
        next_obs, task = batch["next_observation"], batch["meta"]

        def loss_fn(params):
            features = l2_normalize(self.phi.apply({"params": params}, next_obs))
            return -jnp.mean(jnp.sum(task * features, axis=-1)), None

        phi, step = state.phi.apply_loss_fn(loss_fn)
        reward, r_sf, r_ent, rms = self.rewards(phi.params, next_obs, task, state.knn_rms, True)
        backbone, metrics = self.backbone_step(state.backbone, batch, reward, key)
        return APSState(backbone, phi, rms), {**metrics, "aps_loss": step.loss,
                                              "aps_reward_sf": r_sf.mean(),
                                              "aps_reward_ent": r_ent.mean()}

    def finetune_skills(self) -> TaskRegression:
        return TaskRegression(self.cfg, self.phi, self.obs_dim)


def regress_task(phi: OrthMLP, proper: bool, params: Any, obs: jax.Array, reward: jax.Array
                 ) -> tuple[jax.Array, jax.Array]:
    """(w, ok): the unit task explaining rewards R (N,) of states s (N, d_s) with features
    F = normalize(phi(s)). Reference (URLB `regress_meta`, lstsq(R, F)): x = F^T R / R^T R;
    `proper`: x = argmin ||F x - R||. ok is False when x is not a finite non-zero vector."""
    features = l2_normalize(phi.apply({"params": params}, obs))
    if proper:
        x = jnp.linalg.lstsq(features, reward)[0]
    else:
        x = reward @ features / jnp.sum(reward**2)
    norm = jnp.linalg.norm(x)
    ok = jnp.isfinite(norm) & (norm > 0)
    return x / jnp.where(ok, norm, 1.0), ok


class TaskRegression(SkillSchedule):
    """APS fine-tuning: random tasks, then the task regressed from the replay's rewards."""

    def __init__(self, cfg: APSConfig, phi: OrthMLP, obs_dim: int):
        super().__init__(cfg.sf_dim, "sphere", cfg.update_task_every_step)
        self.cfg, self.phi, self.obs_dim = cfg, phi, obs_dim
        self.regress = jax.jit(functools.partial(regress_task, phi, cfg.finetune_lstsq))

    def init(self, key: jax.Array) -> dict:
        """A fresh phi (never trained), the solved task and whether there is one."""
        phi = self.phi.init(key, jnp.zeros((1, self.obs_dim)))["params"]
        return {"phi": phi, "task": jnp.zeros(self.dim), "solved": jnp.zeros((), jnp.int32)}

    def start(self, state: dict, pretrained: APSState) -> dict:
        return {**state, "phi": pretrained.phi.params} if self.cfg.finetune_copy_phi else state

    def solved(self, state: dict, num: int) -> np.ndarray | None:
        if not int(state["solved"]):
            return None
        return np.tile(np.asarray(state["task"], np.float32), (num, 1))

    def init_meta(self, state: dict, key: jax.Array, num: int) -> np.ndarray:
        task = self.solved(state, num)
        return self.sample(key, num) if task is None else task

    def update_meta(self, state: dict, meta: np.ndarray, step: int, key: jax.Array,
                    sample: Sampler) -> tuple[dict, np.ndarray]:
        if step % self.every != 0:
            return state, meta
        frozen = self.cfg.finetune_task_once and int(state["solved"])
        if step > self.cfg.num_init_steps and not frozen:
            batch = sample(self.cfg.lstsq_batch_size)
            if batch is not None:
                task, ok = self.regress(state["phi"], batch["observation"], batch["reward"])
                if bool(ok):
                    state = {**state, "task": task, "solved": jnp.ones((), jnp.int32)}
        return state, self.init_meta(state, key, meta.shape[0])

"""EDP reward-free pre-training (docs/method.md §5).

Each learning call runs `updates_per_step` iterations, each on a fresh batch (lax.scan):
  1. one denoising (BC) step of the diffusion policy s_theta(a_t, t | s) on the batch's (s, a);
  2. one denoising step of the state model s_phi(x_t, t) on the batch's states s;
  3. intrinsic reward of s: the K-draw Monte-Carlo denoising loss under the just-updated state
     model (train mode, dropout on, as the reference), divided by the running std;
  4. the DDPG critic and actor steps with that reward, then the Polyak step.
High denoising loss means the state model fits s poorly, i.e. s is rarely visited: the reward
pulls the Gaussian behaviour policy toward the frontier of the replay buffer. The diffusion
policy never acts here; it is the expressive policy handed to diffusion fine-tuning.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import jax
import jax.numpy as jnp
import optax
from flax import struct

from edp import diffusion
from edp.agents import ddpg
from edp.agents.base import Batch, Metrics, check_fields
from edp.agents.intrinsic import IntrinsicAgent
from edp.envs import EnvId
from edp.networks import ActionScoreNet, StateScoreNet
from edp.rms import RunningMoments
from edp.score_models import dsm_update, example_inputs, score_fn
from edp.train_state import TrainState


@dataclasses.dataclass(frozen=True)
class EDPConfig:
    """EDP's diffusion models and intrinsic reward (the DDPG backbone has its own group)."""

    reward_samples: int = 20
    """K: Monte-Carlo (t, z) draws per state in the intrinsic reward (maze 20; walker 50)."""
    score_hidden_dim: int = 256
    """Width of the residual MLP of both score networks (inner layers are 4x wider)."""
    score_blocks: int = 3
    """Residual blocks of both score networks."""
    score_time_dim: int = 128
    """Width of the time code of both score networks (Fourier features -> MLP)."""
    score_dropout: float = 0.1
    """Dropout rate in the residual blocks (active in training and, see reward_dropout, in the
    reward)."""
    reward_dropout: bool = True
    """Dropout active while computing the reward, as the reference (off: the state model's
    deterministic loss)."""
    reward_estimator: Literal["mc", "stratified"] = "mc"
    """K-draw estimator of the reward: mc (the paper: independent draws per state) or
    stratified (stratified times, antithetic noise, common to the batch; beyond the paper)."""
    reward_on: Literal["observation", "next_observation"] = "observation"
    """Which state of a sampled transition is rewarded: its own (the reference) or the n-step
    next state it leads to (beyond the paper)."""
    reward_t_max: float = 1.0
    """Beyond the paper: draw the reward's diffusion times from U(1e-3, reward_t_max) instead
    of U(1e-3, 1), so that the reward weighs only the noise scales at which the state model's
    loss tells crowded places from sparse ones (docs/method.md §5.3); 1 is the paper's."""
    score_lr: float = 1e-4
    """Adam learning rate of both score networks."""
    diffusion_scale: float = 1.0
    """Multiplier of the normalised intrinsic reward."""
    train_policy: bool = True
    """Fit the state-conditioned diffusion policy by behaviour cloning (needed to fine-tune it)."""

    def check(self) -> None:
        rules = [("reward_samples", self.reward_samples >= 1, ">= 1"),
                 ("score_hidden_dim", self.score_hidden_dim >= 1, ">= 1"),
                 ("score_blocks", self.score_blocks >= 0, ">= 0"),
                 ("score_time_dim", self.score_time_dim >= 1, ">= 1"),
                 ("score_dropout", 0 <= self.score_dropout < 1, "in [0, 1)"),
                 ("reward_t_max", diffusion.T_MIN_TRAIN < self.reward_t_max <= 1,
                  f"in ({diffusion.T_MIN_TRAIN:g}, 1]"),
                 ("score_lr", self.score_lr > 0, "> 0"),
                 ("diffusion_scale", self.diffusion_scale > 0, "> 0")]
        check_fields("edp", self, rules)


# Reference per-domain settings (K reward draws, score_train_iter); cheetah's are missing in the
# reference config, 10 and 1 mirror quadruped/walker (docs/architecture.md §4, decision 6).
URLB_SCHEDULE = {"walker": (50, 1), "quadruped": (10, 1), "jaco": (1, 1), "hopper": (20, 2),
                 "cheetah": (10, 1)}
MAZE_SCHEDULE = (20, 5)


def paper_schedule(env: EnvId) -> tuple[int, int]:
    """(K reward draws, iterations per learning call) of the reference on env."""
    return MAZE_SCHEDULE if env.is_maze else URLB_SCHEDULE[env.domain]


class EDPState(struct.PyTreeNode):
    backbone: ddpg.DDPGState
    state_model: TrainState
    policy: TrainState
    reward_rms: RunningMoments


class EDPAgent(IntrinsicAgent):
    name = "edp"
    config = EDPConfig
    config_help = "EDP: state diffusion model, intrinsic reward, diffusion policy."
    fast = dict(score_hidden_dim=64, score_blocks=1, score_time_dim=64, reward_samples=4)
    reward_map = True
    handoff = frozenset({"actor", "diffusion_policy"})  # docs/architecture.md §4.2

    @classmethod
    def paper_group(cls, group: EDPConfig, env: EnvId) -> EDPConfig:
        return dataclasses.replace(group, reward_samples=paper_schedule(env)[0])

    @classmethod
    def paper_backbone(cls, env: EnvId) -> dict:
        return {"batch_size": 1024 if env.is_maze else 256, "update_every": 1,
                "updates_per_step": paper_schedule(env)[1]}

    def __init__(self, cfg: EDPConfig, backbone: ddpg.DDPGConfig, obs_dim: int, action_dim: int):
        cfg.check()
        super().__init__(backbone, obs_dim, action_dim)
        self.cfg = cfg
        width = dict(hidden_dim=cfg.score_hidden_dim, num_blocks=cfg.score_blocks,
                     dropout_rate=cfg.score_dropout, time_dim=cfg.score_time_dim)
        self.state_net = StateScoreNet(obs_dim, **width)
        self.policy_net = ActionScoreNet(action_dim, **width)
        self.score_tx = optax.adam(cfg.score_lr)
        self.intrinsic_reward = jax.jit(self._intrinsic_reward)

    @property
    def rewarded(self) -> str:
        return self.cfg.reward_on

    def init(self, key: jax.Array) -> EDPState:
        k_backbone, k_state, k_policy = jax.random.split(key, 3)
        return EDPState(
            backbone=self.init_backbone(k_backbone),
            state_model=TrainState.create(self.state_net, self.score_tx, k_state,
                                          *example_inputs(self.obs_dim)),
            policy=TrainState.create(self.policy_net, self.score_tx, k_policy,
                                     *example_inputs(self.action_dim, self.obs_dim)),
            reward_rms=RunningMoments.create())

    def raw_reward(self, state_model: TrainState, obs: jax.Array, key: jax.Array) -> jax.Array:
        """Mean over K draws of the per-state denoising loss (dropout on, as the reference,
        unless reward_dropout is off)."""
        k_draw, k_drop = jax.random.split(key)
        fn = score_fn(state_model, k_drop if self.cfg.reward_dropout else None)
        return diffusion.dsm_loss_per_sample(fn, obs, k_draw, num_draws=self.cfg.reward_samples,
                                             stratified=self.cfg.reward_estimator == "stratified",
                                             t_max=self.cfg.reward_t_max)

    def _intrinsic_reward(self, state: EDPState, obs: jax.Array, key: jax.Array) -> jax.Array:
        """Reward of states under the current model and running std (no statistics update);
        public as the jitted `intrinsic_reward`, used for reward maps."""
        raw = self.raw_reward(state.state_model, obs, key)
        return self.cfg.diffusion_scale * raw / (jnp.sqrt(state.reward_rms.var) + 1e-8)

    def _update_once(self, state: EDPState, batch: Batch, key: jax.Array
                     ) -> tuple[EDPState, Metrics]:
        k_policy, k_state, k_reward, k_backbone = jax.random.split(key, 4)
        obs, action = batch["observation"], batch["action"]
        metrics = {}
        policy = state.policy
        if self.cfg.train_policy:
            policy, metrics["policy_dsm_loss"] = dsm_update(policy, action, obs, k_policy)
        state_model, metrics["state_dsm_loss"] = dsm_update(state.state_model, obs, None,
                                                            k_state)
        rewarded = batch[self.rewarded]
        raw = jax.lax.stop_gradient(self.raw_reward(state_model, rewarded, k_reward))
        rms = state.reward_rms.update(raw)
        reward = self.cfg.diffusion_scale * raw / (jnp.sqrt(rms.var) + 1e-8)
        backbone, backbone_metrics = self.backbone_step(state.backbone, batch, reward, k_backbone)
        metrics.update(backbone_metrics, intr_reward_raw=raw.mean(),
                       intr_reward_std=jnp.sqrt(rms.var))
        return EDPState(backbone, state_model, policy, rms), metrics

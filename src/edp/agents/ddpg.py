"""The DDPG backbone of every pre-training agent (URLB `agent/ddpg.py`, states setting).

A Gaussian actor with fixed noise and a clipped double-Q critic with a Polyak target. The pure
functions here (`update_critic`, `update_actor`, `soft_update`, `update_backbone`,
`select_action`) take any reward array, so an intrinsic agent (EDP, ICM, ...) keeps a
`DDPGState` inside its own state and calls them with its own reward. `DDPGAgent` is the plain
agent: zero reward in pre-training (a baseline), the batch's extrinsic reward in fine-tuning.

One update iteration runs, as URLB: critic step, actor step on the just-updated critic, then
the Polyak step of the target critic.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax import struct
from tyro.conf import Suppress

from edp.agents.base import Agent, Batch, Metrics, check_fields
from edp.train_state import Params, TrainState

ACTION_EPS = 1e-6  # sampled actions are clamped to [-1 + eps, 1 - eps]


@dataclasses.dataclass(frozen=True)
class DDPGConfig:
    """DDPG backbone: actor, twin critic, their optimisers and the update cadence."""

    hidden_dim: int = 1024
    """Width of every hidden layer of the actor and the critic."""
    lr: float = 1e-4
    """Adam learning rate of the actor and the critic."""
    critic_target_tau: float = 0.01
    """Polyak rate of the target critic, applied after every update iteration."""
    stddev: float = 0.2
    """Fixed standard deviation of the actor's truncated-normal action noise."""
    stddev_clip: float = 0.3
    """Noise clip of the actions used in the critic target and the actor loss."""
    batch_size: int = 1024
    """Transitions per gradient iteration (URLB DDPG states: 1024)."""
    num_expl_steps: Suppress[int] = 4000
    """Uniform random actions before this many env steps (runs set it from --seed-frames)."""
    update_every: int = 1
    """Env steps between learning calls (pre-training: 1; URLB DDPG fine-tuning: 2)."""
    learning_starts: Suppress[int] = 4000
    """No learning call before this many env steps (runs set it from --seed-frames)."""
    updates_per_step: int = 1
    """Gradient iterations per learning call, each on a fresh batch."""

    def check(self) -> None:
        """Raise ValueError naming the first field whose value is impossible."""
        rules = [
            ("hidden_dim", self.hidden_dim >= 1, ">= 1"),
            ("lr", self.lr > 0, "> 0"),
            ("critic_target_tau", 0 < self.critic_target_tau <= 1, "in (0, 1]"),
            ("stddev", self.stddev >= 0, ">= 0"),
            ("stddev_clip", self.stddev_clip >= 0, ">= 0"),
            ("batch_size", self.batch_size >= 1, ">= 1"),
            ("num_expl_steps", self.num_expl_steps >= 0, ">= 0"),
            ("update_every", self.update_every >= 1, ">= 1"),
            ("learning_starts", self.learning_starts >= 0, ">= 0"),
            ("updates_per_step", self.updates_per_step >= 1, ">= 1"),
        ]
        check_fields("ddpg", self, rules)


# ---------------------------------------------------------------------------------------------
# Networks


def _dense(features: int) -> nn.Dense:
    """URLB `weight_init`: orthogonal weights with gain 1, zero bias."""
    return nn.Dense(features, kernel_init=nn.initializers.orthogonal(1.0),
                    bias_init=nn.initializers.zeros)


class Trunk(nn.Module):
    """Linear -> LayerNorm -> tanh: the first block of the actor and of the critic."""

    hidden_dim: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        return jnp.tanh(nn.LayerNorm(epsilon=1e-5)(_dense(self.hidden_dim)(x)))


class Head(nn.Module):
    """Linear -> ReLU -> Linear."""

    hidden_dim: int
    out_dim: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        h = nn.relu(_dense(self.hidden_dim)(x))
        return _dense(self.out_dim)(h)


class Actor(nn.Module):
    """Deterministic mean action mu(s) in (-1, 1)^A; params `trunk` and `policy`."""

    action_dim: int
    hidden_dim: int

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        h = Trunk(self.hidden_dim, name="trunk")(obs)
        return jnp.tanh(Head(self.hidden_dim, self.action_dim, name="policy")(h))


class Critic(nn.Module):
    """Twin Q(s, a) sharing a trunk; params `trunk` (copied at fine-tuning), `q1`, `q2`."""

    hidden_dim: int

    @nn.compact
    def __call__(self, obs: jax.Array, action: jax.Array) -> tuple[jax.Array, jax.Array]:
        h = Trunk(self.hidden_dim, name="trunk")(jnp.concatenate([obs, action], axis=-1))
        q1 = Head(self.hidden_dim, 1, name="q1")(h)
        q2 = Head(self.hidden_dim, 1, name="q2")(h)
        return q1[..., 0], q2[..., 0]


# ---------------------------------------------------------------------------------------------
# Policy distribution


@jax.custom_jvp
def clamp_straight_through(x: jax.Array) -> jax.Array:
    """Clamp to [-1 + eps, 1 - eps] with gradient 1 everywhere (URLB `TruncatedNormal`)."""
    return jnp.clip(x, -1.0 + ACTION_EPS, 1.0 - ACTION_EPS)


@clamp_straight_through.defjvp
def _clamp_straight_through_jvp(primals, tangents):
    (x,), (dx,) = primals, tangents
    return clamp_straight_through(x), dx


def sample_truncated_normal(key: jax.Array, mu: jax.Array, std: float,
                            clip: float | None = None) -> jax.Array:
    """clamp(mu + eps), eps ~ N(0, std^2) clipped to +-clip if given; reparameterised in mu."""
    eps = std * jax.random.normal(key, mu.shape, mu.dtype)
    if clip is not None:
        eps = jnp.clip(eps, -clip, clip)
    return clamp_straight_through(mu + eps)


# ---------------------------------------------------------------------------------------------
# State and static parts


class DDPGState(struct.PyTreeNode):
    """Everything of the backbone that learns; keys come from the loop."""

    actor: TrainState
    critic: TrainState
    critic_target: Params


def init_state(cfg: DDPGConfig, key: jax.Array, obs_dim: int, action_dim: int,
               critic: nn.Module | None = None) -> DDPGState:
    """Fresh parameters and Adam states; the target critic starts equal to the critic (URLB).
    `critic` replaces the twin critic module (APS: successor features)."""
    k_actor, k_critic = jax.random.split(key)
    obs, action = jnp.zeros((1, obs_dim)), jnp.zeros((1, action_dim))
    actor = TrainState.create(Actor(action_dim, cfg.hidden_dim), optax.adam(cfg.lr), k_actor, obs)
    critic = TrainState.create(critic or Critic(cfg.hidden_dim), optax.adam(cfg.lr), k_critic,
                               obs, action)
    return DDPGState(actor=actor, critic=critic, critic_target=critic.params)


def init_from_snapshot(fresh: DDPGState, pretrained: DDPGState, whole_critic: bool = False
                       ) -> DDPGState:
    """Fine-tuning start (URLB `init_from`): pre-trained actor and critic trunk (the whole
    critic for ProtoRL), everything else fresh; the target critic keeps its fresh init and
    only meets the copy through Polyak."""
    _check_same_shapes(fresh.actor.params, pretrained.actor.params, "actor")
    actor = fresh.actor.replace(params=pretrained.actor.params)
    if whole_critic:
        _check_same_shapes(fresh.critic.params, pretrained.critic.params, "critic")
        return fresh.replace(actor=actor, critic=fresh.critic.replace(
            params=pretrained.critic.params))
    _check_same_shapes(fresh.critic.params["trunk"], pretrained.critic.params["trunk"],
                       "critic trunk")
    critic = {**fresh.critic.params, "trunk": pretrained.critic.params["trunk"]}
    return fresh.replace(actor=actor, critic=fresh.critic.replace(params=critic))


def _check_same_shapes(fresh: Params, pretrained: Params, what: str) -> None:
    shapes = lambda tree: jax.tree.map(jnp.shape, tree)
    if shapes(fresh) != shapes(pretrained):
        raise ValueError(f"pre-trained {what} shapes {shapes(pretrained)} do not match the "
                         f"fine-tuning agent's {shapes(fresh)}")


# ---------------------------------------------------------------------------------------------
# Acting


def select_action(cfg: DDPGConfig, actor: TrainState, obs: jax.Array, key: jax.Array,
                  step: jax.Array | int, eval_mode: bool) -> jax.Array:
    """Mean in eval mode; else uniform before `num_expl_steps`, then unclipped noisy samples.

    `step` may be traced (no recompilation per step); `eval_mode` must be static.
    """
    mu = actor.apply(obs)
    if eval_mode:
        return mu
    k_uniform, k_noise = jax.random.split(key)
    uniform = jax.random.uniform(k_uniform, mu.shape, mu.dtype, -1.0, 1.0)
    noisy = sample_truncated_normal(k_noise, mu, cfg.stddev)
    return jnp.where(step < cfg.num_expl_steps, uniform, noisy)


# ---------------------------------------------------------------------------------------------
# Learning


def critic_target(cfg: DDPGConfig, state: DDPGState, reward: jax.Array, discount: jax.Array,
                  next_obs: jax.Array, key: jax.Array) -> jax.Array:
    """y = r + discount * min(Q1', Q2')(s', a'), a' from the online actor with clipped noise."""
    mu = state.actor.apply(next_obs)
    next_action = sample_truncated_normal(key, mu, cfg.stddev, cfg.stddev_clip)
    q1, q2 = state.critic.apply(next_obs, next_action, params=state.critic_target)
    return jax.lax.stop_gradient(reward + discount * jnp.minimum(q1, q2))


def update_critic(cfg: DDPGConfig, state: DDPGState, obs: jax.Array, action: jax.Array,
                  reward: jax.Array, discount: jax.Array, next_obs: jax.Array, key: jax.Array
                  ) -> tuple[DDPGState, Metrics]:
    """One Adam step on MSE(Q1, y) + MSE(Q2, y); `reward` is any (B,) array (ext. or intr.)."""
    if reward.shape != discount.shape:
        raise ValueError(f"reward shape {reward.shape} must equal discount shape "
                         f"{discount.shape} (one value per transition)")
    y = critic_target(cfg, state, reward, discount, next_obs, key)

    def loss_fn(params):
        q1, q2 = state.critic.apply(obs, action, params=params)
        loss = jnp.mean((q1 - y) ** 2) + jnp.mean((q2 - y) ** 2)
        return loss, (q1, q2)

    critic, step = state.critic.apply_loss_fn(loss_fn)
    state = state.replace(critic=critic)
    q1, q2 = step.aux
    metrics = {"critic_loss": step.loss, "critic_q1": q1.mean(), "critic_q2": q2.mean(),
               "critic_target_q": y.mean(), "batch_reward": reward.mean()}
    return state, metrics


def update_actor(cfg: DDPGConfig, state: DDPGState, obs: jax.Array, key: jax.Array
                 ) -> tuple[DDPGState, Metrics]:
    """One Adam step on -mean(min(Q1, Q2)(s, a)), a reparameterised with clipped noise."""
    def loss_fn(params):
        mu = state.actor.apply(obs, params=params)
        action = sample_truncated_normal(key, mu, cfg.stddev, cfg.stddev_clip)
        q1, q2 = state.critic.apply(obs, action)
        return -jnp.mean(jnp.minimum(q1, q2)), None

    actor, step = state.actor.apply_loss_fn(loss_fn)
    return state.replace(actor=actor), {"actor_loss": step.loss}


def soft_update(cfg: DDPGConfig, state: DDPGState) -> DDPGState:
    """Polyak: target <- tau * critic + (1 - tau) * target."""
    target = optax.incremental_update(state.critic.params, state.critic_target,
                                      cfg.critic_target_tau)
    return state.replace(critic_target=target)


def update_backbone(cfg: DDPGConfig, state: DDPGState, batch: Batch, reward: jax.Array,
                    key: jax.Array) -> tuple[DDPGState, Metrics]:
    """One URLB iteration on one batch slice: critic, actor, target; `reward` replaces
    `batch["reward"]` (intrinsic agents pass theirs, fine-tuning the extrinsic one)."""
    k_critic, k_actor = jax.random.split(key)
    state, critic_metrics = update_critic(
        cfg, state, batch["observation"], batch["action"], reward, batch["discount"],
        batch["next_observation"], k_critic)
    state, actor_metrics = update_actor(cfg, state, batch["observation"], k_actor)
    return soft_update(cfg, state), {**critic_metrics, **actor_metrics}


# ---------------------------------------------------------------------------------------------
# The agent


class BackboneAgent(Agent):
    """An agent acting with the DDPG actor of its state's backbone (`backbone(state)`), which
    it hands to DDPG fine-tuning."""

    handoff = frozenset({"actor"})
    finetune_whole_critic: ClassVar[bool] = False  # ProtoRL hands over the critic heads too

    def __init__(self, cfg: DDPGConfig, obs_dim: int, action_dim: int):
        cfg.check()
        super().__init__(cfg, obs_dim, action_dim)
        self.backbone_cfg = cfg
        self._act = jax.jit(functools.partial(select_action, cfg), static_argnames="eval_mode")

    def backbone(self, state: Any) -> DDPGState:
        return state.backbone

    def act(self, state: Any, observation: jax.Array, key: jax.Array, step: int,
            eval_mode: bool) -> jax.Array:
        # One dtype for every caller (Python int, np.int64, ...): one compiled program.
        return self._act(self.backbone(state).actor, observation, key,
                         jnp.asarray(step, jnp.int32), eval_mode=eval_mode)

    def finetune_agent(self, cfg: DDPGConfig, pretrained: Any = None) -> Agent:
        """The DDPG fine-tuning agent of this agent's snapshots (`edp finetune --method ddpg`),
        starting from `pretrained` (a state of this agent) if given."""
        start = None if pretrained is None else self.backbone(pretrained)
        return DDPGAgent(cfg, self.obs_dim, self.action_dim, intrinsic=False, start=start,
                         whole_critic=self.finetune_whole_critic)


class DDPGAgent(BackboneAgent):
    """Plain DDPG: reward zero when `intrinsic` (the no-intrinsic-reward pre-training
    baseline), the batch's extrinsic reward otherwise (fine-tuning, from `start`, a pre-trained
    backbone, if given: `init_from_snapshot`)."""

    name = "ddpg"

    def __init__(self, cfg: DDPGConfig, obs_dim: int, action_dim: int, intrinsic: bool = True,
                 start: DDPGState | None = None, whole_critic: bool = False):
        super().__init__(cfg, obs_dim, action_dim)
        self.intrinsic, self.start, self.whole_critic = intrinsic, start, whole_critic

    @classmethod
    def from_config(cls, cfg: Any, obs_dim: int, action_dim: int) -> DDPGAgent:
        return cls(cfg.ddpg, obs_dim, action_dim)

    def backbone(self, state: DDPGState) -> DDPGState:
        return state

    def init(self, key: jax.Array) -> DDPGState:
        fresh = init_state(self.backbone_cfg, key, self.obs_dim, self.action_dim)
        if self.start is None:
            return fresh
        return init_from_snapshot(fresh, self.start, self.whole_critic)

    def _update_once(self, state: DDPGState, batch: Batch, key: jax.Array
                     ) -> tuple[DDPGState, Metrics]:
        reward = jnp.zeros_like(batch["discount"]) if self.intrinsic else batch["reward"]
        return update_backbone(self.backbone_cfg, state, batch, reward, key)

"""What every diffusion fine-tuning method shares: the config fields, the start from the
pre-trained diffusion policy, acting by sampling, and the one-compiled-call update.

A method subclasses `DiffusionFinetuneConfig` (adding its own fields) and
`DiffusionFinetuneAgent` (writing `_update_once`, `init` when its state is more than the policy
and the critic, and `_act` when it does not act with one unguided sample of `state.policy`).
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import optax
from flax import struct
from tyro.conf import Suppress

from edp import diffusion
from edp.agents.base import Agent, Batch, Metrics, check_fields
from edp.finetune import iql
from edp.networks import ActionScoreNet
from edp.score_models import example_inputs, score_fn
from edp.train_state import TrainState


@dataclasses.dataclass(frozen=True)
class DiffusionFinetuneConfig:
    """Fields shared by every diffusion fine-tuning method (defaults: the `paper` values)."""

    method: ClassVar[str] = "diffusion"

    batch_size: int = 256
    """Transitions per gradient iteration."""
    learning_starts: Suppress[int] = 4000
    """No learning call before this many env steps (runs set it from --seed-frames)."""
    update_every: int = 1
    """Env steps between learning calls (per-step schedule: 1; block schedule: N)."""
    updates_per_step: int = 1
    """Gradient iterations per learning call (per-step schedule: 1; block schedule: N)."""
    diffusion_steps: int = 15
    """DPM-Solver++ function evaluations of every sampling chain (acting and training)."""
    policy_lr: float = 1e-4
    """Adam learning rate of the trained diffusion policy."""
    critic: iql.IQLConfig = dataclasses.field(default_factory=iql.IQLConfig)
    """IQL critic (twin Q, EMA target, expectile V)."""
    seed_uniform: bool = False
    """Beyond the paper: act uniformly at random in [-1, 1]^A during the seed phase (before
    learning starts), as DDPG does, so the replay and the in-sample critic see actions the
    pre-trained policy would not take (the paper's seed phase samples that policy)."""

    def rules(self) -> list[tuple[str, bool, str]]:
        """(field, valid?, what is valid) for this config's own fields."""
        return [
            ("batch_size", self.batch_size >= 1, ">= 1"),
            ("learning_starts", self.learning_starts >= 0, ">= 0"),
            ("update_every", self.update_every >= 1, ">= 1"),
            ("updates_per_step", self.updates_per_step >= 1, ">= 1"),
            ("diffusion_steps", self.diffusion_steps >= 1, ">= 1"),
            ("policy_lr", self.policy_lr > 0, "> 0"),
        ]

    def check(self) -> None:
        """Raise ValueError naming the first field whose value is impossible."""
        check_fields(self.method, self, self.rules())
        self.critic.check(self.method)


def check_pretrained(policy_net: ActionScoreNet, pretrained: TrainState, obs_dim: int,
                     action_dim: int) -> None:
    """One-line error if the pre-trained policy does not fit this agent's policy network."""
    expected = jax.eval_shape(policy_net.init, jax.random.PRNGKey(0),
                              *example_inputs(action_dim, obs_dim))
    shapes = lambda tree: jax.tree.map(lambda a: tuple(a.shape), tree)
    got = {"params": pretrained.params, "constants": pretrained.constants}
    if shapes(got) != shapes(dict(expected)):
        net = (f"ActionScoreNet(action_dim={policy_net.action_dim}, hidden_dim="
               f"{policy_net.hidden_dim}, num_blocks={policy_net.num_blocks}, time_dim="
               f"{policy_net.time_dim})")
        raise ValueError(f"pre-trained policy shapes do not match the fine-tuning policy "
                         f"network {net} for obs_dim={obs_dim}, action_dim={action_dim}")


def per_call_dropout_score_fn(net: TrainState, params: Any, key: jax.Array
                              ) -> diffusion.ScoreFn:
    """Train-mode score at `params` with a fresh dropout mask at every solver time (as PyTorch
    draws one per forward call): the key is folded with the call's time, distinct at every
    NFE."""
    def fn(x, t, cond):
        k = jax.random.fold_in(key, jnp.round(t.reshape(-1)[0] * 1e6).astype(jnp.int32))
        return net.apply(x, t, cond, params=params, train=True, rngs={"dropout": k})

    return fn


def sample_actions(net: TrainState, obs: jax.Array, key: jax.Array, steps: int,
                   num_samples: int | None = None,
                   guidance_fn: diffusion.GuidanceFn | None = None) -> jax.Array:
    """Samples of the diffusion policy (eval mode, as the reference, no gradient): (N, A), or
    (N, M, A)."""
    actions = diffusion.sample(score_fn(net, None), key, obs, net.module.action_dim, steps,
                               guidance_fn, num_samples)
    return jax.lax.stop_gradient(actions)


def zero_noise_actions(net: TrainState, obs: jax.Array, steps: int) -> jax.Array:
    """The solver started from x_T = 0 (eval mode, no gradient): one deterministic action per
    state, (N, A), the image of the prior's centre. For a Gaussian policy N(mu, S) that is
    mu - alpha_1 S^(1/2) mu (alpha_1 = 0.0066): the mean action, as DDPG evaluates; for a
    multi-modal policy it can fall between the modes."""
    x_T = jnp.zeros((obs.shape[0], net.module.action_dim), obs.dtype)
    actions = diffusion.dpm_solver_pp(score_fn(net, None), x_T, obs, steps)
    return jax.lax.stop_gradient(actions)


def policy_dsm_step(net: TrainState, action: jax.Array, obs: jax.Array, key: jax.Array,
                    extra_loss=None) -> tuple[TrainState, Metrics]:
    """One Adam step of BC-DSM on (a | s) in train mode, plus an optional extra loss term
    `extra_loss(params, key) -> (loss, metrics)` differentiated with it."""
    k_loss, k_drop, k_extra = jax.random.split(key, 3)

    def loss_fn(params):
        fn = score_fn(net, k_drop, params)
        bc = diffusion.dsm_loss_per_sample(fn, action, k_loss, obs).mean()
        if extra_loss is None:
            return bc, {"bc_loss": bc}
        extra, metrics = extra_loss(params, k_extra)
        return bc + extra, {"bc_loss": bc, **metrics}

    net, step = net.apply_loss_fn(loss_fn)
    return net, step.aux


class PolicyCriticState(struct.PyTreeNode):
    """The state of a method that trains the policy and an IQL critic (idql, dql, qsm, dipo)."""

    policy: TrainState  # the fine-tuned copy of the pre-trained policy: the acting policy
    critic: iql.IQLState


class DiffusionFinetuneAgent(Agent):
    """Skeleton of a diffusion fine-tuning method.

    The constructor takes the pre-trained policy (`EDPState.policy`, a `TrainState` of an
    `ActionScoreNet`): the fine-tuned policy has exactly its architecture and starts from its
    weights; critics and energies are fresh (docs/method.md §3.5). Learning is one jitted call
    (lax.scan over the batch's iters axis); acting is one jitted call whatever `step` and
    `eval_mode` are.

    Evaluation modes beyond the paper's one sample (`eval_modes`, run by the loop when asked,
    `act_eval`): `zero_noise`, the policy's deterministic low-noise action (`zero_noise_actions`
    of `state.policy`; for idql, without its best-of-N selection, which needs distinct samples).
    """

    name: ClassVar[str] = "diffusion"
    eval_modes: tuple[str, ...] = ("zero_noise",)

    def __init__(self, cfg: DiffusionFinetuneConfig, pretrained_policy: TrainState, obs_dim: int,
                 action_dim: int, clip_actions: bool = False):
        cfg.check()
        policy_net = pretrained_policy.module
        if not isinstance(policy_net, ActionScoreNet):
            raise ValueError(f"{self.name}: the pre-trained policy must be an ActionScoreNet, "
                             f"got {type(policy_net).__name__}")
        if policy_net.action_dim != action_dim:
            raise ValueError(f"{self.name}: policy_net action_dim={policy_net.action_dim} "
                             f"must equal action_dim={action_dim}")
        super().__init__(cfg, obs_dim, action_dim)
        self.cfg, self.pretrained = cfg, pretrained_policy
        self.clip_actions = clip_actions  # the run clips what the env and replay see
        self.policy_net = policy_net
        self.policy_tx = optax.adam(cfg.policy_lr)
        self._act_jit = jax.jit(self._act)
        self._uniform_jit = jax.jit(lambda obs, key: jax.random.uniform(
            key, (obs.shape[0], self.action_dim), obs.dtype, -1.0, 1.0))
        self._zero_noise_jit = jax.jit(lambda state, obs: zero_noise_actions(
            state.policy, obs, self.cfg.diffusion_steps))

    def init(self, key: jax.Array) -> Any:
        """The pre-trained policy (fresh Adam state) and a fresh critic."""
        return PolicyCriticState(policy=self.trainable_policy(), critic=self.fresh_critic(key))

    def act(self, state: Any, observation: jax.Array, key: jax.Array, step: int,
            eval_mode: bool) -> jax.Array:
        """Actions (N, A): one sample, in training and in the paper's evaluation alike (the
        low-noise one is `act_eval`); uniform in the seed phase with `seed_uniform`."""
        obs = jnp.asarray(observation, jnp.float32)
        if self.cfg.seed_uniform and not eval_mode and step < self.learning_starts:
            return self._uniform_jit(obs, key)
        return self._act_jit(state, obs, key)

    def act_eval(self, state: Any, observation: jax.Array, key: jax.Array, mode: str
                 ) -> jax.Array:
        """Actions (N, A) of the evaluation mode `mode` (one of `eval_modes`)."""
        del key  # zero_noise is deterministic
        if mode not in self.eval_modes:
            raise ValueError(f"{self.name}: unknown evaluation mode '{mode}'; valid modes: "
                             f"{', '.join(self.eval_modes)}")
        return self._zero_noise_jit(state, jnp.asarray(observation, jnp.float32))

    # -- what a method writes -----------------------------------------------------------------

    def _act(self, state: Any, obs: jax.Array, key: jax.Array) -> jax.Array:
        """One unguided sample of `state.policy` per state."""
        return sample_actions(state.policy, obs, key, self.cfg.diffusion_steps)

    def critic_step(self, critic: iql.IQLState, policy: TrainState, batch: Batch,
                    key: jax.Array) -> tuple[iql.IQLState, Metrics]:
        """One critic iteration; with `critic.backup="policy"` it bootstraps on one unguided
        sample a' of `policy` at s' (key folded, so the other streams stay as without it)."""
        next_action = None
        if self.cfg.critic.backup == "policy":
            next_action = sample_actions(policy, batch["next_observation"],
                                         jax.random.fold_in(key, 0x5EED), self.cfg.diffusion_steps)
        return iql.update_iql(self.cfg.critic, critic, batch, next_action)

    def fresh_critic(self, key: jax.Array) -> iql.IQLState:
        """A fresh IQL critic; in a clipping run it scores every action at clip(a, -1, 1), the
        action executed and stored, never at a sample beyond the bound it has no data for."""
        return iql.init_iql(self.cfg.critic, key, self.obs_dim, self.action_dim,
                            self.clip_actions)

    def trainable_policy(self) -> TrainState:
        """The pre-trained weights with a fresh optimiser state (the reference's `init_from`)."""
        check_pretrained(self.policy_net, self.pretrained, self.obs_dim, self.action_dim)
        return TrainState.from_params(self.policy_net, self.policy_tx, self.pretrained.params,
                                      self.pretrained.constants)

"""EDP fine-tuning (method `edp`, the reference's `ExDM`): docs/method.md §6.4.

Target policy: pi_new(a|s) proportional to pi_pre(a|s) exp(alpha Q(s, a)), the maximiser of
E_pi[Q] - KL(pi || pi_pre) / alpha. Its time-t score is the pre-trained score plus the gradient
of an intermediate energy, learned by contrastive energy prediction (CEP, QGPO) as the
time-dependent network f_psi(x_t, t, s); "pre-trained score + grad f_psi" is then distilled into
a second diffusion network (a copy of the pre-trained one), which acts with one unguided chain.

One iteration on one batch (s, a, r, discount, s'), in the reference order:
  1. teacher samples: one guided sample per state from the frozen pre-trained policy, guidance
     guidance_scale * grad_x f_psi (15-step DPM-Solver++, no gradient);
  2. distillation step of the fine-tuned net at x_t ~ teacher sample:
     mean_batch sum_dims sigma_t (s_ft(x_t, t, s) - [s_pre + guidance](x_t, t, s))^2, the
     target computed with the pre-trained net in train mode (dropout on, as the reference);
  3. CEP negatives: M unguided samples per state from the (just-updated) fine-tuned net;
  4. IQL critic step (edp.finetune.iql);
  5. CEP step of f_psi with labels softmax_j(alpha min-twin q0_target(s, a_j)).
Acting samples the fine-tuned net without guidance (docs/architecture.md §4, decision 3).

Label sharpness (beyond the paper, `standardise_q`; on under the `fast` preset, with alpha 10).
softmax(alpha Q) depends on the scale of Q, i.e. of the reward and of the discount: a critic
whose Q varies by ~1 over a state's candidates (walker, benchmarks/finetune/README.md) gives
nearly uniform labels at the reference's alpha = 3, and the target pi_pre exp(alpha Q) is then
pi_pre. With the option, the labels are softmax_j(alpha z_j), z_j = (Q_j - mean_k Q_k) / (std_k
Q_k + 1e-6) over the state's M candidates: invariant to any affine change of Q with a positive
factor, so alpha sets the tilt in units of the state's own Q spread whatever the reward scale
(the target is then pi_pre exp(alpha Q / sigma_Q(s)) up to the mean, a per-state temperature,
with sigma_Q estimated on the negatives).

Moving prior (beyond the paper, `anchor_ema`; on under the `fast` preset, 1/5000). The target
pi_pre exp(alpha Q) is one tilt of the pre-trained policy: however good Q gets, the fine-tuned
policy cannot become narrower than "the best of pi_pre's samples", and a pre-trained policy
fitted to all exploration data is broad (walker: action std 0.26-0.36 per dimension,
benchmarks/finetune/README.md). With `anchor_ema` > 0 the teachers' prior is an exponential
moving average of the fine-tuned weights, so the iteration tilts the policy it has reached,
pi_{k+1} ~ pi_k exp(alpha Q): policy mirror descent with the KL to the recent policy as its
trust region, whose tilts compound (on the bandit of tests/test_finetune_methods.py the right-
mode mass passes the single tilt's 0.81). With `negatives_from="finetuned"` the reference's CEP
also becomes nearly exact, since the prior and the negatives' policy then nearly coincide.

Resampled teachers (beyond the paper, `teacher="resampled"`). On walker the guided teachers
gain little Q over the negatives (0.1 against a spread of 0.6 per state) although the labels
are nearly one-hot, and the CEP loss stays ~0.3 nats below uniform: is the energy's fit what
limits the tilt? Resampling M prior samples with probabilities softmax(alpha Q) draws from
pi_prior exp(alpha Q) without an energy (self-normalised importance sampling, exact as M
grows), so comparing the two measures what the learned guidance loses. Measured: its teachers
do gain 1.5 Q-spreads, yet the policy improves less than with guidance
(benchmarks/finetune/README.md): the critic's ranking of a state's candidates, not the energy,
is the limit.

Negatives (docs/method.md §6.4). CEP learns f_t(x) = log E[exp(alpha Q(a_0)) | x_t = x]
under the law the negatives come from, and that is the right guidance for the pre-trained score
only if the negatives come from pi_pre. The reference draws them from the fine-tuned policy (the
default, `negatives_from="finetuned"`): exact at the start, where the two policies coincide, but
its fixed point is not pi_pre exp(alpha Q). Integrating the probability-flow ODE with exact scores
and energies on a two-mode bandit (modes +-0.6, std 0.1, Q = 0.4 a, alpha 3) gives a right-mode
mass of 0.81 for the target, 0.81 after the first round of the reference's iteration, and a
fixed point of 0.75 after that (damped oscillation). `negatives_from="pretrained"` is exact
CEP (QGPO) at the same cost; tests/test_finetune_methods.py checks it reaches the target.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import ClassVar, Literal

import jax
import jax.numpy as jnp
import optax
from flax import struct

from edp import diffusion
from edp.agents.base import Batch, Metrics
from edp.finetune import iql
from edp.finetune.common import (
    DiffusionFinetuneAgent,
    DiffusionFinetuneConfig,
    policy_dsm_step,
    sample_actions,
)
from edp.networks import GuidanceEnergy
from edp.score_models import score_fn
from edp.train_state import TrainState

NEGATIVE_SOURCES = ("finetuned", "pretrained")
TEACHERS = ("guided", "resampled")
QFn = Callable[[jax.Array, jax.Array], jax.Array]  # (obs (..., S), action (..., A)) -> (...)


@dataclasses.dataclass(frozen=True)
class EDPFinetuneConfig(DiffusionFinetuneConfig):
    """EDP fine-tuning: IQL critic, CEP energy, distillation into a copy of the policy."""

    method: ClassVar[str] = "edp"

    alpha: float = 3.0
    """Inverse temperature of the target pi_pre * exp(alpha Q): the CEP label sharpness."""
    guidance_scale: float = 1.0
    """Multiplier of grad_x f_psi added to the pre-trained score (teachers and targets)."""
    num_negatives: int = 32
    """M: unguided samples per state of the fine-tuned policy contrasted by CEP."""
    energy_hidden_dim: int = 256
    """Width of the hidden layers of the energy network f_psi."""
    energy_layers: int = 4
    """Hidden layers of the energy network f_psi."""
    energy_lr: float = 3e-4
    """Adam learning rate of the energy network f_psi."""
    negatives_from: Literal["finetuned", "pretrained"] = "finetuned"
    """Policy sampling the CEP negatives: `finetuned` (the reference) or `pretrained` (exact
    CEP for the guided pre-trained score; see the module docstring)."""
    standardise_q: bool = False
    """Beyond the paper: standardise Q per state over its M candidates before the CEP softmax,
    so that alpha does not depend on the reward's scale (see the module docstring)."""
    teacher: Literal["guided", "resampled"] = "guided"
    """`guided`: the paper's teachers, the prior's chain guided by grad f_psi, distilled at the
    guided score. `resampled` (beyond the paper): one of M prior samples per state, drawn with
    the CEP labels as probabilities, distilled by denoising score matching; no energy
    (docs/decisions.md, fine-tuning)."""
    anchor_ema: float = 0.0
    """Beyond the paper: after every iteration the teachers' prior moves toward the fine-tuned
    policy, theta_prior <- (1 - anchor_ema) theta_prior + anchor_ema theta_ft, so that the target
    keeps tilting the improved policy (docs/decisions.md, fine-tuning); 0 keeps pi_pre (the
    paper)."""

    def rules(self) -> list[tuple[str, bool, str]]:
        return super().rules() + [
            ("alpha", self.alpha > 0, "> 0"),
            ("guidance_scale", self.guidance_scale >= 0, ">= 0"),
            ("num_negatives", self.num_negatives >= 2, ">= 2"),
            ("energy_hidden_dim", self.energy_hidden_dim >= 1, ">= 1"),
            ("energy_layers", self.energy_layers >= 1, ">= 1"),
            ("energy_lr", self.energy_lr > 0, "> 0"),
            ("negatives_from", self.negatives_from in NEGATIVE_SOURCES,
             f"one of {', '.join(NEGATIVE_SOURCES)}"),
            ("teacher", self.teacher in TEACHERS, f"one of {', '.join(TEACHERS)}"),
            ("anchor_ema", 0 <= self.anchor_ema <= 1, "in [0, 1]"),
        ]


class EDPFinetuneState(struct.PyTreeNode):
    pretrained: TrainState  # frozen pre-trained policy (no optimiser state)
    policy: TrainState  # the fine-tuned copy: the acting policy
    energy: TrainState  # f_psi
    critic: iql.IQLState


# ---------------------------------------------------------------------------------------------
# Pure pieces


def energy_guidance(energy: TrainState, scale: float) -> diffusion.GuidanceFn:
    """g(x, t, s) = scale * grad_x f_psi(x, t, s), detached from psi."""
    params = jax.lax.stop_gradient(energy.params)

    def fn(x, t, cond):
        grad = jax.grad(lambda x_: energy.apply(x_, t, cond, params=params).sum())(x)
        return scale * grad

    return fn


STANDARDISE_EPS = 1e-6  # keeps the labels uniform where a state's candidates tie in Q


def cep_labels(q_values: jax.Array, alpha: float, standardise: bool = False) -> jax.Array:
    """softmax_j(alpha q_ij), or of alpha (q_ij - mean_j) / (std_j + eps); (B, M), no gradient."""
    q = jax.lax.stop_gradient(q_values)
    if standardise:
        q = (q - q.mean(axis=-1, keepdims=True)) / (q.std(axis=-1, keepdims=True)
                                                     + STANDARDISE_EPS)
    return jax.nn.softmax(alpha * q, axis=-1)


def cep_loss(logits: jax.Array, q_values: jax.Array, alpha: float, standardise: bool = False
             ) -> jax.Array:
    """-mean_i sum_j label_ij log_softmax_j(logits_ij) with `cep_labels`; inputs (B, M)."""
    labels = cep_labels(q_values, alpha, standardise)
    return -jnp.mean(jnp.sum(labels * jax.nn.log_softmax(logits, axis=-1), axis=-1))


def label_metrics(labels: jax.Array, q_values: jax.Array) -> Metrics:
    """How sharp the CEP labels are and how much Q varies over a state's candidates; (B, M)."""
    return {"cep_label_max": labels.max(axis=-1).mean(),
            "negative_q_std": q_values.std(axis=-1).mean()}


def distillation_loss(student: jax.Array, target: jax.Array, sigma: jax.Array) -> jax.Array:
    """mean_batch sum_dims sigma_t (student - target)^2 (weight sigma_t, docs/method.md §6.4)."""
    return jnp.mean(sigma * jnp.sum((student - target) ** 2, axis=-1))


# ---------------------------------------------------------------------------------------------
# The method


class EDPFinetuneAgent(DiffusionFinetuneAgent):
    """EDP diffusion-policy fine-tuning.

    `q_fn`, if given, replaces the learned critic as the source of the CEP labels (a known
    Q(s, a), e.g. a bandit's reward); the IQL critic is then not trained.
    """

    name = "edp"

    def __init__(self, cfg: EDPFinetuneConfig, pretrained_policy: TrainState, obs_dim: int,
                 action_dim: int, clip_actions: bool = False, q_fn: QFn | None = None):
        super().__init__(cfg, pretrained_policy, obs_dim, action_dim, clip_actions)
        self.energy_net = GuidanceEnergy(cfg.energy_hidden_dim, cfg.energy_layers)
        self.energy_tx = optax.adam(cfg.energy_lr)
        self.q_fn = q_fn

    def init(self, key: jax.Array) -> EDPFinetuneState:
        """Frozen pre-trained policy, its trainable copy, fresh energy and critic."""
        policy = self.trainable_policy()
        k_energy, k_critic = jax.random.split(key)
        energy = TrainState.create(
            self.energy_net, self.energy_tx, k_energy, jnp.zeros((1, self.action_dim)),
            jnp.zeros((1,)), jnp.zeros((1, self.obs_dim)))
        return EDPFinetuneState(
            pretrained=TrainState.from_params(self.policy_net, None, self.pretrained.params,
                                              self.pretrained.constants),
            policy=policy, energy=energy,
            critic=self.fresh_critic(k_critic))

    def guidance(self, energy: TrainState) -> diffusion.GuidanceFn:
        return energy_guidance(energy, self.cfg.guidance_scale)

    def teacher_samples(self, state: EDPFinetuneState, obs: jax.Array, key: jax.Array
                        ) -> jax.Array:
        """One guided sample per state from the frozen pre-trained policy: (B, A)."""
        return sample_actions(state.pretrained, obs, key, self.cfg.diffusion_steps,
                              guidance_fn=self.guidance(state.energy))

    def distill_step(self, state: EDPFinetuneState, obs: jax.Array, teacher: jax.Array,
                     key: jax.Array) -> tuple[TrainState, jax.Array]:
        """One Adam step of the fine-tuned net toward s_pre + guidance at noisy teachers."""
        k_t, k_z, k_pre, k_ft = jax.random.split(key, 4)
        t = diffusion.sample_train_times(k_t, (obs.shape[0],))
        x_t = diffusion.perturb(teacher, t, jax.random.normal(k_z, teacher.shape))
        sigma = diffusion.alpha_sigma(t)[1]
        pre = score_fn(state.pretrained, k_pre)  # train mode: dropout on, as the reference
        target = jax.lax.stop_gradient(pre(x_t, t, obs) + self.guidance(state.energy)(x_t, t, obs))

        def loss_fn(params):
            student = score_fn(state.policy, k_ft, params)(x_t, t, obs)
            return distillation_loss(student, target, sigma), None

        policy, step = state.policy.apply_loss_fn(loss_fn)
        return policy, step.loss

    def resampled_teachers(self, state: EDPFinetuneState, critic: iql.IQLState, obs: jax.Array,
                           key: jax.Array) -> tuple[jax.Array, Metrics]:
        """One of M prior samples per state, index ~ the CEP labels: teachers (B, A), and the
        statistics of the candidates' labels and Q and of the teachers' Q."""
        k_cand, k_pick = jax.random.split(key)
        candidates = sample_actions(state.pretrained, obs, k_cand, self.cfg.diffusion_steps,
                                    num_samples=self.cfg.num_negatives)
        q_values = self.label_q(critic, obs, candidates)
        labels = cep_labels(q_values, self.cfg.alpha, self.cfg.standardise_q)
        pick = jax.random.categorical(k_pick, jnp.log(labels), axis=-1)[:, None]
        teacher = jnp.take_along_axis(candidates, pick[..., None], axis=1)[:, 0]
        teacher_q = jnp.take_along_axis(q_values, pick, axis=1)[:, 0]
        return teacher, {**label_metrics(labels, q_values), "teacher_q": teacher_q.mean(),
                         "negative_q": q_values.mean()}

    def negatives(self, state: EDPFinetuneState, obs: jax.Array, key: jax.Array) -> jax.Array:
        """M unguided samples per state, (B, M, A), from the fine-tuned policy (reference) or
        the pre-trained one (`negatives_from`)."""
        net = state.policy if self.cfg.negatives_from == "finetuned" else state.pretrained
        return sample_actions(net, obs, key, self.cfg.diffusion_steps,
                              num_samples=self.cfg.num_negatives)

    def label_q(self, critic: iql.IQLState, obs: jax.Array, actions: jax.Array) -> jax.Array:
        """Q values behind the CEP labels: min-twin q0_target, or the injected q_fn."""
        obs_rep = jnp.broadcast_to(obs[:, None], actions.shape[:2] + obs.shape[-1:])
        if self.q_fn is not None:
            return jax.lax.stop_gradient(self.q_fn(obs_rep, actions))
        return jax.lax.stop_gradient(iql.q_min(critic.q, obs_rep, actions, critic.q_target))

    def cep_step(self, energy: TrainState, obs: jax.Array, negatives: jax.Array,
                 q_values: jax.Array, key: jax.Array) -> tuple[TrainState, Metrics]:
        """One Adam step of CEP; one diffusion time per state, shared by its M negatives."""
        batch, m, _ = negatives.shape
        k_t, k_z = jax.random.split(key)
        t = diffusion.sample_train_times(k_t, (batch,))
        t_rep = jnp.broadcast_to(t[:, None], (batch, m))
        x_t = diffusion.perturb(negatives, t_rep, jax.random.normal(k_z, negatives.shape))
        obs_rep = jnp.broadcast_to(obs[:, None], (batch, m, obs.shape[-1]))

        def loss_fn(params):
            logits = energy.apply(x_t, t_rep, obs_rep, params=params)
            return cep_loss(logits, q_values, self.cfg.alpha, self.cfg.standardise_q), None

        energy, step = energy.apply_loss_fn(loss_fn)
        labels = cep_labels(q_values, self.cfg.alpha, self.cfg.standardise_q)
        return energy, {"cep_loss": step.loss, **label_metrics(labels, q_values)}

    def _update_once(self, state: EDPFinetuneState, batch: Batch, key: jax.Array
                     ) -> tuple[EDPFinetuneState, Metrics]:
        if self.cfg.teacher == "resampled":
            return self._update_resampled(state, batch, key)
        k_teacher, k_distill, k_neg, k_cep = jax.random.split(key, 4)
        obs = batch["observation"]
        teacher = self.teacher_samples(state, obs, k_teacher)
        policy, distill_loss = self.distill_step(state, obs, teacher, k_distill)
        negatives = self.negatives(state.replace(policy=policy), obs, k_neg)
        critic, metrics = state.critic, {}
        if self.q_fn is None:
            critic, metrics = self.critic_step(critic, policy, batch, key)
        q_values = self.label_q(critic, obs, negatives)
        energy, cep_metrics = self.cep_step(state.energy, obs, negatives, q_values, k_cep)
        metrics.update(cep_metrics, distill_loss=distill_loss,
                       teacher_q=self.label_q(critic, obs, teacher[:, None])[:, 0].mean(),
                       negative_q=q_values.mean())
        return state.replace(pretrained=self.moved_anchor(state.pretrained, policy),
                             policy=policy, energy=energy, critic=critic), metrics

    def _update_resampled(self, state: EDPFinetuneState, batch: Batch, key: jax.Array
                          ) -> tuple[EDPFinetuneState, Metrics]:
        """Critic step, resampled teachers under the new critic, one DSM step toward them."""
        k_teacher, k_distill = jax.random.split(key)
        obs = batch["observation"]
        critic, metrics = state.critic, {}
        if self.q_fn is None:
            critic, metrics = self.critic_step(critic, state.policy, batch, key)
        teacher, teacher_metrics = self.resampled_teachers(state, critic, obs, k_teacher)
        policy, dsm = policy_dsm_step(state.policy, teacher, obs, k_distill)
        metrics.update(teacher_metrics, distill_loss=dsm["bc_loss"])
        return state.replace(pretrained=self.moved_anchor(state.pretrained, policy),
                             policy=policy, critic=critic), metrics

    def moved_anchor(self, anchor: TrainState, policy: TrainState) -> TrainState:
        """The teachers' prior after one iteration: pi_pre (the paper), or `anchor_ema` of the
        way toward the fine-tuned policy's weights."""
        if self.cfg.anchor_ema == 0:
            return anchor
        return anchor.replace(params=optax.incremental_update(policy.params, anchor.params,
                                                              self.cfg.anchor_ema))

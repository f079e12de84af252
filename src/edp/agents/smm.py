"""SMM: state marginal matching with latent skills (docs/baselines.md §6).

Skills are one-hot of size z_dim, drawn uniformly at every episode reset and held for the
whole episode, in pre-training and fine-tuning alike (the reference's inverted best-skill
search is unreachable, docs/baselines.md §6); the actor and critic see [s, z]. Each
iteration, on the batch's current states s (not s+) and skills z:
  1. one Adam step (lr vae_lr) of a VAE over x = [s, z] (encoder Lin -> ReLU -> Lin -> ReLU to
     mu and logvar, decoder code -> Lin -> ReLU -> Lin -> ReLU -> Lin back to x; it rebuilds the
     skill too) on vae_beta * KL + mean squared reconstruction error;
  2. one Adam step (lr sp_lr) of the discriminator q(z | s) on the cross-entropy against
     argmax z;
  3. reward from the *pre-update* forward passes of those steps (the same VAE noise):
     r = state_ent_coef * h(s|z) + latent_ent_coef * log z_dim + latent_cond_ent_coef * h(z|s),
     h(s|z) = the summed squared reconstruction error of [s, z] (high where the density model
     of the skill's states fits poorly) and h(z|s) = -log q(z | s) (high where the
     discriminator cannot tell which skill reached s: the reference *adds* the cross-entropy,
     as the original SMM code; there is no target-density term);
  4. the DDPG iteration with r on [s, z] and [s+, z].
Fine-tuning: base init; the VAE and discriminator are idle.
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
from edp.agents.diayn import skill_log_prob
from edp.agents.modules import OrthMLP, orth_dense
from edp.agents.skills import SkillAgent, SkillSchedule
from edp.train_state import TrainState


@dataclasses.dataclass(frozen=True)
class SMMConfig:
    """SMM's skills, VAE density model and skill discriminator (the DDPG backbone has its own
    group)."""

    z_dim: int = 4
    """Number of skills (one-hot vectors of this size, one per episode)."""
    hidden_dim: int = 1024
    """Width of the discriminator's two hidden layers."""
    vae_hidden_dim: int = 150
    """Width of the VAE's hidden layers (hard-coded 150 in the reference)."""
    code_dim: int = 128
    """Width of the VAE's latent code (hard-coded 128 in the reference)."""
    sp_lr: float = 1e-3
    """Adam learning rate of the discriminator."""
    vae_lr: float = 1e-2
    """Adam learning rate of the VAE."""
    vae_beta: float = 0.5
    """Weight of the KL term in the VAE loss."""
    state_ent_coef: float = 1.0
    """Weight of the reconstruction error h(s|z) in the reward."""
    latent_ent_coef: float = 1.0
    """Weight of the skill entropy log z_dim in the reward."""
    latent_cond_ent_coef: float = 1.0
    """Weight of the discriminator's cross-entropy h(z|s) in the reward."""

    def check(self) -> None:
        check_fields("smm", self, [
            ("z_dim", self.z_dim >= 2, ">= 2"),
            ("hidden_dim", self.hidden_dim >= 1, ">= 1"),
            ("vae_hidden_dim", self.vae_hidden_dim >= 1, ">= 1"),
            ("code_dim", self.code_dim >= 1, ">= 1"),
            ("sp_lr", self.sp_lr > 0, "> 0"),
            ("vae_lr", self.vae_lr > 0, "> 0"),
            ("vae_beta", self.vae_beta >= 0, ">= 0")])


class VAE(nn.Module):
    """x -> (reconstruction, mu, logvar) with code = mu + eps * exp(logvar / 2); orth init."""

    out_dim: int
    hidden_dim: int
    code_dim: int

    @nn.compact
    def __call__(self, x: jax.Array, eps: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        h = nn.relu(OrthMLP((self.hidden_dim,), self.hidden_dim, name="encoder")(x))
        mu = orth_dense(self.code_dim)(h)
        logvar = orth_dense(self.code_dim)(h)
        code = mu + eps * jnp.exp(0.5 * logvar)
        recon = OrthMLP((self.hidden_dim, self.hidden_dim), self.out_dim, name="decoder")(code)
        return recon, mu, logvar


class SMMState(struct.PyTreeNode):
    backbone: ddpg.DDPGState
    vae: TrainState
    discriminator: TrainState


class SMMAgent(SkillAgent):
    name = "smm"
    config = SMMConfig
    config_help = ("SMM: one-hot skill per episode; reward "
                   "VAE error + skill entropy + discriminator CE.")
    fast = dict(hidden_dim=128)

    def __init__(self, cfg: SMMConfig, backbone: ddpg.DDPGConfig, obs_dim: int, action_dim: int):
        cfg.check()
        self.cfg = cfg
        super().__init__(SkillSchedule(cfg.z_dim, "one_hot", every=0), backbone, obs_dim,
                         action_dim)
        self.vae = VAE(obs_dim + cfg.z_dim, cfg.vae_hidden_dim, cfg.code_dim)
        self.discriminator = OrthMLP((cfg.hidden_dim, cfg.hidden_dim), cfg.z_dim)
        self.vae_tx, self.disc_tx = optax.adam(cfg.vae_lr), optax.adam(cfg.sp_lr)
        self.reward_terms = jax.jit(self._reward_terms)

    def init(self, key: jax.Array) -> SMMState:
        k_backbone, k_vae, k_disc = jax.random.split(key, 3)
        x = jnp.zeros((1, self.obs_dim + self.cfg.z_dim))
        return SMMState(
            backbone=self.init_backbone(k_backbone),
            vae=TrainState.create(self.vae, self.vae_tx, k_vae, x,
                                  jnp.zeros((1, self.cfg.code_dim))),
            discriminator=TrainState.create(self.discriminator, self.disc_tx, k_disc,
                                            jnp.zeros((1, self.obs_dim))))

    def vae_loss(self, params, x: jax.Array, eps: jax.Array) -> tuple[jax.Array, jax.Array]:
        """vae_beta * mean KL + mean squared error; aux h(s|z) (B,), the summed error."""
        recon, mu, logvar = self.vae.apply({"params": params}, x, eps)
        kl = -0.5 * jnp.sum(1 + logvar - mu**2 - jnp.exp(logvar), axis=-1).mean()
        squared = (recon - x) ** 2
        return self.cfg.vae_beta * kl + squared.mean(), squared.sum(-1)

    def discriminator_loss(self, params, obs: jax.Array, skill: jax.Array
                           ) -> tuple[jax.Array, jax.Array]:
        """Mean cross-entropy of q(z | s); aux h(z|s) (B,), the per-sample cross-entropy."""
        logits = self.discriminator.apply({"params": params}, obs)
        cross_entropy = -skill_log_prob(logits, skill)
        return cross_entropy.mean(), cross_entropy

    def reward(self, h_sz: jax.Array, h_zs: jax.Array) -> jax.Array:
        cfg = self.cfg
        return (cfg.state_ent_coef * h_sz + cfg.latent_ent_coef * jnp.log(cfg.z_dim)
                + cfg.latent_cond_ent_coef * h_zs)

    def _reward_terms(self, state: SMMState, obs: jax.Array, skill: jax.Array, key: jax.Array
                      ) -> tuple[jax.Array, jax.Array, jax.Array]:
        """(r, h(s|z), h(z|s)), each (B,), under the current networks with VAE noise from
        `key`; public as the jitted `reward_terms`."""
        eps = jax.random.normal(key, (obs.shape[0], self.cfg.code_dim))
        x = jnp.concatenate([obs, skill], axis=-1)
        h_sz = self.vae_loss(state.vae.params, x, eps)[1]
        h_zs = self.discriminator_loss(state.discriminator.params, obs, skill)[1]
        return self.reward(h_sz, h_zs), h_sz, h_zs

    def _update_once(self, state: SMMState, batch: Batch, key: jax.Array
                     ) -> tuple[SMMState, Metrics]:
        k_eps, k_backbone = jax.random.split(key)
        obs, skill = batch["observation"], batch["meta"]
        x = jnp.concatenate([obs, skill], axis=-1)
        eps = jax.random.normal(k_eps, (obs.shape[0], self.cfg.code_dim))
        vae, vae_step = state.vae.apply_loss_fn(lambda p: self.vae_loss(p, x, eps))
        disc, disc_step = state.discriminator.apply_loss_fn(
            lambda p: self.discriminator_loss(p, obs, skill))
        h_sz, h_zs = vae_step.aux, disc_step.aux
        reward = self.reward(h_sz, h_zs)  # pre-update values (reference)
        backbone, metrics = self.backbone_step(state.backbone, batch, reward, k_backbone)
        return SMMState(backbone, vae, disc), {
            **metrics, "smm_vae_loss": vae_step.loss, "smm_discriminator_loss": disc_step.loss,
            "smm_h_sz": h_sz.mean(), "smm_h_zs": h_zs.mean()}

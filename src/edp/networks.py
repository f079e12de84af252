"""Flax modules of the diffusion side of EDP (docs/method.md §3).

Initialisation: every Dense layer here uses PyTorch's nn.Linear default (kernel and bias
~ U(-1/sqrt(fan_in), 1/sqrt(fan_in))), because the reference nets are plain nn.Linear and the
init scale changes early training; LayerNorm uses PyTorch's epsilon 1e-5.

Fixed Fourier frequencies live in the `constants` collection, not in `params`: the optimiser
only ever sees `variables["params"]`, so the frequencies cannot move (not even through weight
decay), while checkpoints that store the whole variables dict keep them. Apply a net with
`{"params": params, "constants": constants}`; `init` returns both collections.

Networks whose output is one number per input return shape (...,) (no trailing 1).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

MISH_LINEAR_FROM = 20.0  # beyond it mish(x) = x to float32 precision; keeps exp finite


def mish(x: jax.Array) -> jax.Array:
    """x * tanh(softplus(x)), the reference's activation in the score nets, written with one
    exp: tanh(log(1 + e)) = n / (n + 2) with n = e (e + 2), e = exp(x). A quarter faster than
    jax.nn.mish's exp + log1p + tanh on the CPU, where it is a large share of a score net."""
    e = jnp.exp(jnp.minimum(x, MISH_LINEAR_FROM))
    n = e * (e + 2.0)
    return x * (n / (n + 2.0))


def torch_uniform(fan_in: int) -> Callable:
    """Initialiser U(-1/sqrt(fan_in), 1/sqrt(fan_in)): PyTorch's nn.Linear default."""
    bound = 1.0 / math.sqrt(fan_in)

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


class TorchDense(nn.Module):
    """Affine layer initialised like PyTorch's nn.Linear (bias init needs fan_in, unlike Dense)."""

    features: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        init = torch_uniform(x.shape[-1])
        kernel = self.param("kernel", init, (x.shape[-1], self.features))
        bias = self.param("bias", init, (self.features,))
        return x @ kernel + bias


class FourierTimeEmbedding(nn.Module):
    """Gaussian Fourier features [sin(2 pi t W), cos(2 pi t W)], W ~ N(0, scale^2) fixed.

    W is drawn from the `params` RNG at init and stored in the `constants` collection.
    t (...,) -> (..., embed_dim).
    """

    embed_dim: int
    scale: float = 30.0

    @nn.compact
    def __call__(self, t: jax.Array) -> jax.Array:
        w = self.variable(
            "constants", "W",
            lambda: self.scale * jax.random.normal(self.make_rng("params"), (self.embed_dim // 2,)),
        ).value
        proj = 2.0 * jnp.pi * t[..., None] * w
        return jnp.concatenate([jnp.sin(proj), jnp.cos(proj)], axis=-1)


class MLP(nn.Module):
    """Plain MLP: hidden layers with `activation`, linear output layer."""

    hidden_dims: Sequence[int]
    out_dim: int
    activation: Callable = nn.relu

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        for width in self.hidden_dims:
            x = self.activation(TorchDense(width)(x))
        return TorchDense(self.out_dim)(x)


class MLPResNet(nn.Module):
    """IDQL-style residual MLP (docs/method.md §3.3): in-projection, pre-LN blocks, Mish,
    out-projection.

    Block: Dropout -> LayerNorm -> Dense(expansion * hidden) -> Mish -> Dense(hidden), added to
    the block input. Dropout is active only with `train=True` (needs a 'dropout' RNG).
    """

    out_dim: int
    hidden_dim: int = 256
    num_blocks: int = 3
    expansion: int = 4
    dropout_rate: float = 0.1

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        x = TorchDense(self.hidden_dim)(x)
        for _ in range(self.num_blocks):
            h = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
            h = nn.LayerNorm(epsilon=1e-5)(h)
            h = TorchDense(self.hidden_dim * self.expansion)(h)
            x = x + TorchDense(self.hidden_dim)(mish(h))
        return TorchDense(self.out_dim)(mish(x))


class ScoreTimeCode(nn.Module):
    """Time code of both score nets: Fourier(64) -> Dense(128) -> Mish -> Dense(128)."""

    embed_dim: int = 64
    features: int = 128

    @nn.compact
    def __call__(self, t: jax.Array) -> jax.Array:
        h = mish(TorchDense(self.features)(FourierTimeEmbedding(self.embed_dim)(t)))
        return TorchDense(self.features)(h)


def _time_coded_resnet(net: nn.Module, out_dim: int, x: jax.Array, t: jax.Array,
                       conditions: tuple, train: bool) -> jax.Array:
    """The body both score nets share: MLPResNet on concat[x, *conditions, time code]. Called
    inside a score net's compact __call__, so its layers are that net's own (same names)."""
    code = ScoreTimeCode(net.time_embed_dim, net.time_dim)(t)
    resnet = MLPResNet(out_dim, net.hidden_dim, net.num_blocks, dropout_rate=net.dropout_rate)
    return resnet(jnp.concatenate([x, *conditions, code], axis=-1), train)


class StateScoreNet(nn.Module):
    """Score s_phi(x_t, t) of the state-visitation distribution (docs/method.md §3.3):
    (..., S) -> (..., S).

    Input order: concat[x_t, time code].
    """

    obs_dim: int
    hidden_dim: int = 256
    num_blocks: int = 3
    dropout_rate: float = 0.1
    time_embed_dim: int = 64
    time_dim: int = 128

    @nn.compact
    def __call__(self, x: jax.Array, t: jax.Array, train: bool = False) -> jax.Array:
        return _time_coded_resnet(self, self.obs_dim, x, t, (), train)


class ActionScoreNet(nn.Module):
    """Diffusion policy score s_theta(a_t, t | s) (docs/method.md §3.4): (..., A) -> (..., A).

    Input order: concat[noisy action, state, time code].
    """

    action_dim: int
    hidden_dim: int = 256
    num_blocks: int = 3
    dropout_rate: float = 0.1
    time_embed_dim: int = 64
    time_dim: int = 128

    @nn.compact
    def __call__(self, x: jax.Array, t: jax.Array, state: jax.Array,
                 train: bool = False) -> jax.Array:
        return _time_coded_resnet(self, self.action_dim, x, t, (state,), train)


class GuidanceEnergy(nn.Module):
    """Time-dependent energy f_psi(x_t, t, s) (GuidanceQt, docs/method.md §3.5): returns (...,).

    Time code Fourier(32, scale 30) -> Dense(32) (no activation); SiLU MLP on
    concat[x_t, time code, state]. Its x-gradient is the sampler's guidance.
    """

    hidden_dim: int = 256
    num_layers: int = 4
    time_embed_dim: int = 32

    @nn.compact
    def __call__(self, x: jax.Array, t: jax.Array, state: jax.Array) -> jax.Array:
        code = TorchDense(self.time_embed_dim)(FourierTimeEmbedding(self.time_embed_dim)(t))
        mlp = MLP([self.hidden_dim] * self.num_layers, 1, nn.silu)
        return mlp(jnp.concatenate([x, code, state], axis=-1))[..., 0]


class TwinQ(nn.Module):
    """Two independent ReLU MLPs Q(s, a) on concat[action, state]; returns (q1, q2).

    `clip_actions`: Q(s, a) = Q(s, clip(a, -1, 1)), the value of the action the env executes,
    for runs whose replay holds only clipped actions: beyond the bound the network would
    extrapolate from data it never saw (docs/decisions.md, --clip-actions)."""

    hidden_dim: int = 256
    num_layers: int = 2
    clip_actions: bool = False

    @nn.compact
    def __call__(self, action: jax.Array, state: jax.Array) -> tuple[jax.Array, jax.Array]:
        if self.clip_actions:
            action = jnp.clip(action, -1.0, 1.0)
        x = jnp.concatenate([action, state], axis=-1)
        hidden = [self.hidden_dim] * self.num_layers
        return MLP(hidden, 1)(x)[..., 0], MLP(hidden, 1)(x)[..., 0]


class ValueMLP(nn.Module):
    """IQL state value V(s): ReLU MLP [S -> 256 -> 256 -> 1]; returns (...,)."""

    hidden_dim: int = 256
    num_layers: int = 2

    @nn.compact
    def __call__(self, state: jax.Array) -> jax.Array:
        return MLP([self.hidden_dim] * self.num_layers, 1)(state)[..., 0]

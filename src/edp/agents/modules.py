"""Building blocks shared by the URL baseline agents (docs/baselines.md §0).

Every extra network of the baselines is an orth-init MLP (URLB `weight_init`: orthogonal weights
with gain 1, zero biases), except the Disagreement ensemble (`edp.networks.MLP`, PyTorch's
default init). Norms and normalisations here behave like PyTorch's at zero, where a plain
`jnp.linalg.norm` would give a NaN gradient.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from edp.agents.ddpg import _dense as orth_dense  # one definition of URLB's weight_init


class OrthMLP(nn.Module):
    """Orth-init MLP: Lin -> ReLU per hidden width, then Lin(out_dim) with no activation."""

    hidden_dims: Sequence[int]
    out_dim: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        for width in self.hidden_dims:
            x = nn.relu(orth_dense(width)(x))
        return orth_dense(self.out_dim)(x)


def safe_norm(x: jax.Array, axis: int = -1) -> jax.Array:
    """L2 norm along `axis` whose gradient at the zero vector is 0 (PyTorch's), not NaN."""
    sq = jnp.sum(x**2, axis=axis)
    positive = sq > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, sq, 1.0)), 0.0)


def l2_normalize(x: jax.Array, axis: int = -1) -> jax.Array:
    """x / max(||x||, 1e-12) along `axis` (PyTorch `F.normalize`)."""
    return x / jnp.maximum(jnp.expand_dims(safe_norm(x, axis), axis), 1e-12)

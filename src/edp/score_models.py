"""The score-function adapter and the denoising step of score networks (`TrainState`s), shared by
pre-training and fine-tuning.

`StateScoreNet` is called as (x, t) and `ActionScoreNet` as (x, t, state); `score_fn` hides the
difference behind the `ScoreFn` signature (x, t, cond) of `edp.diffusion`.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from edp import diffusion
from edp.networks import ActionScoreNet
from edp.train_state import TrainState


def score_fn(net: TrainState, dropout_key: jax.Array | None, params: Any = None
             ) -> diffusion.ScoreFn:
    """ScoreFn of a score net (at `params` if given); a dropout key turns train mode (dropout
    active) on."""
    train = dropout_key is not None
    rngs = {"dropout": dropout_key} if train else {}
    conditional = isinstance(net.module, ActionScoreNet)

    def fn(x, t, cond):
        if conditional:
            return net.apply(x, t, cond, params=params, train=train, rngs=rngs)
        return net.apply(x, t, params=params, train=train, rngs=rngs)

    return fn


def dsm_update(net: TrainState, x0: jax.Array, cond: jax.Array | None, key: jax.Array
               ) -> tuple[TrainState, jax.Array]:
    """One Adam step of the denoising score-matching loss (train mode, as the reference)."""
    k_loss, k_drop = jax.random.split(key)

    def loss_fn(params):
        fn = score_fn(net, k_drop, params)
        return diffusion.dsm_loss_per_sample(fn, x0, k_loss, cond).mean(), None

    net, step = net.apply_loss_fn(loss_fn)
    return net, step.loss


def example_inputs(dim: int, cond_dim: int | None = None) -> tuple[jax.Array, ...]:
    """Dummy inputs to initialise a score net of data dim `dim` (and condition dim)."""
    x, t = jnp.zeros((1, dim)), jnp.zeros((1,))
    return (x, t) if cond_dim is None else (x, t, jnp.zeros((1, cond_dim)))

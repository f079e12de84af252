"""Trainable score networks as values: parameters, fixed constants and optimiser state together,
with the score-function adapters and the denoising step shared by pre-training and fine-tuning.

`StateScoreNet` is called as (x, t) and `ActionScoreNet` as (x, t, state); `score_fn` hides the
difference behind the `ScoreFn` signature (x, t, cond) of `edp.diffusion`.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax import struct

from edp import diffusion
from edp.networks import ActionScoreNet


class TrainedNet(struct.PyTreeNode):
    """A network's learnable params, its non-learnable constants and its optimiser state."""

    params: Any
    constants: Any
    opt_state: Any

    @classmethod
    def create(cls, module: nn.Module, tx: optax.GradientTransformation, key: jax.Array,
               *example_inputs: jax.Array) -> TrainedNet:
        variables = module.init(key, *example_inputs)
        params = variables["params"]
        return cls(params=params, constants=variables.get("constants", {}),
                   opt_state=tx.init(params))


def score_fn(module: nn.Module, params: Any, constants: Any, dropout_key: jax.Array | None
             ) -> diffusion.ScoreFn:
    """ScoreFn of a score net; a dropout key turns train mode (dropout active) on."""
    variables = {"params": params, "constants": constants}
    train = dropout_key is not None
    rngs = {"dropout": dropout_key} if train else {}
    conditional = isinstance(module, ActionScoreNet)

    def fn(x, t, cond):
        if conditional:
            return module.apply(variables, x, t, cond, train=train, rngs=rngs)
        return module.apply(variables, x, t, train=train, rngs=rngs)

    return fn


def dsm_update(module: nn.Module, tx: optax.GradientTransformation, net: TrainedNet,
               x0: jax.Array, cond: jax.Array | None, key: jax.Array
               ) -> tuple[TrainedNet, jax.Array]:
    """One Adam step of the denoising score-matching loss (train mode, as the reference)."""
    k_loss, k_drop = jax.random.split(key)

    def loss_fn(params):
        fn = score_fn(module, params, net.constants, k_drop)
        return diffusion.dsm_loss_per_sample(fn, x0, k_loss, cond).mean()

    loss, grads = jax.value_and_grad(loss_fn)(net.params)
    updates, opt_state = tx.update(grads, net.opt_state, net.params)
    return net.replace(params=optax.apply_updates(net.params, updates), opt_state=opt_state), loss


def example_inputs(dim: int, cond_dim: int | None = None) -> tuple[jax.Array, ...]:
    """Dummy inputs to initialise a score net of data dim `dim` (and condition dim)."""
    x, t = jnp.zeros((1, dim)), jnp.zeros((1,))
    return (x, t) if cond_dim is None else (x, t, jnp.zeros((1, cond_dim)))

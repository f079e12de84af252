"""One network with its optimiser, as a value: what every agent's learnable part is.

A `TrainState` carries the Flax module and the optax transformation as static fields (they are
part of the pytree's structure, so jitted code closes over them and checkpoints never store
them) and the parameters, non-learned constants and optimiser state as leaves. Every gradient
step in the library is `state.apply_loss_fn(loss_fn)`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import optax
from flax import struct

Params = Any  # a Flax parameter tree


class LossStep(NamedTuple):
    """What one optimiser step saw: the loss and aux of `loss_fn` at the pre-step parameters,
    and the gradients it applied."""

    loss: jax.Array
    aux: Any
    grads: Params


class TrainState(struct.PyTreeNode):
    # None for one optimiser over the params of several modules (ProtoRL, CIC), which their
    # agent applies piece by piece
    module: nn.Module | None = struct.field(pytree_node=False)
    tx: optax.GradientTransformation | None = struct.field(pytree_node=False)
    params: Params
    constants: Any  # the module's "constants" collection ({} for most modules)
    opt_state: Any  # None for a frozen network (tx None)

    @classmethod
    def create(cls, module: nn.Module, tx: optax.GradientTransformation | None, key: jax.Array,
               *example_inputs: jax.Array) -> TrainState:
        """Fresh parameters from `module.init(key, *example_inputs)`."""
        variables = module.init(key, *example_inputs)
        return cls.from_params(module, tx, variables["params"], variables.get("constants", {}))

    @classmethod
    def from_params(cls, module: nn.Module, tx: optax.GradientTransformation | None,
                    params: Params, constants: Any = None) -> TrainState:
        """Given parameters with a fresh optimiser state (none without `tx`)."""
        return cls(module=module, tx=tx, params=params,
                   constants={} if constants is None else constants,
                   opt_state=None if tx is None else tx.init(params))

    def variables(self, params: Params | None = None) -> dict:
        return {"params": self.params if params is None else params,
                "constants": self.constants}

    def apply(self, *args, params: Params | None = None, **kwargs) -> Any:
        """The module applied with this state's parameters (or `params`: a loss's argument,
        a target network's)."""
        return self.module.apply(self.variables(params), *args, **kwargs)

    def apply_gradients(self, grads: Params) -> TrainState:
        updates, opt_state = self.tx.update(grads, self.opt_state, self.params)
        return self.replace(params=optax.apply_updates(self.params, updates), opt_state=opt_state)

    def apply_loss_fn(self, loss_fn: Callable[[Params], tuple[jax.Array, Any]]
                      ) -> tuple[TrainState, LossStep]:
        """One optimiser step on `loss_fn(params) -> (loss, aux)`."""
        (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(self.params)
        return self.apply_gradients(grads), LossStep(loss, aux, grads)

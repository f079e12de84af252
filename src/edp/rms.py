"""Running mean/variance of a scalar stream (URLB `RMS`), as a pytree for jitted agents.

State starts at mean 0, variance 1, count 1e-4; each batch is merged with the parallel-variance
formula using the *unbiased* batch variance (docs/baselines.md §0.6). Intrinsic rewards
are divided by sqrt(var) (EDP, RND) or by the mean (kNN rewards).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct


class RunningMoments(struct.PyTreeNode):
    mean: jax.Array
    var: jax.Array
    count: jax.Array

    @classmethod
    def create(cls) -> RunningMoments:
        # explicit float32: weakly-typed scalars would make the first update recompile
        f32 = lambda v: jnp.asarray(v, jnp.float32)
        return cls(mean=f32(0.0), var=f32(1.0), count=f32(1e-4))

    def update(self, x: jax.Array) -> RunningMoments:
        x = x.reshape(-1)
        m = x.shape[0]
        batch_mean = x.mean()
        batch_var = x.var(ddof=1) if m > 1 else jnp.array(0.0)
        delta = batch_mean - self.mean
        total = self.count + m
        var = (self.var * self.count + batch_var * m + delta**2 * self.count * m / total) / total
        return RunningMoments(mean=self.mean + delta * m / total, var=var, count=total)

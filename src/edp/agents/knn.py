"""k-nearest-neighbour particle rewards (spec/baselines.md section 0.7, `PBE`).

`knn_distances` gives each query's k smallest Euclidean distances to a set of points, ascending.
With `same=True` the queries *are* the points, and each row's self-distance is exactly 0 (the
reference keeps it among the k). `particle_reward` turns those distances into URLB's reward:
optionally divide by a running statistic of all the distances, subtract a clip, average over
the k, and take log(1 + .). Used by APT now; APS (mean, clip 1e-4) and CIC (variance, clip 5e-4)
use the same two functions.

Distances use |x|^2 + |y|^2 - 2 x.y on inputs centred on the points' mean: one GEMM instead of
the reference's (N, M, d) difference tensor, which is 2 GB at URLB size. Large query sets (reward
maps) are processed in chunks so memory stays O(chunk x M).
"""

from __future__ import annotations

from typing import Literal

import jax
import jax.numpy as jnp

from edp.rms import RunningMoments

Normaliser = Literal["none", "mean", "var"]
QUERY_CHUNK = 2048  # queries per distance block


def _block_knn(queries: jax.Array, points: jax.Array, k: int, same: bool,
               offset: jax.Array | int) -> jax.Array:
    sq = (jnp.sum(queries**2, -1)[:, None] + jnp.sum(points**2, -1)[None, :]
          - 2.0 * queries @ points.T)
    sq = jnp.maximum(sq, 0.0)
    if same:  # exact zero on the diagonal, whatever the rounding of the expansion above
        rows = jnp.arange(queries.shape[0])[:, None] + offset
        sq = jnp.where(rows == jnp.arange(points.shape[0])[None, :], 0.0, sq)
    neg_smallest, _ = jax.lax.top_k(-sq, k)
    return jnp.sqrt(-neg_smallest)


def knn_distances(queries: jax.Array, points: jax.Array, k: int, same: bool = False
                  ) -> jax.Array:
    """(N, k) distances from each query (N, d) to its k nearest points (M, d), ascending.

    `same=True` declares queries and points to be the same array (self-distance 0 included).
    """
    if k > points.shape[0]:
        raise ValueError(f"k={k} nearest neighbours requested among {points.shape[0]} points")
    centre = points.mean(axis=0)
    queries, points = queries - centre, points - centre
    n = queries.shape[0]
    if n <= QUERY_CHUNK:
        return _block_knn(queries, points, k, same, 0)
    pad = (-n) % QUERY_CHUNK
    blocks = jnp.pad(queries, ((0, pad), (0, 0))).reshape(-1, QUERY_CHUNK, queries.shape[1])
    offsets = jnp.arange(blocks.shape[0]) * QUERY_CHUNK
    out = jax.lax.map(lambda xs: _block_knn(xs[0], points, k, same, xs[1]), (blocks, offsets))
    return out.reshape(-1, k)[:n]


def particle_reward(dists: jax.Array, rms: RunningMoments, *, avg: bool = True,
                    normaliser: Normaliser = "none", clip: float = 0.0,
                    update_rms: bool = True) -> tuple[jax.Array, RunningMoments]:
    """URLB PBE reward (N,) from kNN distances (N, k) ascending; returns the reward and the RMS.

    avg: average the k distances (else keep only the k-th). normaliser: divide every kept
    distance by the running mean ("mean", URLB `knn_rms`) or running variance ("var", CIC) of
    all kept distances, after merging them into the RMS when `update_rms` (training; reward maps
    read it without updating). clip >= 0: v <- max(v - clip, 0); clip < 0 disables it.
    """
    values = dists if avg else dists[:, -1:]
    if normaliser != "none":
        if update_rms:
            rms = rms.update(values)
        values = values / (rms.mean if normaliser == "mean" else rms.var)
    if clip >= 0:
        values = jnp.maximum(values - clip, 0.0)
    return jnp.log1p(values.mean(axis=1)), rms

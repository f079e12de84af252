"""k-nearest-neighbour particle rewards (docs/baselines.md §0.7, `PBE`).

`knn_distances` gives each query's k smallest Euclidean distances to a set of points, ascending.
With `same=True` the queries *are* the points, and each row's self-distance is exactly 0 (the
reference keeps it among the k); `batch_knn_distances` does the same within a random batch of a
large set (reward maps). `particle_reward` turns those distances into URLB's reward:
optionally divide by a running statistic of all the distances, subtract a clip, average over
the k, and take log(1 + .). Used by APT now; APS (mean, clip 1e-4) and CIC (variance, clip 5e-4)
use the same two functions.

Distances use |x|^2 + |y|^2 - 2 x.y on inputs centred on the points' mean: one GEMM instead of
the reference's (N, M, d) difference tensor, which is 2 GB at URLB size. Large query sets (reward
maps) are processed in chunks so memory stays O(chunk x M).
"""

from __future__ import annotations

from typing import Any, Literal

import jax
import jax.numpy as jnp

from edp.rms import RunningMoments

Normaliser = Literal["none", "mean", "var"]
QUERY_CHUNK = 2048  # queries per distance block


def _block_knn(queries: jax.Array, points: jax.Array, k: int, query_ids: jax.Array,
               point_ids: jax.Array | None, self_distance: float) -> jax.Array:
    sq = (jnp.sum(queries**2, -1)[:, None] + jnp.sum(points**2, -1)[None, :]
          - 2.0 * queries @ points.T)
    sq = jnp.maximum(sq, 0.0)
    if point_ids is not None:  # a query meeting itself: exactly 0 (or excluded with inf)
        sq = jnp.where(query_ids[:, None] == point_ids[None, :], self_distance, sq)
    neg_smallest, _ = jax.lax.top_k(-sq, k)
    return jnp.sqrt(-neg_smallest)


def _knn(queries: jax.Array, points: jax.Array, k: int, point_ids: jax.Array | None,
         self_distance: float) -> jax.Array:
    if k > points.shape[0]:
        raise ValueError(f"k={k} nearest neighbours requested among {points.shape[0]} points")
    centre = points.mean(axis=0)
    queries, points = queries - centre, points - centre
    n = queries.shape[0]
    block = lambda q, ids: _block_knn(q, points, k, ids, point_ids, self_distance)
    if n <= QUERY_CHUNK:
        return block(queries, jnp.arange(n))
    pad = (-n) % QUERY_CHUNK
    blocks = jnp.pad(queries, ((0, pad), (0, 0))).reshape(-1, QUERY_CHUNK, queries.shape[1])
    ids = jnp.arange(n + pad).reshape(-1, QUERY_CHUNK)
    return jax.lax.map(lambda xs: block(*xs), (blocks, ids)).reshape(-1, k)[:n]


def knn_distances(queries: jax.Array, points: jax.Array, k: int, same: bool = False
                  ) -> jax.Array:
    """(N, k) distances from each query (N, d) to its k nearest points (M, d), ascending.

    `same=True` declares queries and points to be the same array: each row's self-distance is
    exactly 0 and is one of the k (URLB PBE).
    """
    point_ids = jnp.arange(points.shape[0]) if same else None
    return _knn(queries, points, k, point_ids, 0.0)


def batch_knn_distances(x: jax.Array, k: int, batch_size: int, key: jax.Array) -> jax.Array:
    """(N, k) kNN distances of each row of x within a batch of `batch_size` rows of x: all of x
    when N <= batch_size (exactly `knn_distances(x, x, k, same=True)`), else the row itself and
    batch_size - 1 other rows drawn at random without replacement (one fewer when the row itself
    is drawn). Scores a large set of states (a reward map) the way a training batch would, at
    O(N x batch_size) cost. The self-distance 0 always comes first."""
    n = x.shape[0]
    if n <= batch_size:
        return knn_distances(x, x, k, same=True)
    if k >= batch_size:
        raise ValueError(f"k={k} nearest neighbours need a batch larger than {batch_size}")
    others = jax.random.choice(key, n, (batch_size - 1,), replace=False)
    dists = _knn(x, x[others], k - 1, others, jnp.inf) if k > 1 else jnp.zeros((n, 0))
    return jnp.concatenate([jnp.zeros((n, 1)), dists], axis=1)


def check_k(agent: str, k: int, batch_size: int) -> None:
    """A kNN reward looks among the batch's states, and a reward map among a batch of the
    scored set plus the state itself: both need k below the batch size."""
    if k >= batch_size:
        raise ValueError(f"{agent} knn_k={k}: must be < ddpg batch_size={batch_size}")


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


def configured_reward(cfg: Any, dists: jax.Array, rms: RunningMoments, update_rms: bool
                      ) -> tuple[jax.Array, RunningMoments]:
    """`particle_reward` with the URLB flags of a config (APT, APS): knn_avg, knn_rms (divide by
    the running mean) and knn_clip."""
    return particle_reward(dists, rms, avg=cfg.knn_avg,
                           normaliser="mean" if cfg.knn_rms else "none", clip=cfg.knn_clip,
                           update_rms=update_rms)

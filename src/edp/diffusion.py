"""VP-SDE diffusion maths: noise schedule, denoising score-matching loss, DPM-Solver++ sampler.

Everything here is a pure JAX function of arrays and a `score_fn`, so it jits, vmaps and
differentiates; networks, parameters and dropout RNGs stay with the caller.

Conventions (docs/method.md §2 and §4):
  * continuous time t in [0, 1], linear beta schedule beta_0 = 0.1, beta_1 = 20;
  * x_t = alpha_t x_0 + sigma_t z with alpha_t^2 + sigma_t^2 = 1;
  * every network predicts the *score*; the solver uses eps = -sigma_t * score.

A `ScoreFn` is called as `score_fn(x, t, cond)` with x (N, D), t (N,) and cond (N, C) or None,
and returns the score (N, D). A `GuidanceFn` has the same signature and returns the gradient
that is added to the score (e.g. `guidance_scale * grad_x f_psi(x, t, cond)`).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

ScoreFn = Callable[[jax.Array, jax.Array, jax.Array | None], jax.Array]
GuidanceFn = ScoreFn

BETA_0 = 0.1
BETA_1 = 20.0
T_MIN_TRAIN = 1e-3  # training times are U(T_MIN_TRAIN, 1): alpha_t/sigma_t blow up at t -> 0
T_END_SAMPLE = 1e-3  # the sampler stops here (1 / 1000, the reference's t_end), no denoise step


def log_alpha(t: jax.Array) -> jax.Array:
    """log alpha_t in closed form (the integral of -beta(s)/2 for linear beta)."""
    return -0.25 * t**2 * (BETA_1 - BETA_0) - 0.5 * t * BETA_0


def alpha_sigma(t: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(alpha_t, sigma_t); sigma uses expm1 so that it stays accurate at t ~ 1e-3."""
    la = log_alpha(t)
    return jnp.exp(la), jnp.sqrt(-jnp.expm1(2.0 * la))


def lambda_t(t: jax.Array) -> jax.Array:
    """Half log-SNR log(alpha_t / sigma_t): DPM-Solver integrates in this variable."""
    la = log_alpha(t)
    return la - 0.5 * jnp.log(-jnp.expm1(2.0 * la))


def inverse_lambda(lam: jax.Array) -> jax.Array:
    """The time t with lambda_t = lam, to place solver points given in log-SNR.

    Root of the quadratic log alpha_t = -log(1 + e^(-2 lam)) / 2, written as
    tmp / (sqrt(b0^2 + tmp) + b0) to avoid cancellation at small t. (The reference's singlestep
    solver maps its intermediate log-SNR back with it; on a time grid that lands exactly on the
    grid point, which `dpm_solver_pp` therefore uses directly.)
    """
    tmp = 2.0 * (BETA_1 - BETA_0) * jnp.logaddexp(-2.0 * lam, 0.0)
    return tmp / (jnp.sqrt(BETA_0**2 + tmp) + BETA_0) / (BETA_1 - BETA_0)


def sample_train_times(key: jax.Array, shape: tuple[int, ...], t_max: float = 1.0,
                       t_min: float = T_MIN_TRAIN) -> jax.Array:
    """t ~ U(t_min, t_max); U(T_MIN_TRAIN, 1) is the training-time distribution of every
    diffusion loss (a smaller t_max is EDP's `reward_t_max` option, docs/method.md §5.3; other
    ranges are for probes of the loss by time)."""
    return jax.random.uniform(key, shape, minval=t_min, maxval=t_max)


def perturb(x0: jax.Array, t: jax.Array, noise: jax.Array) -> jax.Array:
    """Forward perturbation x_t = alpha_t x0 + sigma_t noise (t has x0's leading shape)."""
    alpha, sigma = alpha_sigma(t)
    return alpha[..., None] * x0 + sigma[..., None] * noise


def dsm_loss_per_sample(score_fn: ScoreFn, x0: jax.Array, key: jax.Array,
                        cond: jax.Array | None = None, num_draws: int = 1,
                        stratified: bool = False, t_max: float = 1.0,
                        t_min: float = T_MIN_TRAIN) -> jax.Array:
    """Per-sample DSM loss ||sigma_t s(x_t, t, cond) + z||^2 (summed over dims), shape (B,).

    x0 is (B, D), cond (B, C) or None; t ~ U(t_min, t_max) and z ~ N(0, I) are drawn per
    sample (U(1e-3, 1) but for EDP's `reward_t_max` option, beyond the paper, and probes).

    With `num_draws` = K > 1 each sample gets K independent (t, z) draws, averaged: the
    Monte-Carlo intrinsic reward of docs/method.md §5.3. The K draws are one batched network
    call of size B*K (so a train-mode `score_fn` also draws independent dropout masks per
    draw).

    `stratified` (beyond the paper, docs/method.md §5.3) estimates the same expectation with
    less noise in the differences between samples: the K times are one per stratum of
    [1e-3, 1], the noises come in antithetic pairs (z, -z), and every sample of the batch uses
    the same K (t, z) (common random numbers). Each draw is still marginally the paper's, so
    the estimate stays unbiased.
    """
    if num_draws < 1:
        raise ValueError(f"num_draws must be >= 1, got {num_draws}")
    batch = x0.shape[0]
    if num_draws > 1:
        x0 = jnp.repeat(x0, num_draws, axis=0)
        cond = None if cond is None else jnp.repeat(cond, num_draws, axis=0)
    key_t, key_z = jax.random.split(key)
    if stratified:
        t, z = _stratified_draws(key_t, key_z, num_draws, x0.shape[-1], x0.dtype, t_max,
                                 t_min)
        t, z = jnp.tile(t, batch), jnp.tile(z, (batch, 1))  # row b*K + k gets draw k
    else:
        t = sample_train_times(key_t, (x0.shape[0],), t_max, t_min)
        z = jax.random.normal(key_z, x0.shape, x0.dtype)
    sigma = alpha_sigma(t)[1]
    residual = sigma[:, None] * score_fn(perturb(x0, t, z), t, cond) + z
    return jnp.sum(residual**2, axis=-1).reshape(batch, num_draws).mean(axis=-1)


def _stratified_draws(key_t: jax.Array, key_z: jax.Array, num_draws: int, dim: int, dtype,
                      t_max: float = 1.0, t_min: float = T_MIN_TRAIN
                      ) -> tuple[jax.Array, jax.Array]:
    """K times, one uniform in each of K equal strata of [t_min, t_max] (in shuffled
    order), and K noises in antithetic pairs (an odd K leaves the last one unpaired)."""
    k_offset, k_order = jax.random.split(key_t)
    strata = (jnp.arange(num_draws) + jax.random.uniform(k_offset, (num_draws,))) / num_draws
    t = t_min + (t_max - t_min) * jax.random.permutation(k_order, strata)
    half = jax.random.normal(key_z, ((num_draws + 1) // 2, dim), dtype)
    z = jnp.concatenate([half, -half])[:num_draws]
    return t, z


def solver_orders(steps: int) -> list[int]:
    """Per-step orders of the reference's singlestep order-2 solver for `steps` NFE.

    Second-order steps first, first-order steps last: odd -> [2]*(steps//2) + [1],
    even -> [2]*(steps/2 - 1) + [1, 1] (the reference's modified table).
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if steps % 2:
        return [2] * (steps // 2) + [1]
    return [2] * (steps // 2 - 1) + [1, 1]


def _x0_pred(score_fn: ScoreFn, guidance_fn: GuidanceFn | None, cond: jax.Array | None,
             x: jax.Array, t: jax.Array) -> jax.Array:
    """Data prediction (x - sigma_t eps) / alpha_t with eps = -sigma_t (score + guidance)."""
    alpha, sigma = alpha_sigma(t)
    tt = jnp.full(x.shape[:-1], t, x.dtype)
    score = score_fn(x, tt, cond)
    if guidance_fn is not None:
        score = score + guidance_fn(x, tt, cond)
    return (x + sigma**2 * score) / alpha


def dpm_solver_pp(score_fn: ScoreFn, x_T: jax.Array, cond: jax.Array | None = None,
                  steps: int = 15, guidance_fn: GuidanceFn | None = None) -> jax.Array:
    """Solve the probability-flow ODE from t = 1 (x_T) to T_END_SAMPLE with DPM-Solver++.

    As the reference (docs/method.md §4): data prediction, singlestep, order 2, `steps` NFE on a
    time-uniform grid of `steps` + 1 points t_0 = 1 > ... > t_steps = 1e-3. A second-order step
    spans two grid intervals and evaluates its intermediate point on the middle grid point
    (r1 = (lambda(t_{i+1}) - lambda(t_i)) / h, not a fixed 0.5); first-order steps (DDIM) span
    one. No thresholding, no final denoising, no clipping. At 15 NFE the long last step
    (t 0.068 -> 0.001) shrinks variances a little (N(0, I) data come out with std ~0.95; see
    tests/test_diffusion.py); that is the reference's behaviour. `steps` must be static. No
    stop_gradient anywhere, so gradients flow through the chain (Diffusion-QL). x_T is (N, D)
    and cond (N, C) or None.
    """
    grid = np.linspace(1.0, T_END_SAMPLE, steps + 1)
    orders = solver_orders(steps)
    n2 = orders.count(2)
    x0_pred = lambda x, t: _x0_pred(score_fn, guidance_fn, cond, x, t)

    def second_order(x, ts):
        s, s1, t = ts[0], ts[1], ts[2]
        lam_s, lam_s1, lam_t = lambda_t(s), lambda_t(s1), lambda_t(t)
        h = lam_t - lam_s
        r1 = (lam_s1 - lam_s) / h
        (_, sig_s), (a_s1, sig_s1), (a_t, sig_t) = alpha_sigma(s), alpha_sigma(s1), alpha_sigma(t)
        m_s = x0_pred(x, s)
        x_s1 = (sig_s1 / sig_s) * x - a_s1 * jnp.expm1(-r1 * h) * m_s
        m_s1 = x0_pred(x_s1, s1)
        d = m_s + (0.5 / r1) * (m_s1 - m_s)
        return (sig_t / sig_s) * x - a_t * jnp.expm1(-h) * d, None

    # Rows (t_i, t_{i+1}, t_{i+2}) of the second-order steps; scanned so the graph holds 2 nets.
    triples = np.stack([grid[0:2 * n2:2], grid[1:2 * n2:2], grid[2:2 * n2 + 1:2]], axis=1)
    x, _ = jax.lax.scan(second_order, x_T, jnp.asarray(triples, x_T.dtype))
    for i in range(2 * n2, steps):
        s, t = jnp.asarray(grid[i], x.dtype), jnp.asarray(grid[i + 1], x.dtype)
        (_, sig_s), (a_t, sig_t) = alpha_sigma(s), alpha_sigma(t)
        h = lambda_t(t) - lambda_t(s)
        x = (sig_t / sig_s) * x - a_t * jnp.expm1(-h) * x0_pred(x, s)
    return x


def sample(score_fn: ScoreFn, key: jax.Array, cond: jax.Array, dim: int, steps: int = 15,
           guidance_fn: GuidanceFn | None = None, num_samples: int | None = None) -> jax.Array:
    """Conditional samples from x_T ~ N(0, I): (B, dim), or (B, M, dim) if num_samples = M.

    cond is (B, C); for M samples per state the states are repeated (state-major, as the
    reference's repeat_interleave) and solved as one batch of B*M. For unconditional models call
    `dpm_solver_pp(score_fn, jax.random.normal(key, (n, dim)))`.
    """
    m = 1 if num_samples is None else num_samples
    cond_rep = cond if num_samples is None else jnp.repeat(cond, m, axis=0)
    x_T = jax.random.normal(key, (cond.shape[0] * m, dim), cond.dtype)
    x = dpm_solver_pp(score_fn, x_T, cond_rep, steps, guidance_fn)
    return x if num_samples is None else x.reshape(cond.shape[0], m, dim)

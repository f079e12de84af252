"""Mathematical checks of edp.diffusion (schedule, DSM loss, DPM-Solver++) and edp.networks.

Gaussian data make everything exact: for x_0 ~ N(mu, Sigma) the VP marginals are
N(alpha_t mu, Sigma_t) with Sigma_t = alpha_t^2 Sigma + sigma_t^2 I, so the score, the DSM
expectation and the probability-flow map are known in closed form.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from edp import diffusion as D
from edp.networks import (
    ActionScoreNet,
    FourierTimeEmbedding,
    GuidanceEnergy,
    StateScoreNet,
    TwinQ,
    ValueMLP,
    mish,
)

ROT = np.array([[np.cos(0.5), -np.sin(0.5)], [np.sin(0.5), np.cos(0.5)]])
MU = np.array([1.0, -0.5])
SIGMA = ROT @ np.diag([0.3, 0.8]) @ ROT.T


def np_alpha_sigma(t):
    """float64 schedule for the closed-form references."""
    log_a = -0.25 * t**2 * (D.BETA_1 - D.BETA_0) - 0.5 * t * D.BETA_0
    return np.exp(log_a), np.sqrt(-np.expm1(2 * log_a))


def gaussian_score(mu, cov):
    """Exact marginal score -(Sigma_t)^-1 (x - alpha_t mu) of N(mu, cov) data (eigenbasis)."""
    lam, vecs = (jnp.asarray(a, jnp.float32) for a in np.linalg.eigh(cov))
    mu = jnp.asarray(mu, jnp.float32)

    def score(x, t, cond):
        alpha, sigma = (a[:, None] for a in D.alpha_sigma(t))
        return -(((x - alpha * mu) @ vecs) / (alpha**2 * lam + sigma**2)) @ vecs.T

    return score


def matrix_power(cov, p):
    w, v = np.linalg.eigh(cov)
    return (v * w**p) @ v.T


def exact_flow_law(mu, cov):
    """Law at T_END_SAMPLE of the exact probability-flow ODE started from N(0, I) at t = 1.

    Every Sigma_t is a function of Sigma, so the flow is the symmetric affine map
    x -> alpha_e mu + (Sigma_e Sigma_1^-1)^(1/2) (x - alpha_1 mu).
    """
    (a1, s1), (ae, se) = np_alpha_sigma(1.0), np_alpha_sigma(D.T_END_SAMPLE)
    cov_1 = a1**2 * cov + s1**2 * np.eye(len(mu))
    cov_e = ae**2 * cov + se**2 * np.eye(len(mu))
    flow = matrix_power(cov_e, 0.5) @ matrix_power(cov_1, -0.5)
    return ae * mu - a1 * flow @ mu, flow @ flow.T


def solver_law(score, steps=15, dim=2, cond=None, guidance=None):
    """Exact law of the solver's output for x_T ~ N(0, I) when score (+ guidance) is affine in x.

    The whole solver is then affine, x_T -> b + A x_T; probing it at 0 and the unit vectors
    gives b and A, hence the mean b and covariance A A^T with no Monte-Carlo error. cond is one
    condition row (1, C) or None.
    """
    probes = jnp.concatenate([jnp.zeros((1, dim)), jnp.eye(dim)])
    cond = None if cond is None else jnp.repeat(cond, dim + 1, axis=0)
    solve = jax.jit(lambda x: D.dpm_solver_pp(score, x, cond, steps, guidance))
    out = np.asarray(solve(probes), float)
    a = (out[1:] - out[0]).T
    return out[0], a @ a.T


# ---------------------------------------------------------------------------------------------
# schedule


def test_schedule_matches_reference_table():
    t = jnp.array([0.001, 0.01, 0.1, 0.3, 0.5, 1.0])
    alpha, sigma = D.alpha_sigma(t)
    np.testing.assert_allclose(alpha, [0.99995, 0.9990, 0.9467, 0.6296, 0.2812, 0.0066], atol=6e-5)
    np.testing.assert_allclose(sigma, [0.0105, 0.0446, 0.3221, 0.7770, 0.9597, 1.0000], atol=6e-5)
    np.testing.assert_allclose(alpha**2 + sigma**2, 1.0, atol=1e-6)
    np.testing.assert_allclose(jnp.exp(D.log_alpha(t)), alpha, rtol=1e-6)


def test_lambda_is_half_log_snr_and_inverts():
    t = jnp.linspace(D.T_END_SAMPLE, 1.0, 999)
    alpha, sigma = D.alpha_sigma(t)
    lam = D.lambda_t(t)
    np.testing.assert_allclose(lam, jnp.log(alpha / sigma), atol=2e-4)
    assert bool(jnp.all(jnp.diff(lam) < 0))  # strictly decreasing, so invertible
    np.testing.assert_allclose(D.inverse_lambda(lam), t, rtol=2e-5, atol=1e-7)
    lam_grid = jnp.linspace(-5.0, 4.5, 101)
    np.testing.assert_allclose(D.lambda_t(D.inverse_lambda(lam_grid)), lam_grid, atol=2e-4)


# ---------------------------------------------------------------------------------------------
# DPM-Solver++


def test_solver_step_orders_follow_reference_table():
    assert D.solver_orders(15) == [2] * 7 + [1]
    assert D.solver_orders(14) == [2] * 6 + [1, 1]
    assert D.solver_orders(1) == [1]
    for steps in range(1, 31):
        assert sum(D.solver_orders(steps)) == steps  # NFE == steps
    with pytest.raises(ValueError, match="steps"):
        D.solver_orders(0)


@pytest.mark.parametrize("steps", [15, 14])
def test_solver_evaluates_the_model_once_per_time_uniform_grid_point(steps):
    seen = []

    def score(x, t, cond):
        seen.append(float(t[0]))
        return -x

    with jax.disable_jit():  # run scan as a Python loop so the times are concrete
        D.dpm_solver_pp(score, jnp.zeros((2, 3)), None, steps)
    np.testing.assert_allclose(seen, np.linspace(1.0, D.T_END_SAMPLE, steps + 1)[:-1], atol=1e-6)


def test_solver_converges_to_exact_flow_at_second_order():
    score = gaussian_score(MU, SIGMA)
    mean_ex, cov_ex = exact_flow_law(MU, SIGMA)

    def error(steps):
        mean, cov = solver_law(score, steps)
        return max(np.abs(mean - mean_ex).max(), np.abs(cov - cov_ex).max())

    errors = [error(s) for s in (5, 10, 15, 30, 60)]
    assert np.all(np.diff(errors) < 0), errors
    assert errors[2] < 0.1  # 15 NFE; the grid's long last step (t 0.068 -> 0.001) dominates
    assert error(100) / error(200) > 3.0  # ~4 for a second-order method


def test_solver_samples_match_gaussian_at_15_steps():
    n = 20_000
    score = gaussian_score(MU, SIGMA)
    x_T = jax.random.normal(jax.random.key(0), (n, 2))
    x = np.asarray(jax.jit(lambda x: D.dpm_solver_pp(score, x))(x_T), float)
    mean, cov = x.mean(0), np.cov(x.T)
    law_mean, law_cov = solver_law(score, 15)
    # Monte-Carlo vs the solver's exact output law: 4 standard errors.
    se_mean = np.sqrt(np.diag(law_cov) / n)
    se_cov = np.sqrt((np.outer(np.diag(law_cov), np.diag(law_cov)) + law_cov**2) / n)
    assert np.all(np.abs(mean - law_mean) < 4 * se_mean)
    assert np.all(np.abs(cov - law_cov) < 4 * se_cov)
    # vs the data law (exact flow to t = 1e-3): mean within 0.02; the covariance is shrunk by
    # the 15-step discretisation (eigenvalues 0.3, 0.8 -> ~0.24, ~0.71), within 0.1.
    mean_ex, cov_ex = exact_flow_law(MU, SIGMA)
    np.testing.assert_allclose(mean, mean_ex, atol=0.02)
    np.testing.assert_allclose(cov, cov_ex, atol=0.1)


def test_solver_from_the_prior_centre_lands_on_the_gaussian_mean():
    """x_T = 0 (the low-noise evaluation of fine-tuned policies) goes to the exact flow's image
    of 0, mu - alpha_1 (Sigma_e Sigma_1^-1)^(1/2) mu, i.e. the data mean to within 0.01."""
    score = gaussian_score(MU, SIGMA)
    x = np.asarray(jax.jit(lambda x: D.dpm_solver_pp(score, x))(jnp.zeros((3, 2))), float)
    image_of_zero, _ = exact_flow_law(MU, SIGMA)
    np.testing.assert_allclose(x, np.broadcast_to(image_of_zero, x.shape), atol=2e-3)
    np.testing.assert_allclose(x, np.broadcast_to(MU, x.shape), atol=0.01)


def assert_matches_law(x, mean, cov):
    """Sample mean and per-dimension std of x (n, d) within 4 standard errors of a law."""
    n, std = x.shape[0], np.sqrt(np.diag(cov))
    np.testing.assert_allclose(x.mean(0), mean, atol=4 * np.max(std) / np.sqrt(n))
    np.testing.assert_allclose(x.std(0), std, atol=4 * np.max(std) / np.sqrt(2 * n))


def test_conditional_sample_shapes_and_state_major_layout():
    # Data N(c, I) given cond c: marginals N(alpha_t c, I), score -(x - alpha_t c). The exact
    # flow from N(0, I) at t = 1 is a pure shift, giving N((alpha_e - alpha_1) c, I).
    def score(x, t, cond):
        return -(x - D.alpha_sigma(t)[0][:, None] * cond)

    cond = jnp.array([[2.0, 0.0], [0.0, -1.0], [-3.0, 1.0]])
    one = D.sample(score, jax.random.key(0), cond, 2)
    many = jax.jit(lambda k: D.sample(score, k, cond, 2, num_samples=4000))(jax.random.key(1))
    assert one.shape == (3, 2) and many.shape == (3, 4000, 2)
    shift = np_alpha_sigma(D.T_END_SAMPLE)[0] - np_alpha_sigma(1.0)[0]
    for i in range(3):
        mean, cov = solver_law(score, cond=cond[i:i + 1])
        assert_matches_law(np.asarray(many[i]), mean, cov)
        np.testing.assert_allclose(mean, shift * cond[i], atol=0.01)
    # 15 NFE shrink even N(0, I) (std ~0.95): the solver's own law, not the data's.
    np.testing.assert_allclose(cov, np.eye(2), atol=0.12)


def test_guided_sampling_produces_the_tilted_gaussian():
    # Base data p_0 = N(0, I) (score -x at every t). Tilt: p~_0(x) ∝ p_0(x) exp(c.x) = N(c, I).
    # Its VP marginal is N(alpha_t c, I) (alpha^2 + sigma^2 = 1), whose score is -x + alpha_t c:
    # the exact guidance is alpha_t c = grad_x E_t with E_t(x) = alpha_t c.x. This is also the
    # QGPO intermediate energy E_t(x_t) = log E[exp(c.x_0) | x_t] = alpha_t c.x_t + const,
    # because p(x_0 | x_t) = N(alpha_t x_t, sigma_t^2 I) under p_0. The exact flow from N(0, I)
    # at t = 1 is a pure shift, so the samples are N((alpha_e - alpha_1) c, I).
    def energy(x, t, cond):
        return D.alpha_sigma(t)[0] * jnp.sum(cond * x, axis=-1)

    def guidance(x, t, cond):
        return jax.grad(lambda x: energy(x, t, cond).sum())(x)

    base = lambda x, t, c: -x
    cond = jnp.array([[1.5, -0.5], [0.0, 0.0]])  # c per state; the second is unguided
    x = jax.jit(lambda k: D.sample(base, k, cond, 2, guidance_fn=guidance,
                                   num_samples=20_000))(jax.random.key(0))
    shift = np_alpha_sigma(D.T_END_SAMPLE)[0] - np_alpha_sigma(1.0)[0]
    for i in range(2):
        mean, cov = solver_law(base, cond=cond[i:i + 1], guidance=guidance)
        assert_matches_law(np.asarray(x[i]), mean, cov)
        np.testing.assert_allclose(mean, shift * cond[i], atol=0.01)
        np.testing.assert_allclose(cov, solver_law(base)[1], atol=1e-5)  # tilt = pure shift


def test_gradients_flow_through_the_solver_chain():
    # Data N(theta, I): score -(x - alpha_t theta). The exact flow gives d x_e / d theta =
    # (alpha_e - alpha_1) I; the 15-step solver differentiated by plain autodiff must agree.
    def final(theta, x_T):
        return D.dpm_solver_pp(lambda x, t, c: -(x - D.alpha_sigma(t)[0][:, None] * theta), x_T)

    x_T = jax.random.normal(jax.random.key(0), (1, 2))
    theta = jnp.array([0.3, -0.7])
    jac = jax.jacobian(lambda th: final(th, x_T)[0])(theta)
    shift = np_alpha_sigma(D.T_END_SAMPLE)[0] - np_alpha_sigma(1.0)[0]
    np.testing.assert_allclose(jac, shift * np.eye(2), atol=2e-3)
    eps = 1e-2
    fd = (final(theta + jnp.array([eps, 0.0]), x_T) - final(theta - jnp.array([eps, 0.0]), x_T))
    np.testing.assert_allclose(jac[:, 0], fd[0] / (2 * eps), atol=1e-3)


# ---------------------------------------------------------------------------------------------
# DSM loss


def expected_loss_at_time(t, lam, u_white=None):
    """E_z ||sigma_t s(x_t) + z||^2 for exact Gaussian score, in Sigma's eigenbasis.

    With d = alpha^2 lam + sigma^2: averaged over x_0 it is sum(alpha^2 lam / d); at a fixed
    x_0 with u = x_0 - mu (eigen-coordinates) it is sum(sigma^2 alpha^2 u^2 / d^2
    + (alpha^2 lam / d)^2).
    """
    alpha, sigma = np_alpha_sigma(t[:, None])
    d = alpha**2 * lam + sigma**2
    if u_white is None:
        return np.sum(alpha**2 * lam / d, axis=-1)
    return np.sum(sigma**2 * alpha**2 * u_white**2 / d**2 + (alpha**2 * lam / d) ** 2, axis=-1)


def average_over_train_times(f, t_max=1.0):
    t = np.linspace(D.T_MIN_TRAIN, t_max, 200_001)
    return np.trapezoid(f(t), t) / (t_max - D.T_MIN_TRAIN)


def test_dsm_loss_with_exact_score_matches_its_analytic_expectation():
    n = 100_000
    lam = np.linalg.eigvalsh(SIGMA)
    chol = jnp.asarray(np.linalg.cholesky(SIGMA), jnp.float32)
    x0 = MU + jax.random.normal(jax.random.key(0), (n, 2)) @ chol.T
    score = gaussian_score(MU, SIGMA)
    loss = np.asarray(jax.jit(lambda k: D.dsm_loss_per_sample(score, x0, k))(jax.random.key(1)))
    assert loss.shape == (n,)
    with pytest.raises(ValueError, match="num_draws"):
        D.dsm_loss_per_sample(score, x0, jax.random.key(1), num_draws=0)
    expected = average_over_train_times(lambda t: expected_loss_at_time(t, lam))
    assert abs(loss.mean() - expected) < 4 * loss.std() / np.sqrt(n), (loss.mean(), expected)
    # The exact score minimises the DSM objective: any perturbation raises it (same draws).
    for wrong in (lambda x, t, c: 1.2 * score(x, t, c), lambda x, t, c: score(x, t, c) + 0.3):
        worse = jax.jit(lambda k, f=wrong: D.dsm_loss_per_sample(f, x0, k))(jax.random.key(1))
        assert float(worse.mean()) > loss.mean() + 0.01


def test_k_draw_loss_is_the_pointwise_expectation_and_grows_off_the_data():
    lam, vecs = np.linalg.eigh(SIGMA)
    score = gaussian_score(MU, SIGMA)
    points = np.stack([MU, MU + 1.5 * vecs[:, 0], MU + 3.0 * vecs[:, 1]])
    reps, k = 200, 100
    estimates = jax.jit(lambda key: D.dsm_loss_per_sample(
        score, jnp.repeat(jnp.asarray(points, jnp.float32), reps, 0), key, num_draws=k))(
        jax.random.key(0))
    estimates = np.asarray(estimates).reshape(3, reps)
    u_white = (points - MU) @ vecs
    for i in range(3):
        expected = average_over_train_times(
            lambda t, u=u_white[i]: expected_loss_at_time(t, lam, u[None]))
        assert abs(estimates[i].mean() - expected) < 4 * estimates[i].std() / np.sqrt(reps)
    assert estimates[0].mean() < estimates[1].mean() < estimates[2].mean()
    # K independent (t, z) draws: the estimator's spread falls like 1/sqrt(K).
    single = D.dsm_loss_per_sample(score, jnp.repeat(jnp.asarray(points[:1], jnp.float32),
                                                     2000, 0), jax.random.key(1))
    ratio = float(np.std(single)) / estimates[0].std()
    assert 7.0 < ratio < 14.0, ratio


# ---------------------------------------------------------------------------------------------
# learning a multi-modal distribution with the real score networks (small widths)

MODES = jnp.array([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]])
MODE_STD = 0.1
SMALL = dict(hidden_dim=64, num_blocks=2, dropout_rate=0.1, time_embed_dim=32, time_dim=32)


def mixture(key, weights):
    """(B, 2) draws from the 4-mode mixture, with per-sample mode weights (B, 4)."""
    k_idx, k_noise = jax.random.split(key)
    idx = jax.random.categorical(k_idx, jnp.log(weights))
    return MODES[idx] + MODE_STD * jax.random.normal(k_noise, (weights.shape[0], 2))


def train(net, variables, batch_fn, steps=2000, lr=3e-3):
    """Adam with cosine decay on the mean DSM loss, all steps in one jitted lax.scan."""
    opt = optax.adam(optax.cosine_decay_schedule(lr, steps))
    consts = variables["constants"]

    def loss(params, key):
        k_batch, k_loss, k_drop = jax.random.split(key, 3)
        x0, cond = batch_fn(k_batch)
        args = () if cond is None else (cond,)
        score = lambda x, t, c: net.apply({"params": params, "constants": consts}, x, t, *args,
                                          train=True, rngs={"dropout": k_drop})
        return D.dsm_loss_per_sample(score, x0, k_loss).mean()

    def step(carry, key):
        params, opt_state = carry
        grads = jax.grad(loss)(params, key)
        updates, opt_state = opt.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), None

    run = jax.jit(lambda p, k: jax.lax.scan(step, (p, opt.init(p)), jax.random.split(k, steps)))
    (params, _), _ = run(variables["params"], jax.random.key(7))
    return {"params": params, "constants": consts}


def nearest_mode(x):
    dist = jnp.linalg.norm(x[..., None, :] - MODES, axis=-1)
    return dist.argmin(-1), dist.min(-1)


STATE_WEIGHTS = jnp.array([0.4, 0.3, 0.2, 0.1])


@pytest.fixture(scope="module")
def state_model():
    net = StateScoreNet(2, **SMALL)
    variables = net.init(jax.random.key(0), jnp.zeros((1, 2)), jnp.zeros((1,)))
    batch = lambda key: (mixture(key, jnp.tile(STATE_WEIGHTS, (256, 1))), None)
    variables = train(net, variables, batch)
    return lambda x, t, c: net.apply(variables, x, t)


def test_trained_state_model_samples_the_mixture(state_model):
    x = jax.jit(lambda k: D.dpm_solver_pp(state_model, jax.random.normal(k, (4000, 2))))(
        jax.random.key(1))
    idx, dist = nearest_mode(x)
    mass = np.bincount(np.asarray(idx), minlength=4) / len(idx)
    np.testing.assert_allclose(mass, STATE_WEIGHTS, atol=0.05)
    assert float(dist.mean()) < 0.2  # data: 0.125 (std 0.1 in 2-D)
    assert float(jnp.mean(dist < 0.4)) > 0.9


def test_trained_state_model_rewards_rare_and_unvisited_states(state_model):
    modes = MODES  # weights 0.4, 0.3, 0.2, 0.1
    empty = jnp.array([[0.0, 0.0], [2.5, 0.0], [0.0, 1.5], [-2.0, -2.5]])
    reward = jax.jit(lambda k: D.dsm_loss_per_sample(
        state_model, jnp.concatenate([modes, empty]), k, num_draws=2000))(jax.random.key(2))
    at_modes, at_empty = reward[:4], reward[4:]
    assert float(at_empty.min()) > float(at_modes.max())
    assert float(at_modes[3]) > float(at_modes[0])  # rarest mode > most visited mode


def test_trained_action_model_follows_its_state():
    # Two states with reversed mode weights: the policy must read the state.
    weights = jnp.array([[0.4, 0.3, 0.2, 0.1], [0.1, 0.2, 0.3, 0.4]])
    states = jnp.eye(2)

    def batch(key):
        k_s, k_a = jax.random.split(key)
        which = jax.random.bernoulli(k_s, 0.5, (256,)).astype(jnp.int32)
        return mixture(k_a, weights[which]), states[which]

    net = ActionScoreNet(2, **SMALL)
    variables = net.init(jax.random.key(0), jnp.zeros((1, 2)), jnp.zeros((1,)), jnp.zeros((1, 2)))
    variables = train(net, variables, batch, lr=1e-3)
    score = lambda x, t, c: net.apply(variables, x, t, c)
    x = jax.jit(lambda k: D.sample(score, k, states, 2, num_samples=3000))(jax.random.key(1))
    for i in range(2):
        mass = np.bincount(np.asarray(nearest_mode(x[i])[0]), minlength=4) / 3000
        np.testing.assert_allclose(mass, weights[i], atol=0.08)


# ---------------------------------------------------------------------------------------------
# networks


def network_cases(s, a, small):
    """(net, example inputs) for every module, paper-size or with small widths."""
    x, st, t = jnp.ones((5, a)), jnp.ones((5, s)), jnp.full((5,), 0.5)
    mlp = dict(hidden_dim=32) if small else {}
    score = SMALL if small else {}
    return {
        "state": (StateScoreNet(s, **score), (st, t)),
        "action": (ActionScoreNet(a, **score), (x, t, st)),
        "energy": (GuidanceEnergy(**mlp), (x, t, st)),
        "twin_q": (TwinQ(**mlp), (x, st)),
        "value": (ValueMLP(**mlp), (st,)),
    }


@functools.cache
def small_nets():
    return {k: (net, net.init(jax.random.key(0), *args), args)
            for k, (net, args) in network_cases(4, 3, small=True).items()}


def test_network_output_shapes_and_paper_layer_sizes():
    shapes = {}
    for k, (net, args) in network_cases(24, 6, small=False).items():  # shapes only: no compute
        variables = jax.eval_shape(net.init, jax.random.key(0), *args)
        shapes[k] = variables, jax.eval_shape(net.apply, variables, *args)
    assert shapes["state"][1].shape == (5, 24) and shapes["action"][1].shape == (5, 6)
    assert shapes["energy"][1].shape == (5,) and shapes["value"][1].shape == (5,)
    assert [q.shape for q in shapes["twin_q"][1]] == [(5,), (5,)]
    action, energy = shapes["action"][0], shapes["energy"][0]
    resnet = action["params"]["MLPResNet_0"]
    assert resnet["TorchDense_0"]["kernel"].shape == (6 + 24 + 128, 256)  # [a_t, s, time code]
    assert resnet["TorchDense_1"]["kernel"].shape == (256, 1024)
    assert resnet["TorchDense_7"]["kernel"].shape == (256, 6)  # in, 3 x (up, down), out
    assert action["params"]["ScoreTimeCode_0"]["TorchDense_0"]["kernel"].shape == (64, 128)
    assert action["constants"]["ScoreTimeCode_0"]["FourierTimeEmbedding_0"]["W"].shape == (32,)
    assert energy["constants"]["FourierTimeEmbedding_0"]["W"].shape == (16,)
    assert energy["params"]["MLP_0"]["TorchDense_0"]["kernel"].shape == (6 + 32 + 24, 256)
    assert energy["params"]["MLP_0"]["TorchDense_4"]["kernel"].shape == (256, 1)
    assert shapes["twin_q"][0]["params"]["MLP_1"]["TorchDense_0"]["kernel"].shape == (30, 256)


def test_fourier_features_formula_and_frequencies_outside_the_optimiser():
    emb = FourierTimeEmbedding(64)
    v = emb.init(jax.random.key(0), jnp.zeros((1,)))
    w = v["constants"]["W"]
    assert "params" not in v and 20 < float(jnp.std(w)) < 40  # N(0, 30^2), 32 draws
    t = jnp.array([0.1, 0.7])
    np.testing.assert_allclose(emb.apply(v, t), jnp.concatenate(
        [jnp.sin(2 * jnp.pi * t[:, None] * w), jnp.cos(2 * jnp.pi * t[:, None] * w)], -1),
        rtol=1e-5, atol=1e-5)

    net, v, args = small_nets()["action"]
    paths = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_leaves_with_path(v["params"])]
    assert not any("W" in p for p in paths)  # the optimiser never sees the frequencies
    opt = optax.adam(1e-2)
    loss = lambda p: jnp.sum(net.apply({"params": p, "constants": v["constants"]}, *args) ** 2)
    step = jax.jit(lambda p: optax.apply_updates(p, opt.update(jax.grad(loss)(p), opt.init(p))[0]))
    params = step(v["params"])
    assert jax.tree.all(jax.tree.map(lambda a, b: bool(jnp.any(a != b)), params, v["params"]))
    fresh = net.init(jax.random.key(0), *args)["constants"]  # same key: same frequencies
    assert jax.tree.all(jax.tree.map(jnp.array_equal, v["constants"], fresh))


def test_dropout_only_in_train_mode():
    net, v, (x, t, s) = small_nets()["action"]
    assert jnp.array_equal(net.apply(v, x, t, s), net.apply(v, x, t, s))
    a = net.apply(v, x, t, s, train=True, rngs={"dropout": jax.random.key(1)})
    b = net.apply(v, x, t, s, train=True, rngs={"dropout": jax.random.key(2)})
    assert not jnp.allclose(a, b)


def test_layers_use_pytorch_default_init():
    checked = 0
    for _, v, _ in small_nets().values():
        for path, leaf in jax.tree_util.tree_leaves_with_path(v["params"]):
            names = [p.key for p in path]
            if "LayerNorm" in names[-2]:
                continue
            layer = functools.reduce(lambda d, n: d[n], names[:-1], v["params"])
            bound = 1 / np.sqrt(layer["kernel"].shape[0])
            assert float(jnp.abs(leaf).max()) <= bound
            if leaf.size >= 10_000:  # U(-b, b) has std b / sqrt(3)
                assert abs(float(leaf.std()) - bound / np.sqrt(3)) < 0.05 * bound
                checked += 1
    assert checked >= 4


def test_mish_matches_its_definition_and_gradient_over_the_whole_range():
    x = jnp.linspace(-40, 40, 2001)
    reference = lambda v: v * jnp.tanh(jax.nn.softplus(v))
    np.testing.assert_allclose(mish(x), reference(x), rtol=1e-5, atol=1e-5)
    grad = jax.vmap(jax.grad(mish))(x)
    np.testing.assert_allclose(grad, jax.vmap(jax.grad(reference))(x), rtol=1e-4, atol=1e-5)
    assert np.all(np.isfinite(mish(jnp.array([-1e30, -88.0, 88.0, 1e30]))))


def test_stratified_estimator_is_unbiased_and_ranks_states_with_less_noise():
    """Same expectation as the paper's K-draw estimator (independent computation of the
    expected loss), one time per stratum, antithetic noise, and a lower spread of the
    difference between two states' rewards."""
    lam, vecs = np.linalg.eigh(SIGMA)
    score = gaussian_score(MU, SIGMA)
    points = jnp.asarray(np.stack([MU, MU + 1.5 * vecs[:, 0]]), jnp.float32)
    reps, k = 400, 8
    keys = jax.random.split(jax.random.key(3), reps)

    def estimates(stratified):
        fn = jax.vmap(lambda key: D.dsm_loss_per_sample(score, points, key, num_draws=k,
                                                        stratified=stratified))
        return np.asarray(jax.jit(fn)(keys))  # (reps, 2)

    plain, strat = estimates(False), estimates(True)
    u_white = (np.asarray(points) - MU) @ vecs
    for i in range(2):
        expected = average_over_train_times(
            lambda t, u=u_white[i]: expected_loss_at_time(t, lam, u[None]))
        assert abs(strat[:, i].mean() - expected) < 4 * strat[:, i].std() / np.sqrt(reps)
    gap_plain, gap_strat = np.diff(plain, axis=1), np.diff(strat, axis=1)
    assert gap_strat.std() < 0.5 * gap_plain.std(), (gap_strat.std(), gap_plain.std())
    t, z = D._stratified_draws(jax.random.key(0), jax.random.key(1), 5, 2, jnp.float32)
    strata = np.floor((np.asarray(t) - D.T_MIN_TRAIN) / (1 - D.T_MIN_TRAIN) * 5)
    assert sorted(strata) == [0, 1, 2, 3, 4]
    np.testing.assert_array_equal(np.asarray(z[3:]), -np.asarray(z[:2]))  # z2 unpaired


def test_reward_times_up_to_t_max_estimate_the_loss_over_those_times_only():
    """EDP's reward_t_max option: both estimators average the loss over U(1e-3, t_max), which
    for a point off the data differs from the paper's average over U(1e-3, 1)."""
    lam, vecs = np.linalg.eigh(SIGMA)
    score = gaussian_score(MU, SIGMA)
    point = MU + 1.5 * vecs[:, 0]
    u_white = ((point - MU) @ vecs)[None]
    reps, k, t_max = 400, 16, 0.1
    points = jnp.repeat(jnp.asarray(point[None], jnp.float32), reps, 0)
    expected = average_over_train_times(
        lambda t: expected_loss_at_time(t, lam, u_white), t_max)
    paper = average_over_train_times(lambda t: expected_loss_at_time(t, lam, u_white))
    for stratified in (False, True):
        fn = jax.vmap(lambda key, s=stratified: D.dsm_loss_per_sample(
            score, points[:1], key, num_draws=k, stratified=s, t_max=t_max))
        est = np.asarray(jax.jit(fn)(jax.random.split(jax.random.key(4), reps)))[:, 0]
        assert abs(est.mean() - expected) < 4 * est.std() / np.sqrt(reps), (est.mean(), expected)
        assert abs(est.mean() - paper) > 8 * est.std() / np.sqrt(reps)
    t = D.sample_train_times(jax.random.key(0), (10_000,), t_max)
    assert D.T_MIN_TRAIN <= float(t.min()) and float(t.max()) <= t_max
    t, _ = D._stratified_draws(jax.random.key(0), jax.random.key(1), 4, 2, jnp.float32, t_max)
    strata = np.floor((np.asarray(t) - D.T_MIN_TRAIN) / (t_max - D.T_MIN_TRAIN) * 4)
    assert sorted(strata) == [0, 1, 2, 3]

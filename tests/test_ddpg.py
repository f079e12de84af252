"""The DDPG backbone: init, the truncated-normal policy, critic/actor updates, acting, fine-tuning
initialisation, and a tiny learning problem."""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from edp.agents.ddpg import (
    ACTION_EPS,
    DDPGAgent,
    DDPGConfig,
    clamp_straight_through,
    critic_target,
    init_from_snapshot,
    sample_truncated_normal,
    update_backbone,
)

SMALL = DDPGConfig(hidden_dim=32, lr=1e-3, batch_size=64, num_expl_steps=10, learning_starts=10)
OBS, ACT, ITERS = 4, 2, 2  # the shared small agent's sizes


def make_batch(rng: np.random.Generator, iters: int, batch: int, obs_dim: int,
               action_dim: int) -> dict[str, np.ndarray]:
    f32 = np.float32
    return {
        "observation": rng.normal(size=(iters, batch, obs_dim)).astype(f32),
        "action": rng.uniform(-1, 1, size=(iters, batch, action_dim)).astype(f32),
        "reward": rng.normal(size=(iters, batch)).astype(f32),
        "discount": np.full((iters, batch), 0.99**3, f32),
        "next_observation": rng.normal(size=(iters, batch, obs_dim)).astype(f32),
    }


@functools.cache
def small_agent(intrinsic: bool) -> DDPGAgent:
    """Shared, so that its jitted update compiles once for the whole module."""
    return DDPGAgent(SMALL, OBS, ACT, intrinsic=intrinsic)


def small_batch(seed: int) -> dict[str, np.ndarray]:
    return make_batch(np.random.default_rng(seed), ITERS, SMALL.batch_size, OBS, ACT)


def slice0(batch):
    return {k: jnp.asarray(v[0]) for k, v in batch.items()}


# --- config ------------------------------------------------------------------------------------


def test_default_config_is_valid():
    DDPGConfig().check()


@pytest.mark.parametrize("field,value", [
    ("hidden_dim", 0), ("lr", 0.0), ("critic_target_tau", 1.5), ("stddev", -0.1),
    ("stddev_clip", -1.0), ("batch_size", 0), ("num_expl_steps", -1), ("update_every", 0),
    ("learning_starts", -5), ("updates_per_step", 0),
])
def test_config_check_names_the_bad_field(field, value):
    with pytest.raises(ValueError, match=field):
        dataclasses.replace(DDPGConfig(), **{field: value}).check()


# --- networks ----------------------------------------------------------------------------------


def test_param_tree_and_shapes():
    state = DDPGAgent(SMALL, obs_dim=5, action_dim=3).init(jax.random.key(0))
    shapes = jax.tree.map(jnp.shape, state.actor.params)
    assert shapes["trunk"]["Dense_0"]["kernel"] == (5, 32)
    assert shapes["trunk"]["LayerNorm_0"]["scale"] == (32,)
    assert shapes["policy"]["Dense_0"]["kernel"] == (32, 32)
    assert shapes["policy"]["Dense_1"]["kernel"] == (32, 3)
    shapes = jax.tree.map(jnp.shape, state.critic.params)
    assert set(shapes) == {"trunk", "q1", "q2"}
    assert shapes["trunk"]["Dense_0"]["kernel"] == (5 + 3, 32)
    for head in ("q1", "q2"):
        assert shapes[head]["Dense_0"]["kernel"] == (32, 32)
        assert shapes[head]["Dense_1"]["kernel"] == (32, 1)


def test_init_is_orthogonal_with_zero_bias_and_target_equal_to_critic():
    state = DDPGAgent(SMALL, obs_dim=32, action_dim=3).init(jax.random.key(1))
    square = state.actor.params["trunk"]["Dense_0"]["kernel"]  # (32, 32)
    np.testing.assert_allclose(square.T @ square, np.eye(32), atol=1e-5)
    tall = state.critic.params["trunk"]["Dense_0"]["kernel"]  # (35, 32): orthonormal columns
    np.testing.assert_allclose(tall.T @ tall, np.eye(32), atol=1e-5)
    wide = state.actor.params["policy"]["Dense_1"]["kernel"]  # (32, 3): orthonormal columns
    np.testing.assert_allclose(wide.T @ wide, np.eye(3), atol=1e-5)
    for path, leaf in jax.tree_util.tree_leaves_with_path((state.actor.params,
                                                                 state.critic.params)):
        name = jax.tree_util.keystr(path)
        if "bias" in name:
            assert not np.any(leaf), name
        if "scale" in name:
            np.testing.assert_array_equal(leaf, 1.0)
    jax.tree.map(np.testing.assert_array_equal, state.critic.params, state.critic_target)


# --- truncated normal --------------------------------------------------------------------------


def test_clamp_matches_urlb_example():
    np.testing.assert_allclose(clamp_straight_through(jnp.array([1.1, 0.6, -3.0])),
                               [1 - ACTION_EPS, 0.6, -1 + ACTION_EPS], rtol=0, atol=1e-7)


def test_samples_stay_inside_open_interval_and_noise_clip_is_respected():
    mu = jnp.tile(jnp.array([-0.99, -0.5, 0.0, 0.9, 0.99]), (4000, 1))
    unclipped = sample_truncated_normal(jax.random.key(0), mu, 0.2)
    clipped = sample_truncated_normal(jax.random.key(0), mu, 0.2, clip=0.3)
    for a in (unclipped, clipped):
        assert np.all(np.abs(a) < 1.0)
    # Columns 1 and 2 are far from the bounds, so only the noise clip can act there.
    assert np.max(np.abs(clipped[:, 1:3] - mu[:, 1:3])) <= 0.3 + 1e-6
    assert np.max(np.abs(unclipped[:, 1:3] - mu[:, 1:3])) > 0.3
    np.testing.assert_allclose(np.std(unclipped[:, 2]), 0.2, rtol=0.05)


def test_gradient_is_straight_through_even_where_clamped():
    mu = jnp.full((1000, 1), 0.95)
    sample = lambda m: sample_truncated_normal(jax.random.key(3), m, 0.5)
    assert np.any(sample(mu) == np.float32(1 - ACTION_EPS))  # some samples were clamped
    grad = jax.grad(lambda m: sample(m).sum())(mu)
    np.testing.assert_array_equal(grad, 1.0)


# --- critic target against NumPy ---------------------------------------------------------------


def np_trunk(p, x):
    h = x @ p["Dense_0"]["kernel"] + p["Dense_0"]["bias"]
    h = (h - h.mean(-1, keepdims=True)) / np.sqrt(h.var(-1, keepdims=True) + 1e-5)
    return np.tanh(h * p["LayerNorm_0"]["scale"] + p["LayerNorm_0"]["bias"])


def np_head(p, x):
    h = np.maximum(x @ p["Dense_0"]["kernel"] + p["Dense_0"]["bias"], 0.0)
    return h @ p["Dense_1"]["kernel"] + p["Dense_1"]["bias"]


def test_critic_target_matches_numpy():
    cfg = dataclasses.replace(SMALL, hidden_dim=4)
    agent = DDPGAgent(cfg, obs_dim=3, action_dim=2)
    state = agent.init(jax.random.key(0))
    # A target critic different from the online one, with non-zero biases.
    noise = lambda p: p + 0.3 * jax.random.normal(jax.random.key(9), p.shape)
    state = state.replace(critic_target=jax.tree.map(noise, state.critic_target),
                          actor=state.actor.replace(params=jax.tree.map(noise, state.actor.params)))
    p = jax.tree.map(lambda x: np.asarray(x, np.float64), (state.actor.params, state.critic_target))
    actor, target = p
    rng = np.random.default_rng(0)
    next_obs = rng.normal(size=(5, 3)).astype(np.float32)
    reward = rng.normal(size=5).astype(np.float32)
    discount = np.array([0.97, 0.97, 0.0, 0.5, 1.0], np.float32)
    key = jax.random.key(4)

    mu = np.tanh(np_head(actor["policy"], np_trunk(actor["trunk"], next_obs)))
    eps = np.clip(0.2 * np.asarray(jax.random.normal(key, (5, 2))), -0.3, 0.3)
    a = np.clip(mu + eps, -1 + ACTION_EPS, 1 - ACTION_EPS)
    h = np_trunk(target["trunk"], np.concatenate([next_obs, a], -1))
    q = np.minimum(np_head(target["q1"], h), np_head(target["q2"], h))[:, 0]
    expected = reward + discount * q

    target = jax.jit(functools.partial(critic_target, cfg))
    y = target(state, reward, discount, next_obs, key)
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-5)


# --- update order and mechanics ----------------------------------------------------------------


def test_one_iteration_runs_critic_then_actor_on_new_critic_then_polyak():
    agent = small_agent(intrinsic=False)
    cfg = agent.backbone_cfg
    old = agent.init(jax.random.key(0))
    batch = slice0(small_batch(0))
    key = jax.random.key(5)
    update = jax.jit(functools.partial(update_backbone, cfg))
    new, metrics = update(old, batch, batch["reward"], key)

    tau = cfg.critic_target_tau
    expected_target = jax.tree.map(lambda c, t: tau * c + (1 - tau) * t, new.critic.params,
                                   old.critic_target)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7),
                 new.critic_target, expected_target)

    _, k_actor = jax.random.split(key)
    mu = old.actor.apply(batch["observation"])
    a = sample_truncated_normal(k_actor, mu, cfg.stddev, cfg.stddev_clip)
    q1, q2 = new.critic.apply(batch["observation"], a)
    np.testing.assert_allclose(metrics["actor_loss"], -np.mean(np.minimum(q1, q2)), rtol=1e-5)


def test_reward_is_zero_in_pretraining_and_extrinsic_in_finetuning():
    batch = small_batch(0)
    batch["reward"][:] = 100.0
    for intrinsic, expected in ((True, 0.0), (False, 100.0)):
        agent = small_agent(intrinsic)
        _, metrics = agent.update(agent.init(jax.random.key(0)), batch, jax.random.key(1))
        assert float(metrics["batch_reward"]) == expected
        assert all(np.isfinite(v) for v in metrics.values())


def test_reward_shape_mismatch_is_an_error():
    agent = small_agent(intrinsic=False)
    batch = slice0(small_batch(0))
    with pytest.raises(ValueError, match="reward shape"):
        update_backbone(agent.backbone_cfg, agent.init(jax.random.key(0)), batch,
                        batch["reward"][:, None], jax.random.key(1))


def test_critic_loss_falls_when_regressing_a_known_reward():
    agent = small_agent(intrinsic=False)
    batch = {k: np.repeat(v[:1], ITERS, axis=0) for k, v in small_batch(0).items()}
    batch["reward"] = np.sin(batch["observation"].sum(-1)) + batch["action"][..., 0]
    batch["discount"][:] = 0.0
    state, first = agent.update(agent.init(jax.random.key(0)), batch, jax.random.key(1))
    for i in range(150):
        state, last = agent.update(state, batch, jax.random.key(2 + i))
    assert float(last["critic_loss"]) < 0.05 * float(first["critic_loss"])


def test_actor_learns_one_step_bandit():
    """r = -(a - 0.5)^2, discount 0: the actor mean must move to 0.5 whatever the state.

    The actor first runs to the tanh bound while the critic is still nearly linear in `a`,
    then comes back: about 400 updates at this size, for several seeds.
    """
    cfg = dataclasses.replace(SMALL, hidden_dim=64, lr=3e-3, batch_size=128)
    agent = DDPGAgent(cfg, obs_dim=2, action_dim=1, intrinsic=False)
    state = agent.init(jax.random.key(0))
    rng = np.random.default_rng(0)
    for i in range(8):
        batch = make_batch(rng, 100, cfg.batch_size, 2, 1)
        batch["reward"] = -((batch["action"][..., 0] - 0.5) ** 2)
        batch["discount"][:] = 0.0
        state, _ = agent.update(state, batch, jax.random.key(i))
    obs = rng.normal(size=(256, 2)).astype(np.float32)
    mean_action = np.asarray(agent.act(state, obs, jax.random.key(0), 10**6, eval_mode=True))
    assert abs(mean_action.mean() - 0.5) < 0.05
    assert np.abs(mean_action - 0.5).max() < 0.15


# --- acting ------------------------------------------------------------------------------------


def test_act_uniform_then_noisy_then_mean_and_compiled_once():
    agent = DDPGAgent(SMALL, obs_dim=3, action_dim=2)
    state = agent.init(jax.random.key(0))
    obs = np.random.default_rng(0).normal(size=(5000, 3)).astype(np.float32)
    mu = np.asarray(agent.act(state, obs, jax.random.key(1), 0, eval_mode=True))

    uniform = np.asarray(agent.act(state, obs, jax.random.key(1), 9, eval_mode=False))
    assert uniform.min() < -0.99 and uniform.max() > 0.99
    np.testing.assert_allclose(uniform.std(), 1 / np.sqrt(3), rtol=0.05)

    noise = np.asarray(agent.act(state, obs, jax.random.key(1), 10, eval_mode=False)) - mu
    np.testing.assert_allclose(noise.std(), SMALL.stddev, rtol=0.05)
    assert np.abs(noise).max() > SMALL.stddev_clip  # acting does not clip the noise

    for step in (0, 5, 10, 11, np.int64(12345)):
        again = agent.act(state, obs, jax.random.key(step), step, eval_mode=True)
        np.testing.assert_array_equal(again, mu)
    for step in range(20):
        agent.act(state, obs, jax.random.key(step), step, eval_mode=False)
    assert agent._act._cache_size() == 2  # one program per eval_mode, none per step


def test_update_compiles_once():
    agent = small_agent(intrinsic=True)
    state = agent.init(jax.random.key(0))
    for i in range(3):
        state, _ = agent.update(state, small_batch(i), jax.random.key(i))
    assert agent._update._cache_size() == 1


# --- fine-tuning initialisation ----------------------------------------------------------------


def test_init_from_snapshot_copies_actor_and_critic_trunk_only():
    agent = small_agent(intrinsic=True)
    pretrained, _ = agent.update(agent.init(jax.random.key(1)), small_batch(0),
                                 jax.random.key(2))
    fresh = agent.init(jax.random.key(3))
    state = init_from_snapshot(fresh, pretrained)

    same = lambda a, b: jax.tree.map(np.testing.assert_array_equal, a, b)
    same(state.actor.params, pretrained.actor.params)
    same(state.critic.params["trunk"], pretrained.critic.params["trunk"])
    for kept in ("q1", "q2"):
        same(state.critic.params[kept], fresh.critic.params[kept])
    same(state.critic_target, fresh.critic_target)
    same(state.actor.opt_state, fresh.actor.opt_state)
    same(state.critic.opt_state, fresh.critic.opt_state)
    assert not np.array_equal(state.critic_target["trunk"]["Dense_0"]["kernel"],
                              state.critic.params["trunk"]["Dense_0"]["kernel"])


def test_init_from_snapshot_rejects_other_shapes():
    pretrained = DDPGAgent(SMALL, obs_dim=5, action_dim=2).init(jax.random.key(0))
    fresh = DDPGAgent(SMALL, obs_dim=4, action_dim=2).init(jax.random.key(0))
    with pytest.raises(ValueError, match="actor shapes"):
        init_from_snapshot(fresh, pretrained)

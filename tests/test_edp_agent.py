"""The EDP pre-training agent: reward semantics, running statistics, one compiled update."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from edp.agents.ddpg import DDPGConfig
from edp.agents.edp import EDPAgent, EDPConfig
from edp.rms import RunningMoments

SMALL = EDPConfig(reward_samples=8, score_hidden_dim=64, score_blocks=1, score_time_dim=32,
                  score_lr=3e-3)
BACKBONE = DDPGConfig(hidden_dim=32, batch_size=128, updates_per_step=4, num_expl_steps=0,
                      learning_starts=0)


def make_batch(rng, iters, batch, centre=(0.0, 0.0), spread=0.1):
    obs = (np.asarray(centre) + spread * rng.normal(size=(iters, batch, 2))).astype(np.float32)
    return {"observation": obs,
            "action": rng.uniform(-1, 1, (iters, batch, 2)).astype(np.float32),
            "reward": np.zeros((iters, batch), np.float32),
            "discount": np.full((iters, batch), 0.99**3, np.float32),
            "next_observation": obs + 0.01}


def test_running_moments_match_a_float64_replay_of_the_urlb_formula():
    rng = np.random.default_rng(0)
    rms = RunningMoments.create()
    mean, var, count = 0.0, 1.0, 1e-4
    chunks = [rng.normal(3.0, 2.0, size=50) for _ in range(20)]
    for chunk in chunks:
        rms = rms.update(jnp.asarray(chunk))
        m, delta = len(chunk), chunk.mean() - mean
        total = count + m
        var = (var * count + chunk.var(ddof=1) * m + delta**2 * count * m / total) / total
        mean, count = mean + delta * m / total, total
    assert float(rms.mean) == pytest.approx(mean, rel=1e-5)
    assert float(rms.var) == pytest.approx(var, rel=1e-5)
    assert float(rms.count) == pytest.approx(1000 + 1e-4)
    data = np.concatenate(chunks)  # and it tracks the stream's moments
    assert float(rms.mean) == pytest.approx(data.mean(), rel=1e-4)
    assert float(rms.var) == pytest.approx(data.var(), rel=0.05)
    one = RunningMoments.create().update(jnp.array([2.0, 4.0]))
    # by hand: delta 3, total 2.0001, var = (1e-4 + 2*2 + 9 * 1e-4 * 2 / 2.0001) / 2.0001
    assert float(one.mean) == pytest.approx(3 * 2 / 2.0001)
    assert float(one.var) == pytest.approx((1e-4 + 4 + 9 * 2e-4 / 2.0001) / 2.0001, rel=1e-5)


def test_reward_is_high_away_from_visited_states_and_normalised():
    agent = EDPAgent(SMALL, BACKBONE, obs_dim=2, action_dim=2)
    state = agent.init(jax.random.PRNGKey(0))
    rng = np.random.default_rng(0)
    for i in range(60):  # every visit near the origin
        state, metrics = agent.update(state, make_batch(rng, 4, 128), jax.random.PRNGKey(i))
    visited = jnp.asarray(0.1 * rng.normal(size=(256, 2)), jnp.float32)
    far = jnp.asarray(rng.normal(size=(256, 2)) + np.array([3.0, -3.0]), jnp.float32)
    r_visited = agent.intrinsic_reward(state, visited, jax.random.PRNGKey(1))
    r_far = agent.intrinsic_reward(state, far, jax.random.PRNGKey(2))
    assert float(r_far.mean()) > 3 * float(r_visited.mean())
    assert float(jnp.median(r_far)) > float(jnp.percentile(r_visited, 90))
    # the logged reward is the raw denoising loss over the running std
    assert float(metrics["intr_reward"]) == pytest.approx(
        float(metrics["intr_reward_raw"]) / float(metrics["intr_reward_std"]), rel=1e-4)
    assert float(state.reward_rms.count) == pytest.approx(60 * 4 * 128 + 1e-4)


def test_update_learns_all_models_in_one_compiled_call():
    agent = EDPAgent(SMALL, BACKBONE, obs_dim=2, action_dim=2)
    state0 = agent.init(jax.random.PRNGKey(0))
    rng = np.random.default_rng(1)
    state1, metrics = agent.update(state0, make_batch(rng, 4, 128), jax.random.PRNGKey(0))
    state2, _ = agent.update(state1, make_batch(rng, 4, 128), jax.random.PRNGKey(1))
    assert agent._update._cache_size() == 1
    for name in ["policy", "state_model"]:
        before, after = getattr(state0, name).params, getattr(state1, name).params
        assert not all(jax.tree.leaves(jax.tree.map(jnp.array_equal, before, after)))
        const0, const1 = getattr(state0, name).constants, getattr(state2, name).constants
        assert all(jax.tree.leaves(jax.tree.map(jnp.array_equal, const0, const1)))
    assert not jnp.array_equal(state0.backbone.actor.params["policy"]["Dense_1"]["kernel"],
                               state1.backbone.actor.params["policy"]["Dense_1"]["kernel"])
    assert all(np.isfinite(float(v)) for v in metrics.values())
    for key in ["policy_dsm_loss", "state_dsm_loss", "critic_loss", "actor_loss", "intr_reward"]:
        assert key in metrics
    # the reward replaced the batch's extrinsic reward (all zeros) in the critic update
    assert float(metrics["batch_reward"]) == pytest.approx(float(metrics["intr_reward"]))


def test_policy_can_be_left_untrained_and_bad_values_are_rejected():
    cfg = EDPConfig(**{**SMALL.__dict__, "train_policy": False})
    agent = EDPAgent(cfg, BACKBONE, 2, 2)
    state0 = agent.init(jax.random.PRNGKey(0))
    state1, metrics = agent.update(state0, make_batch(np.random.default_rng(0), 4, 128),
                                   jax.random.PRNGKey(0))
    assert "policy_dsm_loss" not in metrics
    assert all(jax.tree.leaves(jax.tree.map(jnp.array_equal, state0.policy.params,
                                            state1.policy.params)))
    with pytest.raises(ValueError, match="edp reward_samples=0: must be >= 1"):
        EDPAgent(EDPConfig(reward_samples=0), BACKBONE, 2, 2)
    for t_max in (0.001, 1.5):  # the reward's times must lie in (T_MIN_TRAIN, 1]
        with pytest.raises(ValueError, match=rf"edp reward_t_max={t_max}: must be in \(0.001, 1\]"):
            EDPAgent(EDPConfig(reward_t_max=t_max), BACKBONE, 2, 2)


def test_reward_options_change_what_is_rewarded_and_how():
    """reward_on picks the state the logged raw reward is computed on (checked against the
    agent's raw_reward on that state with the update's reward key); without reward dropout the
    reward is the eval-mode denoising loss (computed here from the diffusion module)."""
    from edp import diffusion
    from edp.score_models import score_fn

    rng = np.random.default_rng(2)
    batch = make_batch(rng, 1, 64)
    batch["next_observation"] = batch["observation"] + 2.0  # far from the origin
    k_iter = jax.random.split(jax.random.PRNGKey(5), 1)[0]  # scan_iterations' key of iteration 0
    k_reward = jax.random.split(k_iter, 4)[2]  # _update_once's reward key
    raws = {}
    for reward_on in ("observation", "next_observation"):
        cfg = EDPConfig(**{**SMALL.__dict__, "reward_on": reward_on})
        agent = EDPAgent(cfg, BACKBONE, 2, 2)
        after, metrics = agent.update(agent.init(jax.random.PRNGKey(0)), batch,
                                      jax.random.PRNGKey(5))
        raw = agent.raw_reward(after.state_model, jnp.asarray(batch[agent.rewarded][0]), k_reward)
        raws[reward_on] = float(metrics["intr_reward_raw"])
        assert raws[reward_on] == pytest.approx(float(raw.mean()), rel=1e-4)
    assert raws["next_observation"] != pytest.approx(raws["observation"], rel=1e-3)

    obs = jnp.asarray(batch["observation"][0])
    for dropout in (True, False):
        cfg = EDPConfig(**{**SMALL.__dict__, "reward_dropout": dropout,
                           "reward_estimator": "stratified"})
        agent = EDPAgent(cfg, BACKBONE, 2, 2)
        model = agent.init(jax.random.PRNGKey(0)).state_model
        k_draw = jax.random.split(jax.random.PRNGKey(9))[0]
        fn = score_fn(model, None)
        eval_mode = diffusion.dsm_loss_per_sample(fn, obs, k_draw, num_draws=8, stratified=True)
        ours = agent.raw_reward(model, obs, jax.random.PRNGKey(9))
        assert np.allclose(ours, eval_mode, rtol=1e-5) is not dropout

    cfg = EDPConfig(**{**SMALL.__dict__, "reward_dropout": False, "reward_t_max": 0.05})
    agent = EDPAgent(cfg, BACKBONE, 2, 2)
    model = agent.init(jax.random.PRNGKey(0)).state_model
    k_draw = jax.random.split(jax.random.PRNGKey(9))[0]
    early = diffusion.dsm_loss_per_sample(score_fn(model, None), obs, k_draw, num_draws=8,
                                          t_max=0.05)
    np.testing.assert_allclose(agent.raw_reward(model, obs, jax.random.PRNGKey(9)), early,
                               rtol=1e-5)

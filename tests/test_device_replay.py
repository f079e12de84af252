"""The device replay samples what the host replay's n-step rule says, from finished episodes."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from edp.device_replay import DeviceReplay

L, NSTEP, GAMMA = 6, 3, 0.9


def fill(replay: DeviceReplay, episodes: int, rng: np.random.Generator) -> tuple:
    """Add episodes whose observations encode (episode, t); random rewards and discounts."""
    rewards = rng.normal(size=(episodes, L)).astype(np.float32)
    discounts = (rng.random((episodes, L)) > 0.2).astype(np.float32)
    for e in range(episodes):
        replay = replay.start_episode(jnp.array([e, 0.0]))
        for t in range(L):
            replay = replay.add(t, jnp.array([e, t + 1.0]), action=jnp.array([e, -t - 1.0]),
                                reward=rewards[e, t], discount=discounts[e, t],
                                meta=jnp.array([t, e, 1.0]))
        replay = replay.commit()
    return replay, rewards, discounts


def expected_return(rewards, discounts, e, t):
    """R = sum_i gamma^i prod_{j<i} d[t+j] r[t+i], g = gamma^n prod_i d[t+i] (host rule)."""
    total, survive = 0.0, 1.0
    for i in range(NSTEP):
        total += GAMMA**i * survive * rewards[e, t + i]
        survive *= discounts[e, t + i]
    return total, GAMMA**NSTEP * survive


def test_samples_follow_the_nstep_rule_and_stay_in_finished_episodes():
    replay = DeviceReplay.create(100 * L, L, 2, 2, NSTEP, GAMMA, extras={"meta": 3})
    replay, rewards, discounts = fill(replay, 5, np.random.default_rng(0))
    replay = replay.start_episode(jnp.array([99.0, 0.0]))  # a running episode is never sampled
    batch = jax.tree.map(np.asarray, replay.sample(jax.random.PRNGKey(3), 64, 4))
    assert batch["observation"].shape == (4, 64, 2) and batch["meta"].shape == (4, 64, 3)
    flat = {k: v.reshape((256,) + v.shape[2:]) for k, v in batch.items()}
    episodes = flat["observation"][:, 0].astype(int)
    starts = flat["observation"][:, 1].astype(int)
    assert set(episodes) == set(range(5)) and set(starts) == set(range(L - NSTEP + 1))
    for i, (e, t) in enumerate(zip(episodes, starts, strict=True)):
        reward, discount = expected_return(rewards, discounts, e, t)
        np.testing.assert_allclose(flat["reward"][i], reward, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(flat["discount"][i], discount, rtol=1e-6)
        np.testing.assert_array_equal(flat["next_observation"][i], [e, t + NSTEP])
        np.testing.assert_array_equal(flat["action"][i], [e, -t - 1])
        np.testing.assert_array_equal(flat["meta"][i], [t, e, 1])


def test_ring_keeps_the_latest_episodes_and_a_checkpoint_round_trips():
    replay = DeviceReplay.create(3 * L, L, 2, 2, NSTEP, GAMMA)
    replay, _, _ = fill(replay, 7, np.random.default_rng(1))
    batch = replay.sample(jax.random.PRNGKey(0), 500)
    assert set(np.asarray(batch["observation"][0, :, 0]).astype(int)) == {4, 5, 6}
    data = replay.state_dict()
    assert data["observation"].shape == (3, L + 1, 2) and int(data["num_episodes"]) == 7
    restored = DeviceReplay.create(3 * L, L, 2, 2, NSTEP, GAMMA).load_state_dict(data)
    ring = lambda r: (r.observation, r.steps, r.num_episodes)  # staging: not between episodes
    for got, want in zip(jax.tree.leaves(ring(restored)), jax.tree.leaves(ring(replay)),
                         strict=True):
        np.testing.assert_array_equal(got, want)
    with pytest.raises(ValueError, match="steps/action"):
        DeviceReplay.create(3 * L, L, 2, 4, NSTEP, GAMMA).load_state_dict(data)


def test_nstep_longer_than_an_episode_is_refused():
    with pytest.raises(ValueError, match="nstep=7"):
        DeviceReplay.create(100, L, 2, 2, 7, GAMMA)

import numpy as np
import pytest

from edp.replay import ReplayBuffer


def fill(buffer: ReplayBuffer, episodes: int, length: int, num_envs: int, discounts=None):
    """Observation of env e at step t of episode k is (k, t, e); reward = 100k + t + e/10."""
    for k in range(episodes):
        buffer.start_episodes(np.stack([[k, 0, e] for e in range(num_envs)]).astype(np.float32))
        for t in range(length):
            d = 1.0 if discounts is None else discounts[t]
            buffer.add(action=np.full((num_envs, 1), t, np.float32),
                       reward=np.array([100 * k + t + e / 10 for e in range(num_envs)]),
                       discount=d,
                       next_observation=np.stack([[k, t + 1, e] for e in range(num_envs)]),
                       done=t == length - 1)


def test_nstep_return_and_discount_match_hand_computation():
    gamma, n, length = 0.9, 3, 6
    buffer = ReplayBuffer(1000, length, 2, 3, 1, nstep=n, discount=gamma)
    fill(buffer, episodes=4, length=length, num_envs=2)
    batch = buffer.sample(np.random.default_rng(0), batch_size=500, iters=2)
    assert batch["observation"].shape == (2, 500, 3)
    assert batch["reward"].shape == (2, 500) and batch["discount"].shape == (2, 500)
    obs = batch["observation"].reshape(-1, 3)
    k, t, e = obs[:, 0], obs[:, 1], obs[:, 2]
    expected = sum(gamma**i * (100 * k + t + i + e / 10) for i in range(n))
    np.testing.assert_allclose(batch["reward"].reshape(-1), expected, rtol=1e-5)
    np.testing.assert_allclose(batch["discount"], gamma**n, rtol=1e-6)
    # next observation is n steps later in the same episode of the same env
    nxt = batch["next_observation"].reshape(-1, 3)
    np.testing.assert_array_equal(nxt[:, 0], k)
    np.testing.assert_array_equal(nxt[:, 1], t + n)
    np.testing.assert_array_equal(nxt[:, 2], e)
    np.testing.assert_array_equal(batch["action"].reshape(-1), t)


def test_windows_never_cross_episode_end_and_cover_all_starts():
    length, n = 5, 3
    buffer = ReplayBuffer(1000, length, 1, 3, 1, nstep=n)
    fill(buffer, episodes=3, length=length, num_envs=1)
    batch = buffer.sample(np.random.default_rng(1), batch_size=3000)
    t = batch["observation"][0, :, 1]
    assert t.max() == length - n and t.min() == 0
    assert set(np.unique(t)) == set(range(length - n + 1))
    assert (batch["next_observation"][0, :, 1] <= length).all()


def test_env_discount_zero_stops_reward_and_bootstrap():
    gamma, n, length = 0.5, 3, 4
    discounts = [1.0, 0.0, 1.0, 1.0]  # the step at t=1 is terminal
    buffer = ReplayBuffer(100, length, 1, 3, 1, nstep=n, discount=gamma)
    fill(buffer, episodes=1, length=length, num_envs=1, discounts=discounts)
    batch = buffer.sample(np.random.default_rng(2), batch_size=200)
    t = batch["observation"][0, :, 1]
    r, g = batch["reward"][0], batch["discount"][0]
    at0 = t == 0  # rewards r0 + gamma r1 (r2 is after the terminal step), no bootstrap
    np.testing.assert_allclose(r[at0], 0 + gamma * 1, rtol=1e-6)
    np.testing.assert_allclose(g[at0], 0.0)
    at1 = t == 1
    np.testing.assert_allclose(r[at1], 1.0, rtol=1e-6)
    np.testing.assert_allclose(g[~(at0 | at1)], gamma**n)


def test_only_finished_episodes_are_sampled_and_ring_overwrites_oldest():
    length = 4
    buffer = ReplayBuffer(3 * length, length, 1, 3, 1, nstep=1)
    with pytest.raises(RuntimeError, match="no finished episode"):
        buffer.sample(np.random.default_rng(0), 4)
    fill(buffer, episodes=5, length=length, num_envs=1)
    assert buffer.size == 3 and buffer.num_episodes == 5
    ks = np.unique(buffer.sample(np.random.default_rng(0), 500)["observation"][0, :, 0])
    np.testing.assert_array_equal(ks, [2, 3, 4])
    recent = buffer.recent_observations(2)
    np.testing.assert_array_equal(recent[:, 0, 0], [3, 4])
    assert recent.shape == (2, length + 1, 3)


@pytest.mark.parametrize("episodes", [3, 20])  # partly filled, and wrapped around the ring
def test_state_dict_round_trip_is_exact(episodes):
    buffer = ReplayBuffer(100, 4, 2, 3, 1, nstep=2)
    fill(buffer, episodes=episodes, length=4, num_envs=2)
    state = buffer.state_dict()
    assert state["observation"].shape[0] == min(2 * episodes, 25)  # only filled episodes
    other = ReplayBuffer(100, 4, 2, 3, 1, nstep=2)
    other.load_state_dict({k: v.copy() for k, v in state.items()})
    a = buffer.sample(np.random.default_rng(5), 64)
    b = other.sample(np.random.default_rng(5), 64)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    np.testing.assert_array_equal(buffer.recent_observations(2), other.recent_observations(2))
    wrong = ReplayBuffer(100, 4, 2, 5, 1, nstep=2)
    with pytest.raises(ValueError, match="replay checkpoint mismatch"):
        wrong.load_state_dict(buffer.state_dict())


def test_extras_are_stored_per_step():
    buffer = ReplayBuffer(100, 3, 1, 3, 1, nstep=1, extras={"skill": 2})
    buffer.start_episodes(np.zeros((1, 3), np.float32))
    for t in range(3):
        buffer.add(np.zeros((1, 1)), np.zeros(1), 1.0, np.array([[0, t + 1, 0]]), t == 2,
                   skill=np.array([[t, -t]]))
    batch = buffer.sample(np.random.default_rng(0), 50)
    t = batch["observation"][0, :, 1]
    np.testing.assert_array_equal(batch["skill"][0, :, 0], t)
    np.testing.assert_array_equal(batch["skill"][0, :, 1], -t)

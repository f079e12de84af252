"""The maze probes of benchmarks/coverage read trained runs; their arithmetic is tested here on
data whose answer is known."""

from types import SimpleNamespace

import benchmark_scripts
import numpy as np


def test_reward_spread_separates_a_known_signal_from_draw_noise():
    spread = benchmark_scripts.load("coverage/reward_spread.py").spread
    rng = np.random.default_rng(0)
    signal = 1.0 + 0.5 * rng.normal(size=(200, 256))  # per state, the same in both draws
    first = signal + rng.normal(size=signal.shape)  # noise std 1
    second = signal + rng.normal(size=signal.shape)
    s = spread(first, second)
    assert abs(s["mean"] - 1.0) < 0.01
    assert abs(s["noise"] - 1.0) < 0.02
    assert abs(s["signal"] - 0.5) < 0.03
    assert abs(s["std"] - np.sqrt(1.25)) < 0.02
    exact = spread(signal, signal)  # a reward without draw noise is all signal
    assert exact["noise"] == 0 and abs(exact["signal"] - exact["std"]) < 1e-12


def test_wall_distance_is_the_distance_to_the_nearest_unit_segment():
    wall_distance = benchmark_scripts.load("coverage/wall_reward.py").wall_distance
    maze = SimpleNamespace(walls=[((-0.5, 0.5), (0.5, 0.5)),     # horizontal, y = 0.5
                                  ((0.5, 0.5), (-0.5, 0.5))])    # vertical, x = 0.5
    points = np.array([[0.0, 0.0], [0.0, 0.4], [-0.5, -0.5], [2.5, 0.5], [0.5, 0.5]])
    expected = [0.5, 0.1, 1.0, 2.0, 0.0]
    np.testing.assert_allclose(wall_distance(maze, points), expected, atol=1e-12)

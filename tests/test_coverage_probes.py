"""The maze probes of benchmarks/coverage read trained runs; their arithmetic is tested here on
data whose answer is known."""

import importlib.util
from pathlib import Path
from types import SimpleNamespace

import numpy as np

BENCH = Path(__file__).resolve().parent.parent / "benchmarks" / "coverage"


def _probe(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_reward_spread_separates_a_known_signal_from_draw_noise():
    spread = _probe("reward_spread").spread
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
    wall_distance = _probe("wall_reward").wall_distance
    maze = SimpleNamespace(walls=[((-0.5, 0.5), (0.5, 0.5)),     # horizontal, y = 0.5
                                  ((0.5, 0.5), (-0.5, 0.5))])    # vertical, x = 0.5
    points = np.array([[0.0, 0.0], [0.0, 0.4], [-0.5, -0.5], [2.5, 0.5], [0.5, 0.5]])
    expected = [0.5, 0.1, 1.0, 2.0, 0.0]
    np.testing.assert_allclose(wall_distance(maze, points), expected, atol=1e-12)

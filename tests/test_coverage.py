import numpy as np
import pytest

from edp.coverage import CoverageTracker, plot_densities, plot_density, state_coverage
from edp.envs.maze import get_maze


def bin_centres_of_cells(maze_name: str) -> np.ndarray:
    """One point at the centre of every bin that lies inside a maze cell."""
    maze = get_maze(maze_name)
    w = maze.bin_width
    per_cell = int(round(1 / w))
    offsets = (np.arange(per_cell) + 0.5) * w - 0.5
    points = [(cx + dx, cy + dy) for cx, cy in maze.cells for dx in offsets for dy in offsets]
    return np.asarray(points, np.float32)


@pytest.mark.parametrize("name, ceiling", [
    ("square_a", 1.0), ("square_d", 22 / 28), ("square_tree", 1.0), ("square_large", 1.0),
    ("square_bottleneck", 1.0),
])
def test_visiting_every_maze_bin_reaches_the_ceiling(name, ceiling):
    points = bin_centres_of_cells(name)
    curve = state_coverage(name, points[None])
    assert curve.shape == (1,)
    assert curve[0] == pytest.approx(ceiling, abs=1e-9)


def test_known_small_values_and_curve_per_episode():
    # square_a: 100 x 100 bins, normaliser 10000 * 17/25 = 6800
    episodes = np.array([[[0.0, 0.0]] * 3, [[0.0, 0.0], [0.01, 0.01], [2.0, -2.0]]], np.float32)
    curve = state_coverage("square_a", episodes)
    np.testing.assert_allclose(curve, [1 / 6800, 2 / 6800])  # (0.01, 0.01) shares the bin


def test_matches_an_independent_histogram_on_random_walks():
    rng = np.random.default_rng(0)
    maze = get_maze("square_tree")
    x_min, x_max, y_min, y_max = maze.bounds
    walks = np.cumsum(rng.uniform(-0.4, 0.4, (30, 51, 2)), axis=1).astype(np.float32)
    curve = state_coverage("square_tree", walks)
    nx, ny = int(round((x_max - x_min) / 0.05)), int(round((y_max - y_min) / 0.05))
    for e in (0, 9, 29):
        pts = walks[: e + 1].reshape(-1, 2)
        u = np.clip((pts[:, 0] - x_min) / (x_max - x_min), 0, 1 - 1e-4)
        v = np.clip((pts[:, 1] - y_min) / (y_max - y_min), 0, 1 - 1e-4)
        hist, _, _ = np.histogram2d(u, v, bins=(nx, ny), range=((0, 1), (0, 1)))
        expected = np.count_nonzero(hist) / (nx * ny * 31 / 91)
        assert curve[e] == pytest.approx(expected, rel=1e-12)
    assert np.all(np.diff(curve) >= 0)


def test_points_outside_the_box_are_clamped_into_border_bins():
    tracker = CoverageTracker("square_a")
    far = np.array([[[100.0, 100.0], [4.5, 0.5], [-100.0, -100.0]]], np.float32)
    tracker.add_episodes(far)
    assert tracker.counts[-1, -1] == 2 and tracker.counts[0, 0] == 1
    assert tracker.value == pytest.approx(2 / 6800)


def test_only_the_first_2000_episodes_count_and_state_round_trips():
    episodes = np.zeros((2100, 2, 2), np.float32)
    episodes[2000:, :, 0] = 3.0  # new bins after the cut-off must not count
    curve = state_coverage("square_b", episodes)
    assert len(curve) == 2000 and curve[-1] == pytest.approx(1 / 6800)
    tracker = CoverageTracker("square_b")
    tracker.add_episodes(episodes[:5])
    other = CoverageTracker("square_b")
    other.load_state_dict(tracker.state_dict())
    assert other.curve == tracker.curve and (other.counts == tracker.counts).all()
    with pytest.raises(ValueError, match="does not match"):
        CoverageTracker("square_tree").load_state_dict(tracker.state_dict())


def test_bad_shapes_are_rejected_and_figure_is_written(tmp_path):
    with pytest.raises(ValueError, match=r"\(episodes, steps, 2\)"):
        state_coverage("square_a", np.zeros((5, 2)))
    tracker = CoverageTracker("square_d")
    tracker.add_episodes(bin_centres_of_cells("square_d")[None])
    plot_density(tracker, tmp_path / "c.png", "test")
    assert (tmp_path / "c.png").stat().st_size > 10_000


def test_many_panels_wrap_into_rows_of_four(tmp_path):
    """A dozen agents' visits: 3 rows of 4 panels, not one row 12 panels wide."""
    import matplotlib.image

    tracker = CoverageTracker("square_a")
    tracker.add_episodes(bin_centres_of_cells("square_a")[None])
    shapes = {}
    for n in (4, 12):
        plot_densities([(f"agent {i}", tracker) for i in range(n)], tmp_path / f"{n}.png")
        shapes[n] = matplotlib.image.imread(tmp_path / f"{n}.png").shape[:2]
    (h4, w4), (h12, w12) = shapes[4], shapes[12]
    assert w12 == pytest.approx(w4, rel=0.05)  # same four columns
    assert h12 == pytest.approx(3 * h4, rel=0.15)  # three rows of them

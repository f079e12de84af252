"""Point mazes against docs/mazes.md: walls (§3), dynamics (§4), areas (§5.3), vectors (§9)."""

from __future__ import annotations

import time

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from hypothesis import given, settings
from hypothesis import strategies as st

from edp.envs.gym_maze import MazeGymEnv, register_gymnasium
from edp.envs.maze import (
    MAZE_NAMES,
    MazeEnv,
    draw_walls,
    enclosed_area,
    get_maze,
    inside_maze,
    move,
)

# name: (unit walls, bounds, maze cells, enclosed area A_wall), docs/mazes.md §3.0 and §5.3
EXPECTED = {
    "square_a": (36, (-0.5, 4.5, -4.5, 0.5), 17, 17),
    "square_b": (36, (-0.5, 4.5, -4.5, 0.5), 17, 17),
    "square_c": (36, (-0.5, 4.5, -4.5, 0.5), 17, 17),
    "square_d": (42, (-3.5, 3.5, -3.5, 0.5), 22, 28),
    "square_tree": (64, (-6.5, 6.5, -6.5, 0.5), 31, 31),
    "square_bottleneck": (61, (-0.5, 9.5, -0.5, 9.5), 100, 100),
    "square_large": (121, (-0.5, 9.5, -0.5, 9.5), 100, 100),
    "square_corridor": (24, (-5.5, 5.5, -0.5, 0.5), 11, 11),
}

# docs/mazes.md §4.7: open intervals of the reset position, x_lo, x_hi, y_lo, y_hi
START_RANGES = {
    "square_a": (-0.45, 0.45, -0.5, 0.45),
    "square_b": (-0.45, 0.45, -0.5, 0.45),
    "square_c": (-0.45, 0.45, -0.5, 0.45),
    "square_tree": (-0.45, 0.45, -0.5, 0.45),
    "square_d": (-0.5, 0.5, -0.5, 0.45),
    "square_large": (-0.45, 0.5, -0.45, 0.5),
    "square_bottleneck": (-0.45, 0.5, -0.45, 0.5),
    "square_corridor": (-0.5, 0.5, -0.45, 0.45),
}

REPULSION = 0.005


class ConstantRng:
    """Stands in for the Generator given to `move`: every U is 0.5, so each repulsion is 0.005
    (the fixed value of the test vectors of docs/mazes.md §9) and results can be compared
    exactly."""

    def random(self, size=None):
        return np.full(size, 0.5)


def _move_scalar(maze, p, d, repulsion, depth=0):
    """docs/mazes.md §4.3 written out literally on the wall set: an independent check of `move`."""
    (cx, cy), (dx, dy) = p, d
    hits = []
    for c, dc, side in ((cx, dx, "right" if dx > 0 else "left"),
                        (cy, dy, "up" if dy > 0 else "down")):
        c0, c1 = np.rint(c), np.rint(c + dc)
        for i in range(int(abs(c1 - c0))):
            r = (c0 + np.sign(dc) * (i + 0.5) - c) / dc
            cell = (np.rint(cx + 0.999 * r * dx), np.rint(cy + 0.999 * r * dy))
            if _wall_of(cell, side) in maze.walls:
                hits.append((r, side))
    if not hits:
        return cx + dx, cy + dy
    r, side = min(hits)
    if depth >= 3:
        return cx + r * dx, cy + r * dy
    qx, qy = cx + r * dx, cy + r * dy
    if side in ("left", "right"):
        qx -= np.sign(dx) * repulsion
        rest = (0.0, (1 - r) * dy)
    else:
        qy -= np.sign(dy) * repulsion
        rest = ((1 - r) * dx, 0.0)
    return _move_scalar(maze, (qx, qy), rest, repulsion, depth + 1)


def _wall_of(cell, side):
    """The unit wall on `side` of `cell`, in the wall-set format."""
    i, j = cell
    return {
        "right": ((i + 0.5, i + 0.5), (j - 0.5, j + 0.5)),
        "left": ((i - 0.5, i - 0.5), (j - 0.5, j + 0.5)),
        "up": ((i - 0.5, i + 0.5), (j + 0.5, j + 0.5)),
        "down": ((i - 0.5, i + 0.5), (j - 0.5, j - 0.5)),
    }[side]


def _reference(maze, positions, actions):
    points = [_move_scalar(maze, tuple(map(float, p)), tuple(map(float, d)), REPULSION)
              for p, d in zip(positions, actions, strict=True)]
    return np.asarray(points, np.float64).astype(np.float32)


def _in_cells(maze, positions):
    """Maze-cell membership straight from the flood-filled cell set."""
    return np.array([(int(x), int(y)) in maze.cells for x, y in np.rint(positions)])


def _maze_points(maze, n, rng):
    """n points uniform over the maze cells."""
    cells = np.array(sorted(maze.cells), np.float64)
    return cells[rng.integers(len(cells), size=n)] + rng.uniform(-0.5, 0.5, (n, 2))


def _vertex_shots(maze, n, rng, jitter=0.0):
    """Moves from maze cells aimed through grid vertices: where corner leaks happen."""
    x_min, x_max, y_min, y_max = maze.bounds
    vertices = np.stack([rng.integers(x_min, x_max + 1, n), rng.integers(y_min, y_max + 1, n)], 1)
    actions = rng.uniform(-1, 1, (n, 2))
    positions = vertices - 0.5 - rng.uniform(0.05, 0.95, (n, 1)) * actions
    positions += rng.uniform(-jitter, jitter, (n, 2))
    keep = _in_cells(maze, positions)
    return positions[keep].astype(np.float32), actions[keep].astype(np.float32)


# --- layouts ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name", MAZE_NAMES)
def test_layout_matches_spec(name):
    maze = get_maze(name)
    walls, bounds, cells, area = EXPECTED[name]
    assert (len(maze.walls), maze.bounds, len(maze.cells)) == (walls, bounds, cells)
    assert enclosed_area(maze) == area
    assert maze.start in maze.cells and set(maze.goals) <= maze.cells
    assert maze.action_range == 0.95
    assert maze.bin_width == (0.1 if name in ("square_bottleneck", "square_large") else 0.05)


def test_maze_names_and_errors():
    assert MAZE_NAMES[:7] == ("square_a", "square_b", "square_c", "square_d", "square_tree",
                              "square_bottleneck", "square_large")
    assert get_maze("square_a") is get_maze("square_a")
    with pytest.raises(ValueError, match="square_large"):
        get_maze("square_z")


def test_square_d_pockets_are_walled_off():
    cells = get_maze("square_d").cells
    pockets = {(-2, -1), (-1, -1), (-2, -2), (2, -1), (1, -1), (2, -2)}
    assert not pockets & cells


def test_inside_maze_agrees_with_cell_set():
    rng = np.random.default_rng(0)
    for name in MAZE_NAMES:
        maze = get_maze(name)
        x_min, x_max, y_min, y_max = maze.bounds
        points = rng.uniform((x_min - 3, y_min - 3), (x_max + 3, y_max + 3), (500, 2))
        np.testing.assert_array_equal(inside_maze(maze, points), _in_cells(maze, points))


# --- move ------------------------------------------------------------------------------------

VECTORS = [  # docs/mazes.md §9, repulsion 0.005
    ("square_a", (0, 0), (0.3, -0.2), (0.3, -0.2)),
    ("square_a", (0.2, 0), (0.6, 0), (0.495, 0)),
    ("square_a", (0, 0.2), (0, 0.5), (0, 0.495)),
    ("square_a", (0.2, 0), (0.6, -0.8), (0.495, -0.8)),
    ("square_a", (0.2, 0.2), (0.6, 0.6), (0.495, 0.495)),
    ("square_bottleneck", (4.3, 1.0), (0.9, 0.1), (5.2, 1.1)),
    ("square_bottleneck", (4.3, 2.0), (0.9, 0.1), (4.495, 2.1)),
    ("square_large", (0, 0), (0.9, 0.9), (0.9, 0.9)),
]


@pytest.mark.parametrize(("name", "start", "action", "expected"), VECTORS)
def test_move_vectors(name, start, action, expected):
    out = move(name, np.array([start], np.float32), np.array([action], np.float32),
               ConstantRng())
    assert out.dtype == np.float32 and out.shape == (1, 2)
    np.testing.assert_allclose(out[0], expected, atol=1e-6)


LEAKS = [  # docs/mazes.md §4.4
    ("square_d", (-0.48178, -0.36844), (-0.134092, -0.968655), (-0.6159, -1.3370)),
    ("square_tree", (0.0625, -1.7585), (0.927167, 0.547636), (0.9897, -1.2109)),
]


@pytest.mark.parametrize(("name", "start", "action", "leaked"), LEAKS)
def test_corner_leaks_by_default_not_in_strict_mode(name, start, action, leaked):
    maze = get_maze(name)
    p, d = np.array([start], np.float32), np.array([action], np.float32)
    out = move(maze, p, d, ConstantRng())
    np.testing.assert_allclose(out[0], leaked, atol=1e-4)
    assert not inside_maze(maze, out)[0]
    strict = move(maze, p, d, ConstantRng(), strict=True)
    assert inside_maze(maze, strict)[0]


def test_strict_blocks_vertex_pass_through():
    p, d = np.zeros((1, 2), np.float32), np.full((1, 2), 0.9, np.float32)
    np.testing.assert_array_equal(move("square_large", p, d, ConstantRng(), strict=True), p)


@pytest.mark.parametrize("name", MAZE_NAMES)
def test_move_matches_scalar_reference(name):
    maze = get_maze(name)
    rng = np.random.default_rng(1)
    x_min, x_max, y_min, y_max = maze.bounds
    anywhere = rng.uniform((x_min - 1, y_min - 1), (x_max + 1, y_max + 1), (600, 2))
    grid_aligned = np.round(anywhere * 8) / 8  # on lines, vertices and exact ties
    positions = np.concatenate([anywhere, grid_aligned]).astype(np.float32)
    actions = np.concatenate([rng.uniform(-1, 1, (600, 2)), np.round(rng.uniform(-1, 1, (300, 2))
                              * 8) / 8, rng.uniform(-3, 3, (300, 2))]).astype(np.float32)
    shots = _vertex_shots(maze, 400, rng)
    positions, actions = np.concatenate([positions, shots[0]]), np.concatenate([actions, shots[1]])
    out = move(maze, positions, actions, ConstantRng())
    np.testing.assert_array_equal(out, _reference(maze, positions, actions))


@pytest.mark.parametrize("name", MAZE_NAMES)
def test_move_matches_scalar_reference_for_long_moves(name):
    """Moves across up to hundreds of grid lines, from inside and outside the grid: `move`
    looks only at the lines whose probe is near the grid, and must miss no wall."""
    maze = get_maze(name)
    rng = np.random.default_rng(5)
    x_min, x_max, y_min, y_max = maze.bounds
    positions = rng.uniform((x_min - 3, y_min - 3), (x_max + 3, y_max + 3), (60, 2))
    actions = rng.uniform(-1, 1, (60, 2)) * rng.choice([3, 30, 300], (60, 1))
    positions, actions = positions.astype(np.float32), actions.astype(np.float32)
    np.testing.assert_array_equal(move(maze, positions, actions, ConstantRng()),
                                  _reference(maze, positions, actions))


@pytest.mark.parametrize("name", ["square_a", "square_large"])
def test_huge_actions_cost_no_more_than_unit_ones(name):
    """A diverged policy's actions (1e6 to 1e30) once took a pass per grid line crossed, i.e.
    forever; they are moved as fast as unit ones, and strict moves stay in the maze."""
    maze = get_maze(name)
    rng = np.random.default_rng(6)
    points = _maze_points(maze, 500, rng).astype(np.float32)
    for scale in (1e6, 1e12, 1e30):
        actions = (rng.normal(size=(500, 2)) * scale).astype(np.float32)
        t0 = time.perf_counter()
        out = move(maze, points, actions, rng)
        strict = move(maze, points, actions, rng, strict=True)
        assert time.perf_counter() - t0 < 5.0
        assert np.isfinite(out).all() and _in_cells(maze, strict).all()
        assert inside_maze(maze, out).mean() > 0.95  # the walls stop them: leaks are rare


coordinate = st.one_of(st.floats(-7, 10, width=32), st.integers(-14, 20).map(lambda k: k / 2))
displacement = st.one_of(st.floats(-1, 1, width=32), st.sampled_from([-1.0, -0.5, 0.5, 1.0]))


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(MAZE_NAMES), coordinate, coordinate, displacement, displacement)
def test_move_matches_scalar_reference_anywhere(name, x, y, dx, dy):
    maze = get_maze(name)
    p, d = np.array([[x, y]], np.float32), np.array([[dx, dy]], np.float32)
    np.testing.assert_array_equal(move(maze, p, d, ConstantRng()), _reference(maze, p, d))


offset = st.floats(-0.49, 0.49)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(MAZE_NAMES), st.data(), offset, offset, offset, offset)
def test_moves_inside_one_cell_are_free(name, data, ax, ay, bx, by):
    maze = get_maze(name)
    cell = data.draw(st.sampled_from(sorted(maze.cells)))
    p = np.array([[cell[0] + ax, cell[1] + ay]])
    d = np.array([[bx - ax, by - ay]])
    expected = (p.astype(np.float32).astype(np.float64) + d.astype(np.float32)).astype(np.float32)
    for strict in (False, True):
        np.testing.assert_array_equal(move(maze, p.astype(np.float32), d.astype(np.float32),
                                           np.random.default_rng(0), strict), expected)


def _near_tie(positions, actions):
    """Whether the path crosses an x and a y grid line within 0.1 % of each other (§4.4)."""
    fractions = []
    for axis in (0, 1):
        c, dc = positions[:, axis].astype(np.float64), actions[:, axis].astype(np.float64)
        first = (np.rint(c) + 0.5 * np.sign(dc) - c) / np.where(dc == 0, 1, dc)
        crossed = np.rint(c + dc) != np.rint(c)
        fractions.append(np.where(crossed, first, np.nan))
    rx, ry = fractions
    return np.abs(rx - ry) <= 1e-3 * np.maximum(rx, ry) + 1e-12


@pytest.mark.parametrize("name", MAZE_NAMES)
def test_moves_leave_the_maze_only_by_corner_leaks(name):
    maze = get_maze(name)
    rng = np.random.default_rng(2)
    for jitter in (0.0, 1e-4, 1e-3):
        positions, actions = _vertex_shots(maze, 3000, rng, jitter)
        out = move(maze, positions, actions, ConstantRng())
        assert np.all(_in_cells(maze, out) | _near_tie(positions, actions))
        strict = move(maze, positions, actions, ConstantRng(), strict=True)
        assert _in_cells(maze, strict).all()
        unchanged = np.all((strict == out) | (strict == positions), axis=1)
        assert unchanged.all()  # strict only ever cancels a move


@pytest.mark.parametrize("name", ["square_d", "square_tree", "square_a"])
def test_vertex_shots_do_leak_by_default(name):
    """Guards the test above against never producing a leak."""
    maze = get_maze(name)
    positions, actions = _vertex_shots(maze, 3000, np.random.default_rng(2))
    assert not _in_cells(maze, move(maze, positions, actions, ConstantRng())).all()


@pytest.mark.parametrize("name", MAZE_NAMES)
def test_strict_rollouts_stay_in_the_maze(name):
    env = MazeEnv(name, num_envs=256, seed=3, horizon=150, strict=True)
    observation = env.reset()
    rng = np.random.default_rng(4)
    for _ in range(env.episode_length):
        assert inside_maze(env.maze, observation).all()
        observation = env.step(rng.uniform(-1, 1, (env.num_envs, 2))).observation
    assert inside_maze(env.maze, observation).all()


def test_move_rejects_bad_input():
    p = np.zeros((3, 2), np.float32)
    with pytest.raises(ValueError, match="finite"):
        move("square_a", p, np.full((3, 2), np.nan), ConstantRng())
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        move("square_a", p, np.zeros((2, 2)), ConstantRng())


def test_repulsion_is_drawn_only_on_collisions():
    rng = np.random.default_rng(5)
    p = np.array([[0.0, 0.0], [0.2, 0.0], [0.0, -0.5]], np.float32)
    d = np.array([[0.1, 0.1], [0.6, 0.0], [0.0, -0.3]], np.float32)
    out = move("square_a", p, d, rng)
    u = np.random.default_rng(5).random(1)[0]  # one point hit one wall: one draw
    np.testing.assert_allclose(out[1], (0.5 - 0.01 * u, 0.0), atol=1e-7)
    assert rng.random() == np.random.default_rng(5).random(2)[1]


# --- environment -----------------------------------------------------------------------------

@pytest.mark.parametrize("name", MAZE_NAMES)
def test_reset_distribution(name):
    env = MazeEnv(name, num_envs=4000, seed=6)
    starts = env.reset()
    x_lo, x_hi, y_lo, y_hi = START_RANGES[name]
    x, y = starts[:, 0], starts[:, 1]
    assert starts.dtype == np.float32 and starts.shape == (4000, 2)
    assert np.all((x > x_lo) & (x < x_hi) & (y > y_lo) & (y < y_hi))
    assert x.min() < x_lo + 0.01 and x.max() > x_hi - 0.01
    assert y.min() < y_lo + 0.01 and y.max() > y_hi - 0.01
    goal_cells = np.rint(env.goals)
    assert {(int(i), int(j)) for i, j in goal_cells} <= set(env.maze.goals)
    # upstream's acceptance rule, literally: moving on by 0.175 * sign(offset) hits no wall
    probes = 0.175 * np.sign(env.goals - goal_cells)
    free = env.goals.astype(np.float64) + probes
    np.testing.assert_array_equal(_reference(env.maze, env.goals, probes), free.astype(np.float32))


def test_fixed_start():
    assert np.all(MazeEnv("square_tree", num_envs=5, fixed_start=True).reset() == 0)


def test_episode_protocol():
    env = MazeEnv("square_a", num_envs=8, seed=7)
    assert (env.name, env.num_envs, env.observation_dim, env.action_dim, env.episode_length) == (
        "maze/square_a", 8, 2, 2, 50)
    with pytest.raises(RuntimeError):
        env.step(np.zeros((8, 2), np.float32))
    env.reset()
    rng = np.random.default_rng(8)
    for t in range(1, 51):
        step = env.step(rng.uniform(-1, 1, (8, 2)).astype(np.float32))
        assert step.done == (t == 50)
        assert step.observation.dtype == np.float32 and step.observation.shape == (8, 2)
        assert step.reward.dtype == np.float32 and step.reward.shape == (8,)
        near = np.linalg.norm(step.observation - env.goals, axis=1) <= 0.15
        np.testing.assert_array_equal(step.reward, np.where(near, 0.0, -1.0))
    with pytest.raises(RuntimeError):
        env.step(np.zeros((8, 2), np.float32))
    env.reset()
    assert not env.step(np.zeros((8, 2), np.float32)).done


def test_reward_at_goal_and_unclipped_actions():
    env = MazeEnv("square_large", fixed_start=True)
    env.reset()
    env.goals[:] = (0.0, 1.1)
    step = env.step(np.array([[0.0, 1.0]], np.float32))  # beyond the declared 0.95
    np.testing.assert_array_equal(step.observation, [[0.0, 1.0]])
    assert step.reward[0] == 0.0


def test_seed_determines_the_run():
    def rollout(seed):
        env = MazeEnv("square_d", num_envs=16, seed=seed)
        observations = [env.reset()]
        actions = np.random.default_rng(9).uniform(-1, 1, (50, 16, 2))
        observations += [env.step(a).observation for a in actions]
        return np.stack(observations)

    np.testing.assert_array_equal(rollout(1), rollout(1))
    assert not np.array_equal(rollout(1), rollout(2))


def test_env_rejects_bad_sizes():
    with pytest.raises(ValueError):
        MazeEnv("square_a", num_envs=0)
    with pytest.raises(ValueError, match="unknown maze 'maze_a'; valid mazes: square_a"):
        MazeEnv("maze_a")


# --- gymnasium and drawing -------------------------------------------------------------------

@pytest.mark.filterwarnings("ignore:.*infinity:UserWarning")  # default mode: leaks are unbounded
@pytest.mark.parametrize("strict", [False, True])
def test_gymnasium_env_passes_checker(strict):
    env = MazeGymEnv("square_b", strict=strict)
    check_env(env, skip_render_check=True)
    observation, _ = env.reset(seed=0)
    assert env.observation_space.contains(observation)


def test_gymnasium_registration():
    register_gymnasium()
    register_gymnasium()
    for name in MAZE_NAMES:
        env = gymnasium.make(f"edp/Maze-{name}-v0")
        observation, _ = env.reset(seed=1)
        assert observation.dtype == np.float32 and observation.shape == (2,)
        for t in range(1, 51):
            _, reward, terminated, truncated, _ = env.step(env.action_space.sample())
            assert reward in (0.0, -1.0) and not terminated and truncated == (t == 50)


def test_draw_walls():
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, ax = plt.subplots()
    maze = get_maze("square_d")
    lines = draw_walls(ax, maze)
    assert len(lines.get_segments()) == len(maze.walls)
    assert ax.get_xlim() == maze.bounds[:2] and ax.get_ylim() == maze.bounds[2:]
    plt.close(figure)

"""edp.envs.maze_jax against the NumPy maze (edp.envs.maze) on the same inputs and draws.

The NumPy rule runs in float64 and rounds to float32, the JAX one runs in float32. They agree
bit for bit except where the exact result lies on (or a float64 ulp from) a midpoint between
two float32 values and NumPy's float64 detour via the hit point lands a float64 ulp on the other
side of it, so the two round to neighbouring float32 values (`_assert_same`). Two measured cases:
- the slide coordinate p + d after a single wall hit: 0.3 % of the points of the random batches
  below (90 of 29,654 over both modes);
- the backed-off coordinate line - 0.01 u (the hit point p + r d is 0.49999999999999994, not the
  wall line 0.5): rare, found by hypothesis (the @example of test_move_matches_numpy_anywhere).
Either is one float32 ulp (<= 4.8e-7 on these mazes). Outside what the two can agree on (the
random inputs exclude them): subnormals, and a point on a cell edge moving off it by less than a
float64 ulp (`_off_a_line_by_less_than_float64_sees`).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st
from test_maze import (
    LEAKS,
    START_RANGES,
    VECTORS,
    ConstantRng,
    _in_cells,
    _maze_points,
    _reference,
    _vertex_shots,
    coordinate,
    displacement,
    offset,
)

from edp.envs import maze_jax
from edp.envs.maze import MAZE_NAMES, MazeEnv, get_maze, inside_maze, move


class ScriptedRng:
    """Stands in for the Generator of a one-point NumPy `move`: the k-th call returns U_k."""

    def __init__(self, draws):
        self.draws = iter(draws)

    def random(self, size=None):
        return np.full(size, next(self.draws), np.float64)


def _numpy_move(name, positions, actions, draws, strict=False):
    """The NumPy move point by point, point i's k-th repulsion being draws[i, k]."""
    maze = get_maze(name)
    return np.concatenate([move(maze, positions[i:i + 1], actions[i:i + 1], ScriptedRng(u), strict)
                           for i, u in enumerate(draws)]).reshape(-1, 2)


BATCH = 4096  # every call is padded to this, so each maze compiles once per mode


def _jax_move(name, positions, actions, draws, strict=False):
    """maze_jax.move on a batch padded to BATCH; |actions| up to 3 (as test_maze's)."""
    maze = maze_jax.maze_arrays(name).replace(max_action=3.0)
    n = len(positions)
    pad = lambda x: jnp.asarray(np.concatenate([x, np.zeros((BATCH - n, x.shape[1]))]),
                                jnp.float32)
    out = maze_jax.move(maze, pad(positions), pad(actions), pad(draws), strict=strict)
    assert out.dtype == jnp.float32
    return np.asarray(out)[:n]


def _float32_midpoint_near(exact, ours, theirs, ulps):
    """Whether ours and theirs are neighbouring float32 values and exact (float64) lies within
    `ulps` float64 ulps of the midpoint between them."""
    mid = (ours.astype(np.float64) + theirs.astype(np.float64)) / 2
    neighbours = (ours != theirs) & (np.nextafter(ours, theirs) == theirs)
    return neighbours & (np.abs(exact - mid) <= ulps * np.spacing(np.abs(mid)))


def _assert_same(ours, theirs, positions, actions, draws=None, max_rate=0.01):
    """Equal, except at a float32 midpoint of a slide or a backed-off coordinate (module
    docstring); draws are each point's repulsion draws (default: ConstantRng's 0.5)."""
    draws = np.full((len(ours), 1), 0.5) if draws is None else draws.astype(np.float64)
    slide = positions.astype(np.float64) + actions.astype(np.float64)  # exact in float64
    explained = _float32_midpoint_near(slide, ours, theirs, ulps=0)
    for sign in (-1.0, 1.0):  # line - sign 0.01 u, for the half-integer line nearest
        for u in draws.T:
            repulsion = sign * 0.01 * u[:, None]  # rounded in float64: a few ulps of slack
            line = np.floor(ours + repulsion) + 0.5
            explained |= _float32_midpoint_near(line - repulsion, ours, theirs, ulps=4)
    differ = ours != theirs
    unexplained = differ & ~explained
    assert not unexplained.any(), (positions[unexplained.any(1)][:5],
                                   actions[unexplained.any(1)][:5], ours[unexplained.any(1)][:5],
                                   theirs[unexplained.any(1)][:5])
    assert differ.any(1).mean() <= max_rate


def _no_subnormals(*arrays):
    """XLA on CPU flushes float32 subnormals to zero (a d of 1e-45 moves nothing there), NumPy
    does not: inputs with one are outside what the two can agree on."""
    tiny = np.finfo(np.float32).tiny
    return not any(np.any((x != 0) & (np.abs(x) < tiny)) for x in arrays)


def _off_a_line_by_less_than_float64_sees(p, d):
    """A point on a cell edge moving off it by at most a float64 ulp of the edge: NumPy's
    float64 probe rounds back onto the edge (and into the cell rint's half to even picks),
    while JAX settles the side exactly, so the two look up different cells' walls."""
    p, d = p.astype(np.float64), d.astype(np.float64)
    on_edge = (p - 0.5) == np.floor(p - 0.5)
    return bool(np.any(on_edge & (d != 0) & (np.abs(d) <= np.spacing(np.abs(p)))))


def _constant(n):
    return np.full((n, 3), 0.5, np.float32)


# --- the cases of tests/test_maze.py ---------------------------------------------------------

@pytest.mark.parametrize(("name", "start", "action", "expected"), VECTORS)
def test_move_vectors(name, start, action, expected):
    p, d = np.array([start], np.float32), np.array([action], np.float32)
    out = _jax_move(name, p, d, _constant(1))
    np.testing.assert_array_equal(out, move(name, p, d, ConstantRng()))
    np.testing.assert_allclose(out[0], expected, atol=1e-6)


@pytest.mark.parametrize(("name", "start", "action", "leaked"), LEAKS)
def test_corner_leaks_by_default_not_in_strict_mode(name, start, action, leaked):
    p, d = np.array([start], np.float32), np.array([action], np.float32)
    for strict in (False, True):
        out = _jax_move(name, p, d, _constant(1), strict)
        np.testing.assert_array_equal(out, move(name, p, d, ConstantRng(), strict))
        assert inside_maze(get_maze(name), out)[0] == strict


def test_strict_blocks_vertex_pass_through():
    p, d = np.zeros((1, 2), np.float32), np.full((1, 2), 0.9, np.float32)
    np.testing.assert_array_equal(_jax_move("square_large", p, d, _constant(1), True), p)
    assert not (_jax_move("square_large", p, d, _constant(1)) == p).all()


def _scalar_reference_inputs(maze):
    """The inputs of test_maze.test_move_matches_scalar_reference (|actions| up to 3)."""
    rng = np.random.default_rng(1)
    x_min, x_max, y_min, y_max = maze.bounds
    anywhere = rng.uniform((x_min - 1, y_min - 1), (x_max + 1, y_max + 1), (600, 2))
    grid_aligned = np.round(anywhere * 8) / 8
    positions = np.concatenate([anywhere, grid_aligned]).astype(np.float32)
    actions = np.concatenate([rng.uniform(-1, 1, (600, 2)), np.round(rng.uniform(-1, 1, (300, 2))
                              * 8) / 8, rng.uniform(-3, 3, (300, 2))]).astype(np.float32)
    shots = _vertex_shots(maze, 400, rng)
    return np.concatenate([positions, shots[0]]), np.concatenate([actions, shots[1]])


@pytest.mark.parametrize("name", MAZE_NAMES)
def test_move_matches_numpy_on_scalar_reference_inputs(name):
    maze = get_maze(name)
    p, d = _scalar_reference_inputs(maze)
    for strict in (False, True):
        out = _jax_move(name, p, d, _constant(len(p)), strict)
        theirs = move(maze, p, d, ConstantRng(), strict)  # constant draws: batch = point by point
        _assert_same(out, theirs, p, d)


@pytest.mark.parametrize("name", MAZE_NAMES)
def test_move_matches_numpy_on_vertex_shots(name):
    """The inputs of test_moves_leave_the_maze_only_by_corner_leaks and
    test_vertex_shots_do_leak: moves aimed through grid vertices."""
    maze = get_maze(name)
    rng = np.random.default_rng(2)
    for jitter in (0.0, 1e-4, 1e-3):
        p, d = _vertex_shots(maze, 3000, rng, jitter)
        for strict in (False, True):
            out = _jax_move(name, p, d, _constant(len(p)), strict)
            _assert_same(out, move(maze, p, d, ConstantRng(), strict), p, d)
            if strict:
                assert _in_cells(maze, out).all()


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(MAZE_NAMES), coordinate, coordinate, displacement, displacement,
       st.floats(0, 1, width=32, exclude_max=True), st.booleans())
# float32 -0.5 plus a tiny error: float64 rounds the sum back onto the half (no crossing)
@example("square_bottleneck", 0.0, -1.1754943508222875e-38, 0.0, -0.5, 0.5, False)
# the hit point lands a float64 ulp short of the wall line, and 0.5 - 0.01 u is a float32 midpoint
@example("square_a", 0.0, 0.0, 0.0, 0.6981983780860901, 0.6981983780860901, False)
def test_move_matches_numpy_anywhere(name, x, y, dx, dy, u, strict):
    p, d = np.array([[x, y]], np.float32), np.array([[dx, dy]], np.float32)
    assume(_no_subnormals(p, d, p + d) and not _off_a_line_by_less_than_float64_sees(p, d))
    draws = np.full((1, 3), u, np.float32)
    _assert_same(_jax_move(name, p, d, draws, strict), _numpy_move(name, p, d, draws, strict),
                 p, d, draws, max_rate=1.0)


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(MAZE_NAMES), st.data(), offset, offset, offset, offset)
def test_moves_inside_one_cell_are_free(name, data, ax, ay, bx, by):
    cell = data.draw(st.sampled_from(sorted(get_maze(name).cells)))
    p = np.array([[cell[0] + ax, cell[1] + ay]], np.float32)
    d = np.array([[bx - ax, by - ay]], np.float32)
    assume(_no_subnormals(p, d, p + d))
    for strict in (False, True):
        np.testing.assert_array_equal(_jax_move(name, p, d, _constant(1), strict), p + d)


def test_repulsion_uses_the_draw_of_each_hit():
    p = np.array([[0.0, 0.0], [0.2, 0.0], [0.2, 0.2]], np.float32)
    d = np.array([[0.1, 0.1], [0.6, 0.0], [0.6, 0.6]], np.float32)
    draws = np.array([[0.9, 0.9, 0.9], [0.3, 0.7, 0.9], [0.3, 0.7, 0.9]], np.float32)
    out = _jax_move("square_a", p, d, draws)
    np.testing.assert_array_equal(out[0], p[0] + d[0])  # no hit: no draw used
    np.testing.assert_allclose(out[1], (0.5 - 0.01 * 0.3, 0.0), atol=1e-7)  # one hit
    np.testing.assert_allclose(out[2], (0.5 - 0.01 * 0.3, 0.5 - 0.01 * 0.7), atol=1e-7)
    np.testing.assert_array_equal(out, _numpy_move("square_a", p, d, draws))


def _near_walls(maze, n, rng):
    """n points of the maze cells, a third of them within 0.05 of a cell edge, and moves of up
    to 1 per axis, a third of them small."""
    points = _maze_points(maze, n, rng)
    edge = rng.random(n) < 1 / 3
    cells = np.rint(points)
    towards = rng.choice([-1.0, 1.0], (n, 2)) * (0.5 - rng.uniform(0, 0.05, (n, 2)))
    points[edge] = (cells + towards)[edge]
    actions = rng.uniform(-1, 1, (n, 2)) * np.where(rng.random((n, 1)) < 1 / 3, 0.05, 1.0)
    return points.astype(np.float32), actions.astype(np.float32)


@pytest.mark.parametrize("name", MAZE_NAMES)
def test_move_matches_numpy_on_a_random_batch_near_walls(name):
    """Random draws, so the NumPy rule runs point by point with each point's own draws."""
    maze = get_maze(name)
    rng = np.random.default_rng(10)
    p, d = _near_walls(maze, 1500, rng)
    shots = _vertex_shots(maze, 600, rng, 1e-3)
    p, d = np.concatenate([p, shots[0]]), np.concatenate([d, shots[1]])
    draws = rng.random((len(p), 3)).astype(np.float32)
    for strict in (False, True):
        _assert_same(_jax_move(name, p, d, draws, strict), _numpy_move(name, p, d, draws, strict),
                     p, d, draws)


def test_move_rejects_bad_input():
    maze = maze_jax.maze_arrays("square_a")
    p = jnp.zeros((3, 2))
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        maze_jax.move(maze, p, jnp.zeros((2, 2)), jnp.zeros((3, 3)))
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        maze_jax.move(maze, p, p, jnp.zeros((3, 2)))


def test_move_vmaps_over_seeds():
    maze = maze_jax.maze_arrays("square_tree")
    rng = np.random.default_rng(11)
    p, d = (np.stack(batch) for batch in zip(*[_near_walls(get_maze("square_tree"), 64, rng)
                                                 for _ in range(3)], strict=True))
    draws = rng.random((3, 64, 3)).astype(np.float32)
    for strict in (False, True):
        vmapped = jax.vmap(functools.partial(maze_jax.move, strict=strict),
                           in_axes=(None, 0, 0, 0))(maze, p, d, draws)
        for seed in range(3):
            np.testing.assert_array_equal(
                vmapped[seed], maze_jax.move(maze, p[seed], d[seed], draws[seed], strict))


def test_strict_rollout_in_one_scan_stays_in_the_maze():
    name = "square_d"  # leaks there would end in its walled-off pockets
    maze = maze_jax.maze_arrays(name)

    @jax.jit
    def rollout(key):
        key, k_reset = jax.random.split(key)
        starts, _ = maze_jax.reset(maze, k_reset, 256)

        def step(positions, key):
            k_action, k_draw = jax.random.split(key)
            actions = jax.random.uniform(k_action, (256, 2), minval=-1, maxval=1)
            draws = jax.random.uniform(k_draw, (256, 3))
            positions = maze_jax.move(maze, positions, actions, draws, strict=True)
            return positions, positions

        return jax.lax.scan(step, starts, jax.random.split(key, 150))[1]

    visited = np.asarray(rollout(jax.random.key(12))).reshape(-1, 2)
    assert inside_maze(get_maze(name), visited).all()
    assert len(np.unique(np.rint(visited), axis=0)) > 5  # it does move around


# --- reset and reward ------------------------------------------------------------------------

@pytest.mark.parametrize("name", MAZE_NAMES)
def test_reset_distribution_matches_maze_env(name):
    maze, arrays = get_maze(name), maze_jax.maze_arrays(name)
    starts, goals = (np.asarray(x) for x in maze_jax.reset(arrays, jax.random.key(13), 4000))
    assert starts.dtype == goals.dtype == np.float32
    assert starts.shape == goals.shape == (4000, 2)
    x_lo, x_hi, y_lo, y_hi = START_RANGES[name]
    x, y = starts[:, 0], starts[:, 1]
    assert np.all((x > x_lo) & (x < x_hi) & (y > y_lo) & (y < y_hi))
    # every start and goal passes the margin rule: moving on by the margin hits no wall
    for points, margin in ((starts, 0.05), (goals, 0.175)):
        probes = margin * np.sign(points - np.rint(points))
        np.testing.assert_array_equal(_reference(maze, points, probes),
                                      (points.astype(np.float64) + probes).astype(np.float32))
    # the same distribution as MazeEnv.reset: quantiles, and the goal cells' frequencies
    env = MazeEnv(name, num_envs=4000, seed=14)
    theirs = env.reset()
    quantiles = (0.02, 0.25, 0.5, 0.75, 0.98)
    np.testing.assert_allclose(np.quantile(starts, quantiles, axis=0),
                               np.quantile(theirs, quantiles, axis=0), atol=0.03)
    cells = sorted(maze.goals)
    ours = np.array([np.all(np.rint(goals) == c, axis=1).mean() for c in cells])
    reference = np.array([np.all(np.rint(env.goals) == c, axis=1).mean() for c in cells])
    assert ours.sum() == 1
    np.testing.assert_allclose(ours, reference, atol=0.04)
    offsets = goals - np.rint(goals)
    np.testing.assert_allclose(np.quantile(offsets, quantiles, axis=0),
                               np.quantile(env.goals - np.rint(env.goals), quantiles, axis=0),
                               atol=0.03)


def test_fixed_start_and_vmapped_reset():
    maze = maze_jax.maze_arrays("square_d")
    starts, goals = maze_jax.reset(maze, jax.random.key(15), 5, fixed_start=True)
    np.testing.assert_array_equal(starts, np.zeros((5, 2)))
    goal_cells = {(int(i), int(j)) for i, j in np.rint(np.asarray(goals))}
    assert goal_cells <= set(get_maze("square_d").goals)
    keys = jax.random.split(jax.random.key(16), 3)
    vmapped = jax.vmap(maze_jax.reset, in_axes=(None, 0, None))(maze, keys, 32)
    for seed in range(3):
        for ours, single in zip(vmapped, maze_jax.reset(maze, keys[seed], 32), strict=True):
            np.testing.assert_array_equal(ours[seed], single)
    assert not np.array_equal(vmapped[0][0], vmapped[0][1])


def test_reward_matches_maze_env():
    rng = np.random.default_rng(17)
    goals = rng.uniform(-1, 1, (1000, 2)).astype(np.float32)
    positions = (goals + rng.uniform(-0.2, 0.2, (1000, 2))).astype(np.float32)
    ours = np.asarray(maze_jax.reward(jnp.asarray(positions), jnp.asarray(goals)))
    near = np.linalg.norm(positions - goals, axis=1) <= 0.15
    np.testing.assert_array_equal(ours, np.where(near, 0.0, -1.0).astype(np.float32))
    assert ours.dtype == np.float32 and 0 < near.mean() < 1

"""Point-maze dynamics in jax.numpy, for training loops that run on device.

`move` reproduces edp.envs.maze.move (corner leaks, wall repulsion, the strict option, the tie
rules) with static shapes: the uniform draws come in as an array and every loop is unrolled to a
bound fixed by `MazeArrays.max_action`. NumPy runs the rule in float64 and rounds to float32;
here the arithmetic is float32, with error-free sums and products wherever a rounding could
change a decision (which crossing comes first, which cell a probe or a slide is in) or the
backed-off coordinate. The results are bit-identical to NumPy's except for one case measured
in tests/test_maze_jax.py: after a single hit the slide coordinate p + d lies exactly halfway
between two float32 values and NumPy's float64 detour via the hit point rounds it to the other
neighbour (0.3 % of random moves near walls, 0.7 % of those that hit a wall; one float32
ulp).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from edp.envs.maze import (
    _GOAL_MARGIN,
    _PROBE,
    _REPULSION,
    _START_MARGIN,
    _SUCCESS_RADIUS,
    get_maze,
)

_REPULSION_HI = np.float32(_REPULSION)  # float64 0.01 as an unevaluated float32 sum hi + lo
_REPULSION_LO = np.float32(_REPULSION - float(_REPULSION_HI))
_PROBE_PARTS = (np.float32(_PROBE), np.float32(_PROBE - float(np.float32(_PROBE))))
_ONE = (np.float32(1), np.float32(0))


class MazeArrays(struct.PyTreeNode):
    """Device copy of one maze's static geometry (edp.envs.maze.Maze)."""

    right: jax.Array  # bool (W, H) as Maze.right: wall on the cell's right side
    up: jax.Array  # bool (W, H) as Maze.up: wall on the cell's upper side
    origin: jax.Array  # int32 (2,): the cell of grid entry [0, 0]
    start: jax.Array  # float32 (2,): the start cell
    goals: jax.Array  # float32 (G, 2): the goal cells
    max_action: float = struct.field(pytree_node=False, default=1.0)
    """Bound on |action| per axis that `move` handles: it checks floor(max_action) + 1 grid
    lines per axis (rounding half to even can cross two lines with a step of 1). Agents act in
    [-1, 1]; a larger displacement would pass through walls beyond the checked lines."""


def maze_arrays(name: str) -> MazeArrays:
    """The geometry of edp.envs.maze.get_maze(name) as device arrays."""
    maze = get_maze(name)
    return MazeArrays(
        right=jnp.asarray(maze.right), up=jnp.asarray(maze.up),
        origin=jnp.asarray(maze.origin, jnp.int32),
        start=jnp.asarray(maze.start, jnp.float32),
        goals=jnp.asarray(maze.goals, jnp.float32))


# --- exact float32 building blocks -----------------------------------------------------------

def _two_sum(a: jax.Array, b: jax.Array) -> tuple[jax.Array, jax.Array]:
    """s = fl(a + b) and the rounding error e, a + b = s + e exactly (Knuth)."""
    s = a + b
    b_virtual = s - a
    a_virtual = s - b_virtual
    return s, (a - a_virtual) + (b - b_virtual)


def _split(x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """x = hi + lo with 12 significant bits each (bit mask: immune to FMA contraction)."""
    bits = jax.lax.bitcast_convert_type(x, jnp.uint32) & jnp.uint32(0xFFFFF000)
    hi = jax.lax.bitcast_convert_type(bits, jnp.float32)
    return hi, x - hi


def _two_product(a: jax.Array, b: jax.Array) -> tuple[jax.Array, jax.Array]:
    """p = fl(a * b) and the rounding error e, a * b = p + e exactly (Dekker)."""
    p = a * b
    (a_hi, a_lo), (b_hi, b_lo) = _split(a), _split(b)
    e = ((a_hi * b_hi - p) + a_hi * b_lo + a_lo * b_hi) + a_lo * b_lo
    return p, e


def _rint_of_sum(a: jax.Array, b: jax.Array) -> jax.Array:
    """rint(a + b) with a + b rounded to float64 first, as maze.py computes it: float32 a + b
    may round onto a half-integer that the float64 sum is off by its error e, unless e is
    below half a float64 ulp of the sum (a tiny a beside b), where float64 lands on it too."""
    s, e = _two_sum(a, b)
    on_half = s - jnp.floor(s) == 0.5
    half_ulp64 = jnp.ldexp(jnp.float32(1.0), jnp.frexp(s)[1] - 54)  # |s| in [2^(x-1), 2^x)
    off = on_half & (jnp.abs(e) > half_ulp64)
    return jnp.where(off, s + 0.5 * jnp.sign(e), jnp.rint(s))


def _backed_off(line: jax.Array, step: jax.Array, u: jax.Array) -> jax.Array:
    """line - step * 0.01 * u, correctly rounded, with 0.01 the float64 constant of maze.py."""
    p, e = _two_product(jnp.broadcast_to(_REPULSION_HI, u.shape), u)
    s, e_sum = _two_sum(line, -step * p)
    return s + (e_sum - step * (e + _REPULSION_LO * u))


# --- collisions ------------------------------------------------------------------------------

def _sign_dot(a: tuple[jax.Array, jax.Array], x: jax.Array, b: tuple[jax.Array, jax.Array],
              y: jax.Array) -> jax.Array:
    """sign(a * x + b * y) for unevaluated sums a = a_hi + a_lo, b = b_hi + b_lo, exact
    unless the value is below ~2^-45 of the largest product: this settles which of two
    crossings comes first where float32 fractions would tie or swap."""
    p1, e1 = _two_product(a[0], x)
    p2, e2 = _two_product(a[1], x)
    p3, e3 = _two_product(b[0], y)
    p4, e4 = _two_product(b[1], y)
    s, t = _two_sum(p1, p3)
    return jnp.sign(s + (((p2 + p4) + (e1 + e3)) + ((e2 + e4) + t)))


def _cell_on_path(p: jax.Array, d: jax.Array, axis: int, n: tuple[jax.Array, jax.Array],
                  factor: tuple[float, float]) -> jax.Array:
    """rint, along the other axis than `axis`, of the point p + f r d with r = n / d[axis]
    (n an unevaluated sum, f = factor[0] + factor[1]), as float64 would round it.

    The sign of the offset from the nearest half-integer is settled exactly (_sign_dot), so
    paths through a grid vertex see the cell the exact arithmetic sees.
    """
    pa, da, pb, db = p[:, axis], d[:, axis], p[:, 1 - axis], d[:, 1 - axis]
    r = n[0] / jnp.where(da == 0, 1.0, da)
    half = jnp.floor(pb + (factor[0] * r) * db) + 0.5
    scaled_hi, scaled_lo = _two_product(n[0], jnp.broadcast_to(factor[0], pa.shape))
    scaled = _two_sum(scaled_hi, scaled_lo + (n[0] * factor[1] + n[1] * factor[0]))
    side = _sign_dot(_two_sum(pb, -half), da, scaled, db) * jnp.sign(da)
    return jnp.where(side == 0, jnp.rint(half), half + 0.5 * side)


def _lookup(maze: MazeArrays, grid: jax.Array, i: jax.Array, j: jax.Array) -> jax.Array:
    """grid values at integer-valued float cells (i, j); cells past the padding read as it."""
    origin = maze.origin.astype(jnp.float32)
    gi = jnp.clip(i - origin[0], 0, grid.shape[0] - 1).astype(jnp.int32)
    gj = jnp.clip(j - origin[1], 0, grid.shape[1] - 1).astype(jnp.int32)
    return grid[gi, gj]


def _wall_on_line(maze: MazeArrays, axis: int, line_cell: jax.Array,
                  other: jax.Array) -> jax.Array:
    """Whether cell `line_cell` along `axis` (`other` along the other axis) has a wall on its
    right (axis 0) / upper (axis 1) side."""
    if axis == 0:
        return _lookup(maze, maze.right, line_cell, other)
    return _lookup(maze, maze.up, other, line_cell)


def _first_wall(maze: MazeArrays, axis: int, start: jax.Array, end: jax.Array,
                step: jax.Array, probe_row: Callable[[jax.Array], jax.Array],
                lines: int) -> tuple[jax.Array, jax.Array]:
    """Whether the lines across `axis` crossed going from cell `start` to cell `end` (at
    most `lines`) hold a wall, and the first such line.

    The wall of a line is looked up on the cell the path occupies just before it: along
    `axis` the cell before the line, along the other axis `probe_row(line)`.
    """
    crossings = jnp.abs(end - start)
    hit, first = jnp.zeros(start.shape, bool), jnp.zeros_like(start)
    for i in range(lines):
        line = start + step * (i + 0.5)
        wall = _wall_on_line(maze, axis, start + step * i - (step < 0), probe_row(line))
        new = (i < crossings) & wall & ~hit
        hit, first = hit | new, jnp.where(new, line, first)
    return hit, first


def _axis_hit(maze: MazeArrays, p: jax.Array, d: jax.Array, end: jax.Array, axis: int,
              lines: int) -> tuple[jax.Array, jax.Array]:
    """maze._axis_hit from p along d: whether a wall on a line across `axis` is hit, and the
    first such line; `end` is rint of the end point along `axis`.

    The probe 0.999 of the way to a line is in the cell before it along `axis` (whatever
    the rounding), so only its other coordinate is computed.
    """
    pa, da = p[:, axis], d[:, axis]
    probe_row = lambda line: _cell_on_path(p, d, axis, _two_sum(line, -pa), _PROBE_PARTS)
    return _first_wall(maze, axis, jnp.rint(pa), end, jnp.sign(da), probe_row, lines)


def _lines(displacement: float) -> int:
    """Grid lines a move of at most `displacement` per axis can cross (rounding half to even
    lets a step of 1 cross two)."""
    return int(displacement) + 1


def _no_hit(maze: MazeArrays, p: jax.Array, d: jax.Array, lines: int) -> jax.Array:
    """Whether the path p -> p + d crosses no wall."""
    ends = _rint_of_sum(p, d)
    return ~_axis_hit(maze, p, d, ends[:, 0], 0, lines)[0] & \
        ~_axis_hit(maze, p, d, ends[:, 1], 1, lines)[0]


def _reachable(maze: MazeArrays, a: jax.Array, b: jax.Array, lines: int) -> jax.Array:
    """maze._reachable: cell b reached from cell a by a monotone wall-free path, for cells at
    most `lines` apart per axis (farther: False)."""
    n, step = jnp.abs(b - a), jnp.sign(b - a)
    reach, result = {}, jnp.zeros(a.shape[:1], bool)
    for u in range(lines + 1):
        for v in range(lines + 1):
            x, y = a[:, 0] + step[:, 0] * u, a[:, 1] + step[:, 1] * v
            ok = jnp.full(a.shape[:1], u == v == 0)
            if u:
                line_x = x - step[:, 0] - (step[:, 0] < 0)
                ok |= reach[u - 1, v] & ~_wall_on_line(maze, 0, line_x, y)
            if v:
                line_y = y - step[:, 1] - (step[:, 1] < 0)
                ok |= reach[u, v - 1] & ~_wall_on_line(maze, 1, line_y, x)
            reach[u, v] = ok
            result = jnp.where((n[:, 0] == u) & (n[:, 1] == v), ok, result)
    return result


@functools.partial(jax.jit, static_argnames="strict")
def move(maze: MazeArrays, positions: jax.Array, actions: jax.Array, draws: jax.Array,
         strict: bool = False) -> jax.Array:
    """Positions (N, 2) after displacements `actions` (N, 2), as edp.envs.maze.move.

    draws[i, k] (N, 3), uniform in [0, 1), is point i's repulsion U at its k-th wall hit. A hit
    zeroes the motion across the hit wall, so the second hit (along the other axis) ends the
    motion and the third column is never used; it is there to match the NumPy rule's
    three-pass bound. |actions| must not exceed maze.max_action per axis.
    """
    if positions.ndim != 2 or positions.shape[1] != 2 or actions.shape != positions.shape:
        raise ValueError(f"positions and actions must both be (N, 2); got {positions.shape}, "
                         f"{actions.shape}")
    if draws.shape != (positions.shape[0], 3):
        raise ValueError(f"draws must be (N, 3); got {draws.shape}")
    p, d = positions.astype(jnp.float32), actions.astype(jnp.float32)
    lines = _lines(maze.max_action)
    ends = _rint_of_sum(p, d)
    out = p + d
    hits, numerators = [], []
    for axis in (0, 1):
        hit, line = _axis_hit(maze, p, d, ends[:, axis], axis, lines)
        hits.append((hit, line))
        numerators.append(_two_sum(line, -p[:, axis]))  # fraction of the hit: this / d
    # sign(rx - ry) exactly; ties go to the alphabetically first side: down < left < right < up
    (hit_x, _), (hit_y, _) = hits
    negated_y = (-numerators[1][0], -numerators[1][1])
    order = _sign_dot(numerators[0], d[:, 1], negated_y, d[:, 0]) * jnp.sign(d[:, 0] * d[:, 1])
    vertical = hit_x & (~hit_y | (order < 0) | ((order == 0) & (d[:, 1] > 0)))
    for a, chosen in ((0, vertical), (1, hit_y & ~vertical)):
        b, (_, line), n = 1 - a, hits[a], numerators[a]
        wall = _backed_off(line, jnp.sign(d[:, a]), draws[:, 0])
        start = _cell_on_path(p, d, a, n, _ONE)  # the cell along b where the slide starts
        resting = (d[:, b] == 0) | ((n[0] == d[:, a]) & (n[1] == 0))  # r = 1: nothing left
        end = jnp.where(resting, start, ends[:, b])
        row = jnp.rint(wall)
        hit2, line2 = _first_wall(maze, b, start, end, jnp.sign(d[:, b]), lambda _, row=row: row,
                                  lines)
        slid = jnp.where(hit2, _backed_off(line2, jnp.sign(d[:, b]), draws[:, 1]), out[:, b])
        moved = jnp.stack([wall, slid] if a == 0 else [slid, wall], axis=1)
        out = jnp.where(chosen[:, None], moved, out)
    if strict:
        ok = _reachable(maze, jnp.rint(p), jnp.rint(out), lines)
        out = jnp.where(ok[:, None], out, p)
    return out


# --- resets ----------------------------------------------------------------------------------

def _sample_in_cells(maze: MazeArrays, key: jax.Array, cells: jax.Array,
                     margin: float) -> jax.Array:
    """maze._sample_in_cells: per cell, rejection-sample cell + s, s ~ U[-0.5, 0.5)^2, until
    moving on by margin * sign(s) hits no wall (exact: a while loop until all are accepted)."""
    lines = _lines(margin)

    def body(carry):
        key, points, todo = carry
        key, sub = jax.random.split(key)
        shift = jax.random.uniform(sub, cells.shape, jnp.float32, -0.5, 0.5)
        candidate = cells + shift
        ok = todo & _no_hit(maze, candidate, margin * jnp.sign(shift), lines)
        return key, jnp.where(ok[:, None], candidate, points), todo & ~ok

    todo = jnp.ones(cells.shape[:1], bool)
    _, points, _ = jax.lax.while_loop(lambda c: c[2].any(), body,
                                      (key, jnp.zeros_like(cells), todo))
    return points


@functools.partial(jax.jit, static_argnames=("num", "fixed_start"))
def reset(maze: MazeArrays, key: jax.Array, num: int,
          fixed_start: bool = False) -> tuple[jax.Array, jax.Array]:
    """(starts, goals), each (num, 2) float32, drawn as MazeEnv.reset draws them."""
    k_start, k_pick, k_goal = jax.random.split(key, 3)
    starts = jnp.broadcast_to(maze.start, (num, 2))
    if not fixed_start:
        starts = _sample_in_cells(maze, k_start, starts, _START_MARGIN)
    picked = maze.goals[jax.random.randint(k_pick, (num,), 0, maze.goals.shape[0])]
    return starts, _sample_in_cells(maze, k_goal, picked, _GOAL_MARGIN)


@jax.jit
def reward(positions: jax.Array, goals: jax.Array) -> jax.Array:
    """(N,) float32: 0 within the success radius of the goal, else -1 (MazeEnv.step)."""
    near = jnp.linalg.norm(positions - goals, axis=-1) <= _SUCCESS_RADIUS
    return jnp.where(near, 0.0, -1.0).astype(jnp.float32)

"""Point mazes: a kinematic 2-D point moving among unit walls (docs/mazes.md §2-§4).

`move` is the upstream collision rule batched over points (corner leaks included, so coverage
numbers stay comparable); `MazeEnv` is the VecEnv built on it.
"""

from __future__ import annotations

import functools
from collections import deque
from dataclasses import dataclass

import numpy as np

from edp.envs.base import Step
from edp.envs.maze_layouts import LAYOUTS, Cell, Wall, unit_walls

MAZE_NAMES: tuple[str, ...] = tuple(LAYOUTS)
EPISODE_LENGTH = 50  # ExDM's horizon n (docs/mazes.md §1)

_PAD = 2  # wall-free cells around each grid: lookups near or past the border find no walls
_PROBE = 0.999  # upstream looks up the cell "just before" a crossing at this fraction of it
_REPULSION = 0.01  # after a hit upstream backs off from the wall by 0.01 * U, U ~ U[0, 1)
_START_MARGIN = 0.05  # reset: distance kept from the start cell's walls (§4.7)
_GOAL_MARGIN = 0.175  # 0.025 + success radius; upstream clamps it to [0.01, 0.4] (§4.7)
_SUCCESS_RADIUS = 0.15


@dataclass(frozen=True, eq=False)
class Maze:
    """A maze's geometry plus per-cell wall grids for vectorised collision checks.

    Grid entry [i, j] describes cell (origin[0] + i, origin[1] + j); the grids extend `_PAD`
    cells past the bounding box. A cell's left wall is the right wall of its left neighbour and
    its lower wall the upper wall of the cell below, so two grids describe every wall.
    """

    name: str
    walls: frozenset[Wall]
    bounds: tuple[float, float, float, float]  # x_min, x_max, y_min, y_max of wall endpoints
    cells: frozenset[Cell]  # the maze proper: cells the start cell reaches
    start: Cell
    goals: tuple[Cell, ...]
    action_range: float
    bin_width: float
    origin: Cell
    right: np.ndarray  # bool (W, H): wall on the cell's right side
    up: np.ndarray  # bool (W, H): wall on the cell's upper side
    inside: np.ndarray  # bool (W, H): the cell is one of `cells`


def check_maze(name: str, where: str = "") -> None:
    """A one-line ValueError naming the valid mazes unless `name` is one; `where` tells in
    which env name it was typed."""
    if name not in LAYOUTS:
        raise ValueError(f"unknown maze '{name}'{where}; valid mazes: {', '.join(MAZE_NAMES)}")


@functools.cache
def get_maze(name: str) -> Maze:
    """The maze called `name` (one of MAZE_NAMES), built once and shared."""
    check_maze(name)
    layout = LAYOUTS[name]
    walls = unit_walls(layout)
    bounds = (
        min(x_lo for (x_lo, _), _ in walls),
        max(x_hi for (_, x_hi), _ in walls),
        min(y_lo for _, (y_lo, _) in walls),
        max(y_hi for _, (_, y_hi) in walls),
    )
    origin = (round(bounds[0] + 0.5) - _PAD, round(bounds[2] + 0.5) - _PAD)
    shape = (round(bounds[1] - bounds[0]) + 2 * _PAD, round(bounds[3] - bounds[2]) + 2 * _PAD)
    right, up = np.zeros(shape, bool), np.zeros(shape, bool)
    for (x_lo, x_hi), (y_lo, _) in walls:
        if x_lo == x_hi:
            right[round(x_lo - 0.5) - origin[0], round(y_lo + 0.5) - origin[1]] = True
        else:
            up[round(x_lo + 0.5) - origin[0], round(y_lo - 0.5) - origin[1]] = True
    start = (layout.start[0] - origin[0], layout.start[1] - origin[1])
    inside = _flood(right, up, start, _box_mask(shape))
    for grid in (right, up, inside):
        grid.flags.writeable = False
    cells = frozenset((int(i) + origin[0], int(j) + origin[1]) for i, j in np.argwhere(inside))
    return Maze(name, walls, bounds, cells, layout.start, layout.goals, layout.action_range,
                layout.bin_width, origin, right, up, inside)


def _box_mask(shape: tuple[int, int]) -> np.ndarray:
    """Grid cells inside the bounding box, i.e. not in the padding."""
    mask = np.zeros(shape, bool)
    mask[_PAD:-_PAD, _PAD:-_PAD] = True
    return mask


def _flood(right: np.ndarray, up: np.ndarray, seed: Cell, allowed: np.ndarray) -> np.ndarray:
    """Grid cells reachable from `seed` through wall-free edges, staying in `allowed`."""
    reached = np.zeros_like(allowed)
    reached[seed] = True
    todo = deque([seed])
    while todo:
        i, j = todo.popleft()
        steps = (
            ((i + 1, j), not right[i, j]),
            ((i - 1, j), i > 0 and not right[i - 1, j]),
            ((i, j + 1), not up[i, j]),
            ((i, j - 1), j > 0 and not up[i, j - 1]),
        )
        for cell, open_edge in steps:
            inside = 0 <= cell[0] < allowed.shape[0] and 0 <= cell[1] < allowed.shape[1]
            if open_edge and inside and allowed[cell] and not reached[cell]:
                reached[cell] = True
                todo.append(cell)
    return reached


def enclosed_area(maze: Maze) -> int:
    """Area the coverage metric divides by: bounding-box cells walled off from the outside.

    This is what polygonizing the wall set measures (docs/mazes.md §5.1 step 2), enclosed
    pockets that are not maze cells (square_d) included.
    """
    outside = _flood(maze.right, maze.up, (0, 0), np.ones_like(maze.inside))
    return int(np.sum(_box_mask(outside.shape) & ~outside))


def inside_maze(maze: Maze, positions: np.ndarray) -> np.ndarray:
    """Which of the (N, 2) positions lie in a maze cell (cells as `move` rounds them)."""
    return _lookup(maze, maze.inside, _cells(maze, positions))


def _near_grid(maze: Maze) -> tuple[np.ndarray, np.ndarray]:
    """Lowest and highest (x, y) worth telling apart: two cells beyond the padded grid, where
    `_lookup` (after `has_wall`'s shift too) reads the wall-free padding, as for any cell
    further out. Clamping coordinates to them changes no answer and bounds every search."""
    lo = np.asarray(maze.origin, np.float64) - 2
    return lo, lo + maze.right.shape + 3


def _cells(maze: Maze, positions: np.ndarray) -> np.ndarray:
    """Integer cells (N, 2) of points by round-half-to-even, clamped to `_near_grid` (so no
    size overflows the integers)."""
    return np.rint(np.clip(np.asarray(positions, np.float64), *_near_grid(maze))).astype(np.int64)


def _lookup(maze: Maze, grid: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """grid values at integer cells (N, 2); cells beyond the padding read as the padding."""
    i = np.minimum(np.maximum(cells[:, 0] - maze.origin[0], 0), grid.shape[0] - 1)
    j = np.minimum(np.maximum(cells[:, 1] - maze.origin[1], 0), grid.shape[1] - 1)
    return grid[i, j]  # (np.clip is several times slower on small integer arrays)


def has_wall(maze: Maze, cells: np.ndarray, axis: int, step: np.ndarray) -> np.ndarray:
    """Whether `cells` have a wall on the side facing `step` (sign, per point) along `axis`."""
    cells = cells.copy()
    cells[:, axis] -= step < 0
    return _lookup(maze, maze.right if axis == 0 else maze.up, cells)


def _axis_hit(maze: Maze, p: np.ndarray, d: np.ndarray, axis: int) -> np.ndarray:
    """Fraction of `d` at which the path first hits a wall on a line across `axis` (inf: none).

    Upstream rule (§4.3 steps 1-2): cells are found by round-half-to-even, and the wall of a
    crossed line is looked up on the cell the path occupies at 0.999 of the way to it.
    """
    start = np.rint(p[:, axis])
    crossings = np.abs(np.rint(p[:, axis] + d[:, axis]) - start)
    step = np.sign(d[:, axis])
    safe = np.where(d[:, axis] == 0, 1.0, d[:, axis])  # no crossings there; avoids 0 / 0
    lo, count = _probed_lines(maze, p, d, (start + 0.5 * step - p[:, axis]) / safe, step / safe,
                              crossings)
    first = np.full(len(p), np.inf)
    for k in range(int(count.max(initial=0))):  # in order along the path: the first hit wins
        i = lo + k
        r = (start + step * (i + 0.5) - p[:, axis]) / safe
        probe = _cells(maze, p + (_PROBE * r)[:, None] * d)
        hit = (k < count) & has_wall(maze, probe, axis, step)
        first = np.where(hit & np.isinf(first), r, first)
    return first


def _probed_lines(maze: Maze, p: np.ndarray, d: np.ndarray, r0: np.ndarray, dr: np.ndarray,
                  crossings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The crossed lines i (fraction r0 + i dr of `d`) whose probe can find a wall: (first i,
    how many). A probe is affine in i, and one outside the padded grid reads the wall-free
    padding, so only a run of at most the grid's width of lines is looked at, whatever the
    size of `d` (a diverged policy's 1e6 must not take a million passes). Both ends are widened
    by a margin of lines and cells against rounding; the extra lines read no wall."""
    lo, hi = np.zeros(len(p)), crossings - 1
    near = _near_grid(maze)
    for c in (0, 1):
        a = p[:, c] + _PROBE * r0 * d[:, c]  # the probe's coordinate c is a + b i
        b = _PROBE * dr * d[:, c]
        low, high = near[0][c], near[1][c]
        flat = b == 0
        b = np.where(flat, 1.0, b)
        ends = np.sort(np.stack([(low - a) / b, (high - a) / b]), axis=0)
        inside = (low <= a) & (a <= high)
        lo = np.maximum(lo, np.where(flat, np.where(inside, 0.0, np.inf), np.floor(ends[0]) - 1))
        hi = np.minimum(hi, np.where(flat, np.where(inside, hi, -np.inf), np.ceil(ends[1]) + 1))
    count = np.where(lo <= hi, hi - lo + 1, 0.0)
    return np.where(lo <= hi, lo, 0.0), count


def _first_hit(maze: Maze, p: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fraction of the first wall hit (inf: none) and whether that wall is vertical.

    Equal fractions go to the alphabetically first side (down < left < right < up), as
    upstream sorts its (fraction, side) hits.
    """
    rx, ry = _axis_hit(maze, p, d, 0), _axis_hit(maze, p, d, 1)
    vertical = (rx < ry) | ((rx == ry) & (d[:, 1] > 0))
    return np.minimum(rx, ry), vertical


def _slide(maze: Maze, p: np.ndarray, d: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Upstream `Maze.move` (§4.3) on float64 arrays: stop at the first wall, back off, slide.

    Each hit zeroes the displacement across the hit wall, so after two hits nothing is left
    to move: the loop runs at most three passes, and upstream's recursion cut-off at depth 3
    is never reached, whatever the size of `d`.
    """
    out = np.empty_like(p)
    todo = np.arange(len(p))
    while todo.size:
        r, vertical = _first_hit(maze, p, d)
        hit = np.isfinite(r)
        out[todo[~hit]] = p[~hit] + d[~hit]
        todo, p, d, r, vertical = todo[hit], p[hit], d[hit], r[hit], vertical[hit]
        if not todo.size:
            break
        rows, axis = np.arange(todo.size), np.where(vertical, 0, 1)
        stop = p + r[:, None] * d
        stop[rows, axis] -= np.sign(d[rows, axis]) * (_REPULSION * rng.random(todo.size))
        d = (1 - r)[:, None] * d
        d[rows, axis] = 0.0
        p = stop
    return out


def _reachable(maze: Maze, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Whether cell b is reached from cell a by a monotone path through wall-free edges.

    reach[(u, v)] is for the cell u steps from a toward b along x and v along y.
    """
    n, step = np.abs(b - a), np.sign(b - a)
    reach = {}
    for u in range(int(n[:, 0].max(initial=0)) + 1):
        for v in range(int(n[:, 1].max(initial=0)) + 1):
            cell = a + step * (u, v)
            ok = np.full(len(a), u == v == 0)
            if u:
                ok |= reach[u - 1, v] & ~has_wall(maze, cell - step * (1, 0), 0, step[:, 0])
            if v:
                ok |= reach[u, v - 1] & ~has_wall(maze, cell - step * (0, 1), 1, step[:, 1])
            reach[u, v] = ok
    conditions = [(n[:, 0] == u) & (n[:, 1] == v) for u, v in reach]
    return np.select(conditions, list(reach.values()), default=False)


def move(maze: Maze | str, positions: np.ndarray, actions: np.ndarray, rng: np.random.Generator,
         strict: bool = False) -> np.ndarray:
    """Positions (N, 2) after displacements `actions` (N, 2), as float32.

    Walls stop the motion across them; the point slides along, 0-0.01 away from the wall.
    `rng` is anything with numpy's `random(size)` (tests pass one returning constants); a
    repulsion U is drawn for each point that hits a wall, in point order, each pass.
    Default: upstream's rule, corner leaks included (§4.4). strict=True rejects any move whose
    end cell is not reached from its start cell by a monotone path of wall-free edges (the
    leaks): the point stays where it was, so a point never leaves the cells it can reach.
    """
    maze = get_maze(maze) if isinstance(maze, str) else maze
    p = np.asarray(positions, np.float64)
    d = np.asarray(actions, np.float64)
    if p.ndim != 2 or p.shape[1] != 2 or d.shape != p.shape:
        raise ValueError(f"positions and actions must both be (N, 2); got {p.shape}, {d.shape}")
    if not (np.isfinite(p).all() and np.isfinite(d).all()):
        raise ValueError("positions and actions must be finite")
    out = _slide(maze, p, d, rng).astype(np.float32)
    if strict:  # beyond the grid all is open: clamped cells bound the search by the grid
        start, end = _cells(maze, p), _cells(maze, out)
        out = np.where(_reachable(maze, start, end)[:, None], out, p.astype(np.float32))
    return out


def _sample_in_cells(maze: Maze, cells: np.ndarray, margin: float,
                     rng: np.random.Generator) -> np.ndarray:
    """A point per cell, about uniform over the cell minus a `margin` band along its walls.

    Upstream's rejection sampler (§4.7): keep cell + s, s ~ U[-0.5, 0.5]^2, if moving on by
    margin * sign(s) hits no wall. That test move is diagonal, so next to an open neighbour
    (square_d's goal cells) it also accepts some points closer than `margin` to a wall.
    """
    points = np.empty(cells.shape)
    todo = np.arange(len(cells))
    while todo.size:
        shift = rng.uniform(-0.5, 0.5, (todo.size, 2))
        candidate = cells[todo] + shift
        ok = np.isinf(_first_hit(maze, candidate, margin * np.sign(shift))[0])
        points[todo[ok]] = candidate[ok]
        todo = todo[~ok]
    return points


class MazeEnv:
    """N independent points in one maze, fixed horizon, sparse goal reward (VecEnv).

    One generator seeded with `seed` drives resets, goals and wall repulsion. Actions are
    forwarded unclipped, as in ExDM. The reward (0 within 0.15 of the episode's goal, else -1)
    is the inherited upstream one that reward-free pre-training ignores.
    """

    def __init__(self, name: str, num_envs: int = 1, seed: int = 0,
                 horizon: int = EPISODE_LENGTH,
                 strict: bool = False, fixed_start: bool = False):
        if num_envs < 1 or horizon < 1:
            raise ValueError(f"num_envs and horizon must be >= 1; got {num_envs}, {horizon}")
        self.maze = get_maze(name)
        self.name = f"maze/{name}"
        self.num_envs = num_envs
        self.observation_dim = 2
        self.action_dim = 2
        self.episode_length = horizon
        self.strict = strict
        self.fixed_start = fixed_start  # every reset starts exactly at the start cell's centre
        self.rng = np.random.default_rng(seed)
        self.goals = np.zeros((num_envs, 2), np.float32)  # this episode's goal points
        self._positions = np.zeros((num_envs, 2), np.float32)
        self._t: int | None = None  # steps taken this episode; None before the first reset

    def reset(self) -> np.ndarray:
        """New episode: starts, then goals, drawn as docs/mazes.md §4.7; returns (N, 2) float32."""
        starts = np.tile(np.asarray(self.maze.start, np.float64), (self.num_envs, 1))
        if not self.fixed_start:
            starts = _sample_in_cells(self.maze, starts, _START_MARGIN, self.rng)
        goal_cells = np.asarray(self.maze.goals, np.float64)
        picked = goal_cells[self.rng.integers(len(goal_cells), size=self.num_envs)]
        self.goals = _sample_in_cells(self.maze, picked, _GOAL_MARGIN, self.rng).astype(np.float32)
        self._positions = starts.astype(np.float32)
        self._t = 0
        return self._positions.copy()

    def get_rng_state(self) -> dict:
        return self.rng.bit_generator.state

    def set_rng_state(self, state: dict) -> None:
        self.rng.bit_generator.state = state

    def step(self, actions: np.ndarray) -> Step:
        """Move every point by its action; `done` after exactly `episode_length` steps."""
        if self._t is None or self._t >= self.episode_length:
            raise RuntimeError("call reset() first: no episode is running")
        self._positions = move(self.maze, self._positions, actions, self.rng, self.strict)
        self._t += 1
        distance = np.linalg.norm(self._positions - self.goals, axis=1)
        reward = np.where(distance <= _SUCCESS_RADIUS, 0.0, -1.0).astype(np.float32)
        return Step(self._positions.copy(), reward, self._t == self.episode_length)


def draw_walls(ax, maze: Maze | str, **kwargs):
    """Draw the walls as black segments on a matplotlib Axes framed on the maze's bounds.

    kwargs go to LineCollection (e.g. colors, linewidths); returns the collection.
    """
    from matplotlib.collections import LineCollection

    maze = get_maze(maze) if isinstance(maze, str) else maze
    segments = [((x_lo, y_lo), (x_hi, y_hi)) for (x_lo, x_hi), (y_lo, y_hi) in maze.walls]
    lines = ax.add_collection(LineCollection(segments, **({"colors": "black"} | kwargs)))
    ax.set_aspect("equal")
    ax.set_xlim(*maze.bounds[:2])
    ax.set_ylim(*maze.bounds[2:])
    return lines

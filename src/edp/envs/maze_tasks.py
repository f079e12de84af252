"""Goal-reaching fine-tuning tasks on the point mazes: `maze/<maze>:<goal>`.

<goal> is one of the maze's named goals (`GOALS`, e.g. `maze/square_tree:outer_left_leaf`) or
`goal=<x>,<y>`, any point of a maze cell that does not lie on a wall (`maze/square_a:goal=4,0`).
A task is its pre-training maze with another reward: same dynamics, same reset distribution and
random stream, same fixed 50-step episodes, discount 1 (no terminal state). The reward is
computed on the state after the step:

    r(s) = clip(1 - d(s) / d0, 0, 1),    d0 = max(d(start), 1)

where d is the maze distance to the goal (below) and `start` the centre of the start cell. So r
is 1 at the goal, 0 at the start and anywhere farther from the goal than the start, and 0 for
points leaked out of the maze (docs/mazes.md §4.4). Why this reward:

* Dense, so that DDPG learns a task in ~20-50k frames on a CPU. A sparse in-radius reward at
  the far goals is almost never collected by an agent that has not already explored the whole
  maze (a toy EDP never reached the tree's leaves in 82k frames), and most fine-tuning curves
  would be flat zeros. The dense reward still rewards a good pre-trained policy: it starts
  closer to the goal and improves faster.
* Along the maze, not straight: -||s - g|| has local optima behind walls in most mazes
  (square_a's far end is 4 cells right of the start but 12 along the path; square_bottleneck's
  top-left corner is just above the start room, behind a wall). With d, every point but the
  goal can move closer to it: no local optimum, only the 0-plateau beyond the start.
* In [0, 1] and ~0 at the start, so returns are positive and return / expert_score is a fraction
  (a policy that stays at the start scores ~0), as URLB's normalised scores.
* Reaching the goal does not end the episode (the replay buffer needs fixed-length episodes):
  the best policy gets there fast and stays, which the reward pays every step.

d: the length of the shortest path made of straight segments inside cells (cells are convex and
walls lie on their borders) that cross cell sides at five points per side (the midpoint,
+-0.225 and +-0.45 along the side): Dijkstra from the goal over those points, computed once per
goal. It is exact along straight corridors, cuts corners to within 0.05 of the wall's end, and
overestimates the true shortest path only slightly in open rooms.

Expert score (the normaliser of evaluation returns): the upper bound episode_length x 1 = 50,
every step at the goal. No policy reaches it on the named goals, which lie 5-23 cells from the
start: the tests' scripted shortest-path policy scores 0.78-0.96 of it.
"""

from __future__ import annotations

import functools
import heapq
import itertools
import math
from dataclasses import dataclass

import numpy as np

from edp.envs.base import Step
from edp.envs.envid import EnvId
from edp.envs.maze import EPISODE_LENGTH, MAZE_NAMES, Maze, MazeEnv, get_maze, inside_maze
from edp.envs.maze_layouts import Cell

# Named goals (cell centres), chosen from the wall data: dead ends and corners far along the
# maze from the start; the number is the path length from the start in cells (docs/mazes.md §3).
GOALS: dict[str, dict[str, Cell]] = {
    "square_a": {
        "far_end": (4, 0),  # 12: the end of the U, upstream's goal square
        "branch_end": (2, 0),  # 6: the dead end of the side branch
    },
    "square_b": {
        "far_end": (4, 0),  # 12: the end of the U, upstream's goal square
        "branch_end": (2, 0),  # 10: the top of the middle dead-end column
    },
    "square_c": {
        "far_end": (4, -4),  # 16: the end of the serpentine, upstream's goal square
        "halfway": (2, 0),  # 10: the top of the serpentine's middle column
    },
    "square_d": {
        "left_hook": (-1, -2),  # 9: the tip of the left hook, upstream's goal square
        "right_hook": (1, -2),  # 9: its mirror image
    },
    "square_tree": {  # the four leaves, 12 each
        "outer_left_leaf": (-6, -6),
        "inner_left_leaf": (-2, -6),
        "inner_right_leaf": (2, -6),
        "outer_right_leaf": (6, -6),
    },
    "square_bottleneck": {
        "top_left": (0, 9),  # 23: above the start room, reached through the bottleneck
        "top_right": (9, 9),  # 18: upstream's goal square
    },
    "square_large": {
        "top_right": (9, 9),  # 22: upstream's goal square
        "top_left": (0, 9),  # 13
        "bottom_right": (9, 0),  # 13
    },
    "square_corridor": {
        "right_end": (5, 0),  # 5
        "left_end": (-5, 0),  # 5
    },
}

MAX_REWARD = 1.0
EXPERT_SCORE = EPISODE_LENGTH * MAX_REWARD  # upper bound: every step at the goal
_ON_WALL = 1e-6  # a goal this close to a wall segment lies on it


def task_names() -> tuple[str, ...]:
    """maze/<maze>:<goal> for every named goal of every maze."""
    return tuple(f"maze/{maze}:{goal}" for maze in MAZE_NAMES for goal in GOALS[maze])


def valid_goals(maze: str) -> str:
    return f"{', '.join(GOALS[maze])} or goal=<x>,<y> (a point of a maze cell, not on a wall)"


def goal_point(maze: str, spec: str, name: str) -> tuple[float, float]:
    """The point of goal `spec` (a named goal or goal=<x>,<y>) in `maze`, as EnvId.parse checks
    the env `name`; a one-line ValueError names the valid goals."""
    if spec in GOALS[maze]:
        x, y = GOALS[maze][spec]
        return float(x), float(y)
    if not spec.startswith("goal="):
        raise ValueError(f"unknown goal '{spec}' in '{name}'; valid goals: {valid_goals(maze)}")
    try:
        x, y = (float(v) for v in spec.removeprefix("goal=").split(","))
    except ValueError:
        x = y = math.nan
    where = None
    if not (math.isfinite(x) and math.isfinite(y)):
        where = "is not two finite numbers"
    elif not inside_maze(get_maze(maze), np.array([[x, y]]))[0]:
        where = f"({x:g}, {y:g}) is outside the maze's cells"
    elif _on_wall(get_maze(maze), x, y):
        where = f"({x:g}, {y:g}) lies on a wall"
    if where:
        raise ValueError(f"bad goal '{spec}' in '{name}': {where}; valid goals: "
                         f"{valid_goals(maze)}")
    return x, y


def _on_wall(maze: Maze, x: float, y: float) -> bool:
    for (x_lo, x_hi), (y_lo, y_hi) in maze.walls:
        dx = max(x_lo - x, 0.0, x - x_hi)
        dy = max(y_lo - y, 0.0, y - y_hi)
        if math.hypot(dx, dy) < _ON_WALL:
            return True
    return False


_SIDES = ((1, 0), (-1, 0), (0, 1), (0, -1))  # right, left, up, down
# Where paths may cross a cell side, as offsets from its midpoint along the side: the midpoint
# for corridors, points near the ends to round corners, and between for open rooms.
_CROSSINGS = (-0.45, -0.225, 0.0, 0.225, 0.45)


def _open(maze: Maze, cell: Cell, side: tuple[int, int]) -> bool:
    """Whether `cell` and its neighbour on `side` are both maze cells with no wall between."""
    (i, j), (di, dj) = cell, side
    if (i + di, j + dj) not in maze.cells:
        return False
    if di:
        x = i + di / 2
        return ((x, x), (j - 0.5, j + 0.5)) not in maze.walls
    y = j + dj / 2
    return ((i - 0.5, i + 0.5), (y, y)) not in maze.walls


def _crossings(cell: Cell, side: tuple[int, int]) -> list[tuple[float, float]]:
    """The crossing points of a cell side; a side shared by two cells gets the same points."""
    along = (abs(side[1]), abs(side[0]))
    return [(cell[0] + side[0] / 2 + o * along[0], cell[1] + side[1] / 2 + o * along[1])
            for o in _CROSSINGS]


@dataclass(frozen=True, eq=False)
class GoalField:
    """Maze distance to one goal, as grids over the maze's cells (indexed like Maze's grids).

    For a point p in cell c: d(p) = min(|p - g| if c's square contains g,
    min_k |p - crossing[c, k]| + cost[c, k]) over the crossing points k of c's sides, whose
    cost is the path length from there to the goal (inf on walled sides).
    """

    maze: Maze
    goal: np.ndarray  # (2,) float64
    crossings: np.ndarray  # (W, H, K, 2) crossing points of the cell's four sides
    costs: np.ndarray  # (W, H, K) path length from each crossing point to the goal
    sees_goal: np.ndarray  # (W, H) bool: the cell's closed square contains the goal
    scale: float  # d0 = max(d(start), 1)

    def distance(self, points: np.ndarray) -> np.ndarray:
        """(N,) float64 maze distances of (N, 2) points to the goal; inf outside the maze."""
        p = np.asarray(points, np.float64).reshape(-1, 2)
        cells = np.rint(p).astype(np.int64)
        i = np.clip(cells[:, 0] - self.maze.origin[0], 0, self.costs.shape[0] - 1)
        j = np.clip(cells[:, 1] - self.maze.origin[1], 0, self.costs.shape[1] - 1)
        via = np.linalg.norm(p[:, None, :] - self.crossings[i, j], axis=-1) + self.costs[i, j]
        direct = np.where(self.sees_goal[i, j], np.linalg.norm(p - self.goal, axis=1), np.inf)
        d = np.minimum(via.min(axis=1), direct)
        return np.where(inside_maze(self.maze, p), d, np.inf)

    def reward(self, points: np.ndarray) -> np.ndarray:
        """(N,) float32 rewards clip(1 - d / d0, 0, 1) of (N, 2) points."""
        return np.clip(1.0 - self.distance(points) / self.scale, 0.0, MAX_REWARD).astype(
            np.float32)


@functools.cache
def goal_field(maze_name: str, goal: tuple[float, float]) -> GoalField:
    """The distance field of a goal point in a maze, built once: Dijkstra from the goal over
    the crossing points, straight segments within each cell."""
    maze = get_maze(maze_name)
    g = (float(goal[0]), float(goal[1]))
    sees = {c for c in maze.cells if max(abs(g[0] - c[0]), abs(g[1] - c[1])) <= 0.5}
    neighbours: dict[tuple[float, float], list[tuple[float, tuple[float, float]]]] = {}
    for c in maze.cells:
        nodes = [x for s in _SIDES if _open(maze, c, s) for x in _crossings(c, s)]
        nodes += [g] if c in sees else []
        for a, b in itertools.permutations(nodes, 2):
            neighbours.setdefault(a, []).append((math.dist(a, b), b))
    cost = {g: 0.0}
    todo = [(0.0, g)]
    while todo:
        d, node = heapq.heappop(todo)
        if d > cost[node]:
            continue
        for length, other in neighbours.get(node, ()):
            if d + length < cost.get(other, math.inf):
                cost[other] = d + length
                heapq.heappush(todo, (d + length, other))
    shape, k = maze.inside.shape, len(_SIDES) * len(_CROSSINGS)
    crossings = np.zeros((*shape, k, 2))
    costs = np.full((*shape, k), np.inf)
    sees_goal = np.zeros(shape, bool)
    for c in maze.cells:
        i, j = c[0] - maze.origin[0], c[1] - maze.origin[1]
        sees_goal[i, j] = c in sees
        points = [x for s in _SIDES for x in _crossings(c, s)]
        crossings[i, j] = points
        open_sides = [_open(maze, c, s) for s in _SIDES for _ in _CROSSINGS]
        costs[i, j] = [cost.get(x, math.inf) if o else math.inf
                       for x, o in zip(points, open_sides, strict=True)]
    field = GoalField(maze, np.asarray(g), crossings, costs, sees_goal, 1.0)
    start = field.distance(np.asarray([maze.start], np.float64))[0]
    return GoalField(maze, np.asarray(g), crossings, costs, sees_goal, max(float(start), 1.0))


class MazeGoalEnv(MazeEnv):
    """A maze task (VecEnv): MazeEnv's episodes with the goal reward of this module.

    Resets draw from the same stream as the pre-training maze (the inherited goal sampling
    included), so a seed gives the same start points; `goals` then holds the task's goal.
    """

    def __init__(self, task: EnvId | str, num_envs: int = 1, seed: int = 0,
                 horizon: int = EPISODE_LENGTH, strict: bool = False, fixed_start: bool = False):
        task = EnvId.parse(task) if isinstance(task, str) else task
        if task.goal is None:
            raise ValueError(f"'{task}' is not a maze task; expected maze/<maze>:<goal>")
        super().__init__(task.maze, num_envs, seed, horizon, strict, fixed_start)
        self.task = task
        self.name = str(task)
        self.field = goal_field(task.maze, task.goal_point)

    def reset(self) -> np.ndarray:
        observation = super().reset()
        self.goals[:] = self.task.goal_point
        return observation

    def step(self, actions: np.ndarray) -> Step:
        step = super().step(actions)
        return step._replace(reward=self.field.reward(step.observation))

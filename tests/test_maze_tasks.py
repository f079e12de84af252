"""Goal-reaching maze tasks: names, the maze-distance reward, episodes, expert scores."""

from __future__ import annotations

from collections import deque

import numpy as np
import pytest

from edp.envs import EnvId, env_names, expert_score, make_env
from edp.envs.maze import MAZE_NAMES, MazeEnv, get_maze
from edp.envs.maze_tasks import EXPERT_SCORE, GOALS, MazeGoalEnv, goal_field, task_names

TASKS = task_names()


def _path(maze, goal_cell):
    """Cells of a shortest path start -> goal cell, by BFS straight on the wall set."""

    def open_between(a, b):
        (i, j), (k, m) = a, b
        if i != k:
            x = (i + k) / 2
            return ((x, x), (j - 0.5, j + 0.5)) not in maze.walls
        y = (j + m) / 2
        return ((i - 0.5, i + 0.5), (y, y)) not in maze.walls

    parent = {maze.start: None}
    todo = deque([maze.start])
    while todo:
        cell = todo.popleft()
        for di, dj in ((1, 0), (-1, 0), (0, 1), (0, -1)):
            nxt = (cell[0] + di, cell[1] + dj)
            if nxt in maze.cells and nxt not in parent and open_between(cell, nxt):
                parent[nxt] = cell
                todo.append(nxt)
    path, cell = [], goal_cell
    while cell is not None:
        path.append(cell)
        cell = parent[cell]
    return path[::-1]


# --- names -----------------------------------------------------------------------------------

def test_every_maze_has_named_goals_far_from_the_start():
    assert set(GOALS) == set(MAZE_NAMES)
    for maze_id in MAZE_NAMES[:7]:
        assert len(GOALS[maze_id]) >= 2
    for maze_id, goals in GOALS.items():
        maze = get_maze(maze_id)
        for cell in goals.values():
            assert cell in maze.cells
            assert len(_path(maze, cell)) - 1 >= 5


def test_task_names_are_listed_and_accepted():
    names = env_names()
    assert "maze/square_tree:outer_left_leaf" in TASKS
    assert "maze/square_bottleneck:top_left" in TASKS
    assert set(TASKS) <= set(names) and "maze/square_tree" in names
    for name in TASKS:
        task = EnvId.parse(name)
        assert task.is_maze and task.family == "maze" and str(task) == name
    assert EnvId.parse("maze/square_tree:outer_left_leaf").maze == "square_tree"
    assert EnvId.parse("maze/square_a:goal=4,0").maze == "square_a"
    assert EnvId.parse("maze/square_a").maze == "square_a"


def test_parse_named_and_point_goals():
    task = EnvId.parse("maze/square_tree:outer_right_leaf")
    assert (task.maze, task.goal, task.goal_point) == ("square_tree", "outer_right_leaf",
                                                       (6.0, -6.0))
    task = EnvId.parse("maze/square_a:goal=4,-0.25")
    assert (task.maze, task.goal_point, str(task)) == ("square_a", (4.0, -0.25),
                                                       "maze/square_a:goal=4,-0.25")
    EnvId.parse("maze/square_large:goal=5.5,5")  # on a side without a wall
    with pytest.raises(ValueError, match="'maze/square_a' is not a maze task"):
        MazeGoalEnv("maze/square_a")


@pytest.mark.parametrize("name, match", [
    ("maze/square_tree:far_leaf", "unknown goal 'far_leaf'.*valid goals: outer_left_leaf, "
                                  "inner_left_leaf, inner_right_leaf, outer_right_leaf or goal="),
    ("maze/square_a:", "unknown goal ''.*valid goals: far_end, branch_end"),
    ("maze/square_a:goal=10,0", r"\(10, 0\) is outside the maze's cells.*valid goals: far_end"),
    ("maze/square_a:goal=1,0", r"\(1, 0\) is outside the maze's cells"),  # a non-maze cell
    ("maze/square_a:goal=0.5,0", r"\(0.5, 0\) lies on a wall.*valid goals"),
    ("maze/square_a:goal=0,0.5", r"\(0, 0.5\) lies on a wall"),
    ("maze/square_a:goal=4", "not two finite numbers"),
    ("maze/square_a:goal=a,b", "not two finite numbers"),
    ("maze/square_a:goal=nan,0", "not two finite numbers"),
    ("maze/square_a:goal=1,2,3", "not two finite numbers"),
    ("maze/square_z:far_end", "unknown maze 'square_z'.*square_large"),
])
def test_bad_task_names_give_one_line_errors(name, match):
    for call in (EnvId.parse, make_env, expert_score):
        with pytest.raises(ValueError, match=match) as error:
            call(name)
        assert "\n" not in str(error.value)


# --- reward ----------------------------------------------------------------------------------

def test_reward_at_known_points():
    field = goal_field("square_tree", (-6.0, -6.0))
    points = np.array([
        (-6, -6),  # the goal
        (0, 0),  # the start cell's centre
        (6, -6),  # the opposite leaf: farther than the start
        (3, -3),  # outside the maze
        (-6, -4),  # two cells before the goal, on the path
    ], np.float32)
    reward = field.reward(points)
    assert reward.dtype == np.float32 and reward.shape == (5,)
    np.testing.assert_allclose(reward[:4], [1, 0, 0, 0])
    np.testing.assert_allclose(reward[4], 1 - 2 / field.scale, rtol=1e-6)
    assert 9 < field.scale < 9.5  # 12 cells from centre to centre, less the corners cut
    np.testing.assert_allclose(field.distance(points[:1]), [0.0])


def test_distance_is_exact_along_a_straight_corridor():
    field = goal_field("square_corridor", (5.0, 0.0))
    x = np.linspace(-5, 5, 41)
    points = np.stack([x, np.zeros_like(x)], 1)
    np.testing.assert_allclose(field.distance(points), 5 - x, atol=1e-12)
    np.testing.assert_allclose(field.reward(points), np.clip(1 - (5 - x) / 5, 0, 1), atol=1e-6)


def test_distance_follows_the_maze_not_the_straight_line():
    field = goal_field("square_a", (4.0, 0.0))
    # exact: (0, 0) -> corner (0.5, -3.5) -> corner (3.5, -3.5) -> (4, 0), 10.07
    assert 2 * np.hypot(0.5, 3.5) + 3 < field.scale < 1.02 * (2 * np.hypot(0.5, 3.5) + 3)
    branch_end, bottom_right = field.reward(np.array([(2, 0), (4, -4)], np.float32))
    assert bottom_right > 0.3 and branch_end == 0.0  # closer in a straight line, not in the maze


@pytest.mark.parametrize("name", TASKS)
def test_distance_has_no_local_minimum_and_bounds_the_straight_line(name):
    task = EnvId.parse(name)
    maze = get_maze(task.maze)
    field = goal_field(task.maze, task.goal_point)
    rng = np.random.default_rng(0)
    cells = np.array(sorted(maze.cells), np.float64)
    points = cells[rng.integers(len(cells), size=2000)] + rng.uniform(-0.49, 0.49, (2000, 2))
    d = field.distance(points)
    assert np.isfinite(d).all()
    assert np.all(d >= np.linalg.norm(points - task.goal_point, axis=1) - 1e-9)
    # from every point some move of length 0.05 gets closer (unless already that close)
    angles = np.linspace(0, 2 * np.pi, 64, endpoint=False)
    steps = 0.05 * np.stack([np.cos(angles), np.sin(angles)], 1)
    moved = (points[:, None, :] + steps).reshape(-1, 2)
    best = field.distance(moved).reshape(len(points), -1).min(axis=1)
    assert np.all((best < d - 1e-3) | (d < 0.05))


def test_distance_in_an_open_room_is_close_to_the_straight_line():
    field = goal_field("square_bottleneck", (0.0, 0.0))
    rng = np.random.default_rng(1)
    points = rng.uniform(-0.45, 4.45, (2000, 2))  # the start room, 5 x 5 open cells
    straight = np.linalg.norm(points, axis=1)
    assert np.all(field.distance(points) <= 1.08 * straight + 0.15)


def test_goal_next_to_the_start_still_has_a_scale():
    field = goal_field("square_a", (0.0, 0.0))
    assert field.scale == 1.0
    np.testing.assert_allclose(field.reward(np.array([(0, 0), (0, -0.5)])), [1.0, 0.5])


# --- environment -----------------------------------------------------------------------------

def test_task_episodes_keep_their_fixed_length():
    env = make_env("maze/square_tree:outer_left_leaf", num_envs=4, seed=0)
    assert isinstance(env, MazeGoalEnv)
    assert (env.name, env.num_envs, env.observation_dim, env.action_dim, env.episode_length) == (
        "maze/square_tree:outer_left_leaf", 4, 2, 2, 50)
    rng = np.random.default_rng(2)
    for _ in range(2):
        env.reset()
        np.testing.assert_array_equal(env.goals, np.tile([-6, -6], (4, 1)))
        for t in range(1, 51):
            step = env.step(rng.uniform(-1, 1, (4, 2)).astype(np.float32))
            assert step.done == (t == 50)
            assert step.reward.dtype == np.float32 and step.reward.shape == (4,)
            assert np.all((step.reward >= 0) & (step.reward <= 1))
            np.testing.assert_array_equal(step.reward, env.field.reward(step.observation))
        with pytest.raises(RuntimeError):
            env.step(np.zeros((4, 2), np.float32))


def test_staying_at_the_goal_keeps_paying_and_does_not_end_the_episode():
    env = MazeGoalEnv("maze/square_corridor:goal=0.25,0", fixed_start=True)
    env.reset()
    rewards = [env.step(np.array([[0.25, 0.0]], np.float32)).reward[0]]
    rewards += [env.step(np.zeros((1, 2), np.float32)).reward[0] for _ in range(48)]
    assert rewards == [1.0] * 49
    assert env.step(np.zeros((1, 2), np.float32)).done


def test_task_resets_match_the_pretraining_maze():
    task, maze = make_env("maze/square_d:left_hook", 16, seed=3), MazeEnv("square_d", 16, seed=3)
    for _ in range(3):
        np.testing.assert_array_equal(task.reset(), maze.reset())


def test_strict_tasks():
    env = make_env("maze/square_tree:inner_right_leaf", 2, seed=0, maze_strict=True)
    assert env.strict


def _scripted_returns(name, walk, episodes=2):
    """Returns of a policy that follows the shortest path's cell centres to the goal."""
    task = EnvId.parse(name)
    env = MazeGoalEnv(task, num_envs=4, seed=5)
    path = _path(env.maze, tuple(round(c) for c in task.goal_point))
    index = {cell: k for k, cell in enumerate(path)}
    returns = []
    for _ in range(episodes):
        obs, total = env.reset(), np.zeros(env.num_envs)
        for _ in range(env.episode_length):
            actions = np.zeros((env.num_envs, 2), np.float32)
            for n, p in enumerate(obs):
                k = index[tuple(int(v) for v in np.rint(p))]
                target = np.asarray(path[k + 1] if k + 1 < len(path) else task.goal_point,
                                    np.float64)
                d = target - p
                actions[n] = d / max(1.0, np.abs(d).max()) if walk else 0.0
            step = env.step(actions)
            obs, total = step.observation, total + step.reward
        returns.extend(total)
    return np.asarray(returns)


@pytest.mark.parametrize("name", TASKS)
def test_walking_to_the_goal_beats_staying_at_the_start(name):
    walk, stay = _scripted_returns(name, True), _scripted_returns(name, False)
    assert stay.mean() < 0.1 * EXPERT_SCORE  # starts below the cell centre earn a little
    assert walk.min() > 0.5 * EXPERT_SCORE and walk.min() > stay.max() + 0.4 * EXPERT_SCORE
    assert np.all(walk <= EXPERT_SCORE)


# --- expert scores ---------------------------------------------------------------------------

@pytest.mark.parametrize("name, score", [
    ("urlb/walker_run", 796.0),
    ("urlb/walker_run~mass~0.5", 796.0),
    ("urlb/quadruped_jump~damping~1.5", 888.0),
    ("urlb/jaco_reach_top_left", 191.0),
    ("urlb/walker", None),
    ("urlb/cheetah_run", None),
    ("urlb/hopper_flip~mass~2", None),
    ("maze/square_a", None),
    ("maze/square_tree:outer_left_leaf", 50.0),
    ("maze/square_a:goal=4,0", 50.0),
])
def test_expert_score(name, score):
    assert expert_score(name) == score


def test_expert_score_rejects_unknown_names():
    with pytest.raises(ValueError, match="unknown env 'urlb/walker_fly'"):
        expert_score("urlb/walker_fly")

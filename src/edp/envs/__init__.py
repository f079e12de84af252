"""Environments by the names users type: maze/<name>[:<goal>],
urlb/<domain>[_<task>][~<kind>~<factor>].

`maze/<name>` is a pre-training maze; `maze/<name>:<goal>` a goal-reaching task on it
(edp.envs.maze_tasks). dm_control and MuJoCo are imported only when a URLB env is built.
"""

from __future__ import annotations

from edp.envs.base import Step, VecEnv

__all__ = ["Step", "VecEnv", "check_env_name", "env_names", "expert_score", "is_maze",
           "make_env", "maze_name"]


def env_names() -> tuple[str, ...]:
    """Every valid name except the perturbed URLB variants and the maze tasks with a
    goal=<x>,<y> point, which are accepted by pattern."""
    from edp.envs import urlb
    from edp.envs.maze import MAZE_NAMES
    from edp.envs.maze_tasks import task_names

    return tuple(f"maze/{name}" for name in MAZE_NAMES) + task_names() + urlb.env_names()


def is_maze(name: str) -> bool:
    return name.startswith("maze/")


def maze_name(name: str) -> str:
    """The bare maze of a maze env or task: 'maze/square_tree:outer_left_leaf' -> 'square_tree'."""
    return name.removeprefix("maze/").partition(":")[0]


def check_env_name(name: str) -> None:
    """Raise a one-line ValueError naming the valid envs unless `name` is one (or a variant)."""
    if is_maze(name) and ":" in name:
        from edp.envs.maze_tasks import parse_task

        parse_task(name)
        return
    base = name
    if name.startswith("urlb/"):
        from edp.envs.urlb import split_perturbation

        base, _ = split_perturbation(name)
    if base not in env_names():
        variants = " (and urlb/<env>~mass~<factor>, urlb/<env>~damping~<factor>)"
        raise ValueError(f"unknown env '{name}'; valid envs: {', '.join(env_names())}"
                         + (variants if name.startswith("urlb/") else ""))


def expert_score(name: str) -> float | None:
    """What eval returns are divided by (normalized_return), or None where there is none.

    URLB tasks: URLB's expert return of the task, perturbed variants included (none for cheetah,
    hopper and the reward-free domains). Maze tasks: the upper bound episode_length x max reward
    (edp.envs.maze_tasks). Pre-training mazes: none.
    """
    check_env_name(name)
    if is_maze(name):
        if ":" not in name:
            return None
        from edp.envs.maze_tasks import EXPERT_SCORE

        return EXPERT_SCORE
    from edp.envs.urlb import EXPERT_SCORES, split_perturbation

    base, _ = split_perturbation(name)
    return EXPERT_SCORES.get(base.removeprefix("urlb/"))


def make_env(name: str, num_envs: int = 1, seed: int = 0, maze_strict: bool = False) -> VecEnv:
    """Build a vectorised environment; an unknown name lists the valid ones."""
    check_env_name(name)
    if is_maze(name):
        if ":" in name:
            from edp.envs.maze_tasks import MazeGoalEnv

            return MazeGoalEnv(name, num_envs=num_envs, seed=seed, strict=maze_strict)
        from edp.envs.maze import MazeEnv

        return MazeEnv(maze_name(name), num_envs=num_envs, seed=seed, strict=maze_strict)
    from edp.envs.urlb import split_perturbation
    from edp.envs.urlb.dmc import URLBEnv

    base, perturb = split_perturbation(name)
    return URLBEnv(base, num_envs=num_envs, seed=seed, perturb=perturb)

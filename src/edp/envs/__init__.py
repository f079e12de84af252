"""Environments by the names users type: maze/<name>[:<goal>],
urlb/<domain>[_<task>][~<kind>~<factor>], parsed by `EnvId` (edp.envs.envid).

`maze/<name>` is a pre-training maze; `maze/<name>:<goal>` a goal-reaching task on it
(edp.envs.maze_tasks). dm_control and MuJoCo are imported only when a URLB env is built.
"""

from __future__ import annotations

from edp.envs.base import Step, VecEnv
from edp.envs.envid import EnvId, env_names

__all__ = ["EnvId", "Step", "VecEnv", "env_names", "expert_score", "make_env"]


def expert_score(name: str) -> float | None:
    """What eval returns are divided by (normalized_return), or None where there is none.

    URLB tasks: URLB's expert return of the task, perturbed variants included (none for cheetah,
    hopper and the reward-free domains). Maze tasks: the upper bound episode_length x max reward
    (edp.envs.maze_tasks). Pre-training mazes: none.
    """
    env = EnvId.parse(name)
    if env.goal is not None:
        from edp.envs.maze_tasks import EXPERT_SCORE

        return EXPERT_SCORE
    if env.is_maze or env.task is None:
        return None
    from edp.envs.urlb import EXPERT_SCORES

    return EXPERT_SCORES.get(f"{env.domain}_{env.task}")


def make_env(name: str, num_envs: int = 1, seed: int = 0, maze_strict: bool = False) -> VecEnv:
    """Build a vectorised environment; an unknown name lists the valid ones."""
    env = EnvId.parse(name)
    if env.goal is not None:
        from edp.envs.maze_tasks import MazeGoalEnv

        return MazeGoalEnv(env, num_envs=num_envs, seed=seed, strict=maze_strict)
    if env.is_maze:
        from edp.envs.maze import MazeEnv

        return MazeEnv(env.maze, num_envs=num_envs, seed=seed, strict=maze_strict)
    from edp.envs.urlb.dmc import URLBEnv

    return URLBEnv(env, num_envs=num_envs, seed=seed)

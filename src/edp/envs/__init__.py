"""Environments by the names users type: maze/<name>, urlb/<domain>[_<task>]."""

from __future__ import annotations

from edp.envs.base import Step, VecEnv

__all__ = ["Step", "VecEnv", "env_names", "is_maze", "make_env", "maze_name"]


def env_names() -> tuple[str, ...]:
    from edp.envs.maze import MAZE_NAMES

    return tuple(f"maze/{name}" for name in MAZE_NAMES)


def is_maze(name: str) -> bool:
    return name.startswith("maze/")


def maze_name(name: str) -> str:
    return name.removeprefix("maze/")


def make_env(name: str, num_envs: int = 1, seed: int = 0, maze_strict: bool = False) -> VecEnv:
    """Build a vectorised environment; an unknown name lists the valid ones."""
    if name not in env_names():
        raise ValueError(f"unknown env '{name}'; valid envs: {', '.join(env_names())}")
    from edp.envs.maze import MazeEnv

    return MazeEnv(maze_name(name), num_envs=num_envs, seed=seed, strict=maze_strict)

"""Environments by the names users type: maze/<name>, urlb/<domain>[_<task>][~<kind>~<factor>].

dm_control and MuJoCo are imported only when a URLB env is built.
"""

from __future__ import annotations

from edp.envs.base import Step, VecEnv

__all__ = ["Step", "VecEnv", "check_env_name", "env_names", "is_maze", "make_env", "maze_name"]


def env_names() -> tuple[str, ...]:
    """Every valid name except the perturbed URLB variants, which are accepted by pattern."""
    from edp.envs import urlb
    from edp.envs.maze import MAZE_NAMES

    return tuple(f"maze/{name}" for name in MAZE_NAMES) + urlb.env_names()


def is_maze(name: str) -> bool:
    return name.startswith("maze/")


def maze_name(name: str) -> str:
    return name.removeprefix("maze/")


def check_env_name(name: str) -> None:
    """Raise a one-line ValueError naming the valid envs unless `name` is one (or a variant)."""
    base = name
    if name.startswith("urlb/"):
        from edp.envs.urlb import split_perturbation

        base, _ = split_perturbation(name)
    if base not in env_names():
        variants = " (and urlb/<env>~mass~<factor>, urlb/<env>~damping~<factor>)"
        raise ValueError(f"unknown env '{name}'; valid envs: {', '.join(env_names())}"
                         + (variants if name.startswith("urlb/") else ""))


def make_env(name: str, num_envs: int = 1, seed: int = 0, maze_strict: bool = False) -> VecEnv:
    """Build a vectorised environment; an unknown name lists the valid ones."""
    check_env_name(name)
    if is_maze(name):
        from edp.envs.maze import MazeEnv

        return MazeEnv(maze_name(name), num_envs=num_envs, seed=seed, strict=maze_strict)
    from edp.envs.urlb import split_perturbation
    from edp.envs.urlb.dmc import URLBEnv

    base, perturb = split_perturbation(name)
    return URLBEnv(base, num_envs=num_envs, seed=seed, perturb=perturb)

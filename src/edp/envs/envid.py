"""EnvId: an env name parsed once, `maze/<maze>[:<goal>]` or `urlb/<domain>[_<task>][~<kind>~<x>]`.

Every command validates the name the user typed here and then asks the parsed value for its
parts (the maze, the goal, the URLB domain and task, the perturbation, the pre-training env), so
the grammar and its one-line errors live in one place. Pure Python: listing and checking names
imports neither dm_control nor MuJoCo.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from edp.envs import urlb
from edp.envs.maze import MAZE_NAMES, check_maze
from edp.envs.urlb import Perturbation


def env_names() -> tuple[str, ...]:
    """Every valid name except the perturbed URLB variants and the maze tasks with a
    goal=<x>,<y> point, which are accepted by pattern."""
    from edp.envs.maze_tasks import task_names

    return tuple(f"maze/{name}" for name in MAZE_NAMES) + task_names() + urlb.env_names()


@dataclass(frozen=True)
class EnvId:
    """A valid env name's parts; build it with `EnvId.parse`. A maze has `maze` (and, as a goal
    task, `goal` as typed and its `goal_point`); a URLB env has `domain`, `task` (None: the
    reward-free domain) and `perturbation`."""

    maze: str | None = None
    goal: str | None = None
    goal_point: tuple[float, float] | None = None
    domain: str | None = None
    task: str | None = None
    perturbation: Perturbation | None = None

    @classmethod
    def parse(cls, name: str) -> EnvId:
        """The parts of `name`; a one-line ValueError names what is wrong and the valid ones."""
        if name.startswith("maze/") and ":" in name:
            from edp.envs.maze_tasks import goal_point

            maze, _, goal = name.removeprefix("maze/").partition(":")
            check_maze(maze, f" in '{name}'")
            return cls(maze=maze, goal=goal, goal_point=goal_point(maze, goal, name))
        base, perturbation = _split_perturbation(name) if name.startswith("urlb/") else (name, None)
        if base not in env_names():
            variants = " (and urlb/<env>~mass~<factor>, urlb/<env>~damping~<factor>)"
            raise ValueError(f"unknown env '{name}'; valid envs: {', '.join(env_names())}"
                             + (variants if name.startswith("urlb/") else ""))
        family, _, rest = base.partition("/")
        if family == "maze":
            return cls(maze=rest)
        domain, _, task = rest.partition("_")
        return cls(domain=domain, task=task or None, perturbation=perturbation)

    @property
    def is_maze(self) -> bool:
        return self.maze is not None

    @property
    def family(self) -> str:
        return "maze" if self.is_maze else "urlb"

    @property
    def pretrain_env(self) -> str:
        """The reward-free env a task belongs to, and what a snapshot must share with the task
        it is fine-tuned on: urlb/walker_run~mass~0.4 -> urlb/walker (a perturbed body counts
        as its domain: cross-embodiment fine-tuning), maze/square_a:far_end -> maze/square_a."""
        return f"{self.family}/{self.maze if self.is_maze else self.domain}"

    def __str__(self) -> str:
        """The name back (a perturbation's factor written as a float: ~mass~2 -> ~mass~2.0)."""
        if self.is_maze:
            return self.pretrain_env + ("" if self.goal is None else f":{self.goal}")
        return (self.pretrain_env + (f"_{self.task}" if self.task else "")
                + (self.perturbation.suffix if self.perturbation else ""))


def _split_perturbation(name: str) -> tuple[str, Perturbation | None]:
    """'urlb/walker_stand~mass~0.4' -> ('urlb/walker_stand', Perturbation('mass', 0.4)); the
    caller checks the base name."""
    base, *parts = name.split("~")
    if not parts:
        return name, None
    usage = "expected <env>~mass~<factor> or <env>~damping~<factor> with a factor > 0"
    if len(parts) != 2 or parts[0] not in urlb.PERTURBATION_FIELDS:
        raise ValueError(f"bad perturbed env name '{name}': {usage}")
    try:
        factor = float(parts[1])
    except ValueError:
        factor = math.nan
    if not (math.isfinite(factor) and factor > 0):
        raise ValueError(f"bad factor '{parts[1]}' in env name '{name}': {usage}")
    return base, Perturbation(parts[0], factor)

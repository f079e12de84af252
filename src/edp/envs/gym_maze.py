"""Gymnasium view of one maze point, for users outside edp's own training loop.

Ids: edp/Maze-<name>-v0 for every name in MAZE_NAMES, registered when this module is imported.
"""

from __future__ import annotations

import gymnasium
import numpy as np
from gymnasium import spaces

from edp.envs.maze import MAZE_NAMES, MazeEnv


class MazeGymEnv(gymnasium.Env):
    """A single MazeEnv copy. The horizon ends an episode as a truncation, Gymnasium's
    convention for time limits (ExDM flags it as terminal; its learner ignores the flag).

    The action space is the maze's declared bound, yet actions are forwarded unclipped. By
    default observations are unbounded because corner leaks (docs/mazes.md §4.4) can carry the point
    out of the maze's box; strict=True keeps it inside, so the box bounds the observations.
    """

    metadata = {"render_modes": []}

    def __init__(self, name: str = "square_a", horizon: int = 50, strict: bool = False,
                 fixed_start: bool = False):
        self._env = MazeEnv(name, horizon=horizon, strict=strict, fixed_start=fixed_start)
        bound = self._env.maze.action_range
        self.action_space = spaces.Box(-bound, bound, (2,), np.float32)
        low, high = np.full(2, -np.inf, np.float32), np.full(2, np.inf, np.float32)
        if strict:
            x_min, x_max, y_min, y_max = self._env.maze.bounds
            low, high = np.array([x_min, y_min], np.float32), np.array([x_max, y_max], np.float32)
        self.observation_space = spaces.Box(low, high, dtype=np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._env.rng = self.np_random  # Gymnasium owns seeding
        return self._env.reset()[0], {}

    def step(self, action):
        step = self._env.step(np.asarray(action, np.float32).reshape(1, 2))
        return step.observation[0], float(step.reward[0]), False, step.done, {}


def register_gymnasium() -> None:
    """Register edp/Maze-<name>-v0 for every maze; calling it again changes nothing."""
    for name in MAZE_NAMES:
        env_id = f"edp/Maze-{name}-v0"
        if env_id not in gymnasium.registry:
            gymnasium.register(env_id, entry_point=f"{__name__}:MazeGymEnv",
                               kwargs={"name": name})


register_gymnasium()  # importing this module makes the ids available, as Gymnasium plugins do

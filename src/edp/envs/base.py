"""The vectorised environment interface every simulator implements.

All N copies run in lock-step with a fixed episode length, so one `done` covers them all; the
loop resets every copy together. Observations and actions are float32 NumPy arrays.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol

import numpy as np


class Step(NamedTuple):
    observation: np.ndarray  # (N, obs_dim) float32
    reward: np.ndarray  # (N,) float32
    done: bool  # the episode ended for every copy (time limit; no early termination)


class VecEnv(Protocol):
    name: str  # as the user typed it, e.g. "maze/square_a"
    num_envs: int
    observation_dim: int
    action_dim: int
    episode_length: int  # steps per episode (the horizon)

    def reset(self) -> np.ndarray:
        """Start a new episode in every copy; returns (N, obs_dim) float32."""
        ...

    def step(self, actions: np.ndarray) -> Step:
        """Apply (N, action_dim) actions; actions in [-1, 1] are the policy's range."""
        ...

    def get_rng_state(self) -> dict:
        """JSON-serialisable state of every random stream the env draws from (for resume)."""
        ...

    def set_rng_state(self, state: dict) -> None:
        """Restore what get_rng_state returned; the next reset continues the same stream."""
        ...

"""URLBEnv: the URLB dm_control tasks behind the VecEnv interface (states, docs/urlb.md §3).

What URLB's wrapper stack does with states, in one class: the observation dict flattened in
the task's order to float32; actions in [-1, 1] mapped affinely to each actuator's control
range; action repeat 1; no early termination. The episode length is a step count.

Rendering (`URLBEnv.render`) needs an OpenGL backend chosen through MUJOCO_GL before dm_control
is imported. On a headless Linux machine with libEGL (Mesa's software EGL works) this module
picks `egl` unless MUJOCO_GL is already set; elsewhere set it yourself (`glfw` with a display,
`osmesa` with libosmesa6).
"""

from __future__ import annotations

import ctypes.util
import importlib
import os
import sys

import numpy as np

from edp.envs import urlb
from edp.envs.base import Step
from edp.envs.envid import EnvId


def _default_gl_backend() -> None:
    """Use EGL on a headless Linux box: dm_control's default, GLFW, cannot render there."""
    headless = sys.platform == "linux" and not os.environ.get("DISPLAY")
    if "MUJOCO_GL" not in os.environ and headless and ctypes.util.find_library("EGL"):
        os.environ["MUJOCO_GL"] = "egl"


_default_gl_backend()


def _copy_seed(seed: int, copy: int) -> int | list[int]:
    """Copy 0 uses the run seed itself, so it reproduces URLB's env built with that seed."""
    return seed if copy == 0 else [seed, copy]


def _flatten(observation) -> np.ndarray:
    return np.concatenate([np.ravel(value) for value in observation.values()]).astype(np.float32)


class URLBEnv:
    """`num_envs` copies of one URLB task, stepped one after the other (VecEnv).

    env: "urlb/<domain>_<task>", or "urlb/<domain>" for reward-free pre-training on the
    domain's pre-training task (its reward is still returned; the loop ignores it).
    Copy i draws its resets from its own RandomState (see `_copy_seed`).
    A ~mass~<x> or ~damping~<x> suffix is applied as ExDM does (docs/urlb.md §6): the model
    array is scaled in place once, before the first reset, without recomputing derived
    constants, so subtree-COM-based readings (speed, spin, jump height) are distorted by the
    factor. Jaco quirk, kept: composer recompiles the model at every reset, which discards the
    scaling, so jaco variants behave exactly like nominal jaco (as ExDM's jaco variants did).
    episode_length: overrides the domain's step count (tests).
    `dm_envs` are the wrapped dm_control environments, for inspection.
    """

    def __init__(self, env: EnvId | str, num_envs: int = 1, seed: int = 0,
                 episode_length: int | None = None):
        env = EnvId.parse(env) if isinstance(env, str) else env
        if env.domain is None:
            raise ValueError(f"'{env}' is not a URLB env")
        domain, task = env.domain, env.task or urlb.PRETRAIN_TASK[env.domain]
        length = urlb.EPISODE_LENGTH[domain] if episode_length is None else episode_length
        if num_envs < 1 or length < 1:
            raise ValueError(f"num_envs and episode_length must be >= 1; got {num_envs}, {length}")
        module = importlib.import_module(f"edp.envs.urlb.{domain}")
        self._rngs = [np.random.RandomState(_copy_seed(seed, i)) for i in range(num_envs)]
        self.dm_envs = [module.make(task, rng) for rng in self._rngs]
        if env.perturbation is not None:
            for dm_env in self.dm_envs:
                env.perturbation.apply(dm_env.physics.model)
        spec = self.dm_envs[0].action_spec()
        # URLB's float32 action spec rounds the bounds and the mapped action to float32; kept,
        # since contact dynamics amplify even such differences (docs/urlb.md §7.5)
        low, high = (np.asarray(bound, np.float32) for bound in (spec.minimum, spec.maximum))
        self._low = low.astype(np.float64)
        self._half_range = (high - low).astype(np.float64) / 2
        self.name = str(env)
        self.num_envs = num_envs
        self.action_dim = spec.shape[0]
        self.observation_dim = sum(int(np.prod(s.shape))
                                   for s in self.dm_envs[0].observation_spec().values())
        self.episode_length = length
        self._t: int | None = None  # steps taken this episode; None before the first reset

    def reset(self) -> np.ndarray:
        """New episode in every copy; returns (N, obs_dim) float32."""
        observations = np.stack([_flatten(env.reset().observation) for env in self.dm_envs])
        self._t = 0
        return observations

    def step(self, actions: np.ndarray) -> Step:
        """Apply (N, action_dim) actions in [-1, 1]; `done` after exactly `episode_length`.

        Out-of-range actions map past the control range and MuJoCo clamps them, as in URLB.
        """
        if self._t is None or self._t >= self.episode_length:
            raise RuntimeError("call reset() first: no episode is running")
        actions = np.asarray(actions, np.float32)
        if actions.shape != (self.num_envs, self.action_dim):
            raise ValueError(f"actions must be ({self.num_envs}, {self.action_dim}); "
                             f"got {actions.shape}")
        controls = self._low + self._half_range * (actions.astype(np.float64) + 1)
        controls = controls.astype(np.float32).astype(np.float64)
        observations = np.empty((self.num_envs, self.observation_dim), np.float32)
        rewards = np.empty(self.num_envs, np.float32)
        for i, (env, control) in enumerate(zip(self.dm_envs, controls, strict=True)):
            time_step = env.step(control)
            observations[i] = _flatten(time_step.observation)
            rewards[i] = time_step.reward
        self._t += 1
        return Step(observations, rewards, self._t == self.episode_length)

    def get_rng_state(self) -> dict:
        """Every copy's RandomState, as JSON-ready lists and numbers."""
        copies = []
        for rng in self._rngs:
            state = rng.get_state(legacy=False)
            state["state"] = {"key": state["state"]["key"].tolist(), "pos": state["state"]["pos"]}
            copies.append(state)
        return {"copies": copies}

    def set_rng_state(self, state: dict) -> None:
        copies = state["copies"]
        if len(copies) != self.num_envs:
            raise ValueError(f"rng state has {len(copies)} copies; this env has {self.num_envs}")
        for rng, copy in zip(self._rngs, copies, strict=True):
            key = np.asarray(copy["state"]["key"], np.uint32)
            rng.set_state(copy | {"state": {"key": key, "pos": copy["state"]["pos"]}})

    def render(self, camera_id: int = 0, height: int = 240, width: int = 320) -> np.ndarray:
        """Copy 0's current frame, (height, width, 3) uint8 (needs MUJOCO_GL, see module doc)."""
        return self.dm_envs[0].physics.render(height=height, width=width, camera_id=camera_id)

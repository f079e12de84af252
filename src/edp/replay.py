"""Episode-aware n-step replay buffer (NumPy ring buffer of whole episodes).

Episodes have a fixed maximum length (all our environments have a time limit and never terminate
early), so storage is a dense (episodes, steps) layout: sampling is a handful of fancy-indexing
operations, and n-step windows never cross an episode boundary. As in URLB, only finished
episodes are sampled; each of the N parallel environments stages its running episode apart.

Layout of episode e with length L: observation[e, 0..L] (L+1 rows: reset + every step),
action[e, 0..L-1], reward[e, 0..L-1], discount[e, 0..L-1] (environment discount of the step).
A sampled transition at t in [0, L-n] is (observation[t], action[t], R, g, observation[t+n])
with R = sum_{i<n} gamma^i * prod_{j<i} d[t+j] * reward[t+i] and g = gamma^n * prod_{i<n} d[t+i].
Extra per-step fields (e.g. skills) are stored like actions and returned at t.
"""

from __future__ import annotations

import os

import numpy as np

MEMORY_SHARE = 0.8  # of the machine's available memory a replay buffer may take


def replay_bytes(capacity: int, episode_length: int, num_envs: int, observation_dim: int,
                 per_step_dim: int) -> int:
    """Bytes a buffer allocates (float32): the episode ring, plus the staged episodes of the
    parallel envs; per_step_dim counts action, reward, discount and extras."""
    episodes = max(1, capacity // episode_length) + num_envs
    return 4 * episodes * ((episode_length + 1) * observation_dim
                           + episode_length * per_step_dim)


def available_memory() -> int | None:
    """Bytes the machine can still give (MemAvailable on Linux), None if unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_replay(capacity: int, batch_size: int, nstep: int, episode_length: int,
                 num_envs: int, observation_dim: int, per_step_dim: int) -> None:
    """One-line ConfigError for a buffer that cannot work on this env or this machine."""
    from edp.config import ConfigError

    if not 1 <= nstep <= episode_length:
        raise ConfigError(f"nstep={nstep} must be in [1, {episode_length}] (the episode length)")
    if batch_size > capacity:
        raise ConfigError(f"batch size {batch_size} exceeds replay-capacity {capacity}")
    if capacity < episode_length * num_envs:
        raise ConfigError(f"replay-capacity={capacity} cannot hold one episode of every env "
                          f"({episode_length * num_envs} transitions)")
    need = replay_bytes(capacity, episode_length, num_envs, observation_dim, per_step_dim)
    have = available_memory()
    if have is not None and need > MEMORY_SHARE * have:
        raise ConfigError(f"the replay buffer (replay-capacity={capacity:,}, num-envs="
                          f"{num_envs:,}) needs {need / 2**30:.1f} GiB of memory, this machine "
                          f"has {have / 2**30:.1f} GiB available")


class ReplayBuffer:
    def __init__(self, capacity: int, episode_length: int, num_envs: int, observation_dim: int,
                 action_dim: int, nstep: int = 3, discount: float = 0.99,
                 extras: dict[str, int] | None = None):
        if nstep < 1 or nstep > episode_length:
            raise ValueError(f"nstep={nstep} must be in [1, episode_length={episode_length}]")
        self.episode_length = episode_length
        self.max_episodes = max(1, capacity // episode_length)
        self.num_envs = num_envs
        self.nstep = nstep
        self.gamma = discount
        shapes = {"action": action_dim, "reward": None, "discount": None}
        shapes.update({k: d for k, d in (extras or {}).items()})
        e, t = self.max_episodes, episode_length
        self.observation = np.zeros((e, t + 1, observation_dim), np.float32)
        self.steps = {k: np.zeros((e, t) + (() if d is None else (d,)), np.float32)
                      for k, d in shapes.items()}
        self._stage_obs = np.zeros((num_envs, t + 1, observation_dim), np.float32)
        self._stage = {k: np.zeros((num_envs,) + v.shape[1:], np.float32)
                       for k, v in self.steps.items()}
        self._t = 0  # steps taken in the staged episodes
        self.num_episodes = 0  # finished episodes ever added (the ring position is this % max)
        self._gamma_pows = discount ** np.arange(nstep, dtype=np.float64)

    @property
    def size(self) -> int:
        """Finished episodes currently held."""
        return min(self.num_episodes, self.max_episodes)

    @property
    def num_transitions(self) -> int:
        return self.size * self.episode_length

    def start_episodes(self, observation: np.ndarray) -> None:
        """Begin a new episode in every environment copy with its reset observation."""
        self._t = 0
        self._stage_obs[:, 0] = observation

    def add(self, action: np.ndarray, reward: np.ndarray, discount: np.ndarray | float,
            next_observation: np.ndarray, done: bool, **extras: np.ndarray) -> None:
        """Record one step of every copy; `done` commits the staged episodes to the ring."""
        t = self._t
        if t >= self.episode_length:
            raise RuntimeError("episode longer than the buffer's episode_length")
        self._stage["action"][:, t] = action
        self._stage["reward"][:, t] = reward
        self._stage["discount"][:, t] = discount
        for key, value in extras.items():
            self._stage[key][:, t] = value
        self._stage_obs[:, t + 1] = next_observation
        self._t = t + 1
        if done:
            self._commit()

    def _commit(self) -> None:
        if self._t != self.episode_length:
            raise RuntimeError(f"episode ended after {self._t} steps; expected "
                               f"{self.episode_length} (fixed-length episodes only)")
        idx = (self.num_episodes + np.arange(self.num_envs)) % self.max_episodes
        self.observation[idx] = self._stage_obs
        for key, value in self._stage.items():
            self.steps[key][idx] = value
        self.num_episodes += self.num_envs

    def recent_observations(self, count: int) -> np.ndarray:
        """Observations (count, L+1, S) of the last `count` finished episodes, oldest first."""
        if not 0 < count <= self.size:
            raise ValueError(f"asked for {count} episodes, the buffer holds {self.size}")
        idx = (self.num_episodes - count + np.arange(count)) % self.max_episodes
        return self.observation[idx]

    def sample(self, rng: np.random.Generator, batch_size: int, iters: int = 1) -> dict:
        """`iters` independent batches stacked on a leading axis: (iters, batch_size, ...)."""
        if self.size == 0:
            raise RuntimeError("cannot sample from a replay buffer with no finished episode")
        n = iters * batch_size
        ep = rng.integers(0, self.size, size=n)
        t = rng.integers(0, self.episode_length - self.nstep + 1, size=n)
        window = t[:, None] + np.arange(self.nstep)
        rewards = self.steps["reward"][ep[:, None], window].astype(np.float64)
        discounts = self.steps["discount"][ep[:, None], window].astype(np.float64)
        # survival[i] = prod_{j<i} d[t+j]: a reward after an env discount of 0 does not count
        survival = np.cumprod(np.concatenate([np.ones((n, 1)), discounts[:, :-1]], 1), axis=1)
        batch = {
            "observation": self.observation[ep, t],
            "action": self.steps["action"][ep, t],
            "reward": (rewards * survival * self._gamma_pows).sum(1).astype(np.float32),
            "discount": (self.gamma ** self.nstep * np.prod(discounts, 1)).astype(np.float32),
            "next_observation": self.observation[ep, t + self.nstep],
        }
        for key in self.steps.keys() - {"action", "reward", "discount"}:
            batch[key] = self.steps[key][ep, t]
        return {k: v.reshape((iters, batch_size) + v.shape[1:]) for k, v in batch.items()}

    def state_dict(self) -> dict[str, np.ndarray]:
        """Everything needed to restore the buffer exactly (for checkpoints); only the filled
        episodes are included, so a checkpoint early in a run stays small."""
        n = self.size
        out = {"observation": self.observation[:n], "stage_observation": self._stage_obs,
               "counters": np.array([self._t, self.num_episodes], np.int64)}
        out.update({f"steps/{k}": v[:n] for k, v in self.steps.items()})
        out.update({f"stage/{k}": v for k, v in self._stage.items()})
        return out

    def load_state_dict(self, data: dict[str, np.ndarray]) -> None:
        t, num_episodes = (int(x) for x in data["counters"])
        n = min(num_episodes, self.max_episodes)
        full = {"observation": self.observation, "stage_observation": self._stage_obs}
        full.update({f"steps/{k}": v for k, v in self.steps.items()})
        full.update({f"stage/{k}": v for k, v in self._stage.items()})
        for key, array in full.items():
            expected = array.shape if key.startswith("stage") else (n,) + array.shape[1:]
            got = data[key].shape if key in data else "missing"
            if got != expected:
                raise ValueError(f"replay checkpoint mismatch for '{key}': expected "
                                 f"{expected}, got {got}")
        for key, array in full.items():
            array[: len(data[key])] = data[key]
        self._t, self.num_episodes = t, num_episodes

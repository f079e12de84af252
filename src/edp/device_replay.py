"""The n-step episode replay of `edp.replay` as fixed-size device arrays (the compiled loop).

Same layout and sampling rule as the host `ReplayBuffer` (see its docstring), for one env copy:
a ring of whole episodes plus the running episode staged apart, so a sampled transition never
comes from an episode that is still being written or overwritten. Every method is a pure
function of the buffer, so the whole collect-and-learn loop can run inside one `lax.scan` and
be vmapped over seeds.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct


class DeviceReplay(struct.PyTreeNode):
    observation: jax.Array  # (E, L+1, S)
    steps: dict  # name -> (E, L, ...): action, reward, discount and extras (e.g. meta)
    stage_observation: jax.Array  # (L+1, S): the running episode
    stage: dict  # name -> (L, ...)
    num_episodes: jax.Array  # int32: finished episodes ever added (ring position: % E)
    nstep: int = struct.field(pytree_node=False, default=3)
    gamma: float = struct.field(pytree_node=False, default=0.99)

    @classmethod
    def create(cls, capacity: int, episode_length: int, observation_dim: int, action_dim: int,
               nstep: int, discount: float, extras: dict[str, int] | None = None
               ) -> DeviceReplay:
        """An empty buffer holding capacity // episode_length episodes (at least one)."""
        if nstep < 1 or nstep > episode_length:
            raise ValueError(f"nstep={nstep} must be in [1, episode_length={episode_length}]")
        e, t = max(1, capacity // episode_length), episode_length
        widths = {"action": (action_dim,), "reward": (), "discount": ()}
        widths.update({k: (d,) for k, d in (extras or {}).items()})
        return cls(observation=jnp.zeros((e, t + 1, observation_dim), jnp.float32),
                   steps={k: jnp.zeros((e, t) + w, jnp.float32) for k, w in widths.items()},
                   stage_observation=jnp.zeros((t + 1, observation_dim), jnp.float32),
                   stage={k: jnp.zeros((t,) + w, jnp.float32) for k, w in widths.items()},
                   num_episodes=jnp.zeros((), jnp.int32), nstep=nstep, gamma=discount)

    @property
    def max_episodes(self) -> int:
        return self.observation.shape[-3]

    @property
    def episode_length(self) -> int:
        return self.observation.shape[-2] - 1

    def start_episode(self, observation: jax.Array) -> DeviceReplay:
        """Stage a new episode with its reset observation (S,)."""
        return self.replace(stage_observation=self.stage_observation.at[0].set(observation))

    def add(self, t: jax.Array, next_observation: jax.Array, **fields: jax.Array
            ) -> DeviceReplay:
        """Record step `t` of the running episode: action, reward, discount (and extras)."""
        stage = {k: v.at[t].set(fields[k]) for k, v in self.stage.items()}
        return self.replace(stage=stage,
                            stage_observation=self.stage_observation.at[t + 1].set(
                                next_observation))

    def commit(self) -> DeviceReplay:
        """The staged episode is finished: write it over the oldest slot of the ring."""
        slot = self.num_episodes % self.max_episodes
        return self.replace(
            observation=self.observation.at[slot].set(self.stage_observation),
            steps={k: v.at[slot].set(self.stage[k]) for k, v in self.steps.items()},
            num_episodes=self.num_episodes + 1)

    def sample(self, key: jax.Array, batch_size: int, iters: int = 1) -> dict:
        """`iters` batches (iters, batch_size, ...) of n-step transitions from finished
        episodes; the caller makes sure at least one episode is finished."""
        n, nstep = iters * batch_size, self.nstep
        size = jnp.minimum(self.num_episodes, self.max_episodes)
        k_ep, k_t = jax.random.split(key)
        ep = jax.random.randint(k_ep, (n,), 0, jnp.maximum(size, 1))
        t = jax.random.randint(k_t, (n,), 0, self.episode_length - nstep + 1)
        window = t[:, None] + jnp.arange(nstep)
        rewards = self.steps["reward"][ep[:, None], window]
        discounts = self.steps["discount"][ep[:, None], window]
        # survival[i] = prod_{j<i} d[t+j]: a reward after an env discount of 0 does not count
        survival = jnp.cumprod(jnp.concatenate([jnp.ones((n, 1)), discounts[:, :-1]], 1), 1)
        gamma_pows = jnp.asarray(self.gamma ** np.arange(nstep), jnp.float32)
        batch = {"observation": self.observation[ep, t],
                 "action": self.steps["action"][ep, t],
                 "reward": (rewards * survival * gamma_pows).sum(1),
                 "discount": jnp.float32(self.gamma ** nstep) * jnp.prod(discounts, 1),
                 "next_observation": self.observation[ep, t + nstep]}
        for name in self.steps.keys() - {"action", "reward", "discount"}:
            batch[name] = self.steps[name][ep, t]
        return {k: v.reshape((iters, batch_size) + v.shape[1:]) for k, v in batch.items()}

    def state_dict(self) -> dict[str, np.ndarray]:
        """The filled episodes as host arrays (a checkpoint early in a run stays small)."""
        count = int(self.num_episodes)
        filled = min(count, self.max_episodes)
        out = {"observation": np.asarray(self.observation[:filled]),
               "num_episodes": np.asarray(count, np.int64)}
        out.update({f"steps/{k}": np.asarray(v[:filled]) for k, v in self.steps.items()})
        return out

    def load_state_dict(self, data: dict[str, np.ndarray]) -> DeviceReplay:
        """This buffer with a checkpoint's episodes; a shape mismatch is a ValueError."""
        count = int(data["num_episodes"])
        filled = min(count, self.max_episodes)
        current = {"observation": self.observation,
                   **{f"steps/{k}": v for k, v in self.steps.items()}}
        for key, array in current.items():
            expected = (filled,) + array.shape[1:]
            got = data[key].shape if key in data else "missing"
            if got != expected:
                raise ValueError(f"replay checkpoint mismatch for '{key}': expected {expected}, "
                                 f"got {got}")
        return self.replace(
            observation=self.observation.at[:filled].set(data["observation"]),
            steps={k: v.at[:filled].set(data[f"steps/{k}"]) for k, v in self.steps.items()},
            num_episodes=jnp.asarray(count, jnp.int32))

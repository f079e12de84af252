"""The compiled maze loop: acting, maze step, replay insert and learning in one program.

For mazes the environment is a few lines of `jax.numpy` (`edp.envs.maze_jax`), so a whole chunk
of episodes (by default 20, i.e. 1,000 env steps) runs as one `lax.scan` inside one jit, and
several seeds run side by side under `vmap`: on a CPU the small networks are overhead-bound, and
this buys several times the learning per second (benchmarks/throughput). Python only runs
between chunks: logs, coverage, checkpoints, snapshots and the progress line, one ordinary run
directory per seed, with the files of a `loop.Trainer` run.

Same semantics as `loop.Trainer`: the seed phase, the update cadence (`update_every`, after
`learning_starts`, once an episode is finished), n-step replay (`DeviceReplay`), skills drawn at
resets and resampled before acting and stored with the observation they were drawn for, the
coverage metric, and the act / update / skill key streams folded from the seed and step. The
env and replay-sampling streams are JAX keys instead of NumPy generators, so a run is a draw
from the same distribution as the host loop's, not the same numbers. Every random number is a
function of (seed, step), so a checkpoint holds no RNG state and resuming continues exactly;
a seed's numbers can differ in the last bits between a group of seeds and a run on its own
(vmapped matrix products round differently), so resume a group as a group.

The learning call sits in a `lax.cond` whose predicate depends only on the step, which is the
same for every seed: under `vmap` it stays a branch (not a select that would run every step).
"""

from __future__ import annotations

import dataclasses
import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from edp import checkpoint
from edp.device_replay import DeviceReplay
from edp.devices import SeedPlacement
from edp.envs import maze_jax
from edp.loop import (
    LoopResult,
    LoopSettings,
    NonFiniteError,
    crossed,
    describe,
    run_episodes,
    summarise,
)
from edp.sinks import Progress, Sinks, to_scalars

CHUNK_EPISODES = 20  # episodes per compiled call between host visits (1,000 maze steps)
_INT32_MAX = 2**31 - 1


def seed_keys(seed: int) -> dict[str, jax.Array]:
    """The run's key streams; init / act / update / eval / skills as in `loop.Trainer`."""
    root = jax.random.PRNGKey(seed)
    init, act, update, evaluate = jax.random.split(root, 4)
    return {"init": init, "act": act, "update": update, "eval": evaluate,
            "meta": jax.random.fold_in(root, 4), "env": jax.random.fold_in(root, 5),
            "sample": jax.random.fold_in(root, 6), "reset": jax.random.fold_in(root, 7)}


def make_chunk(agent: Any, maze: maze_jax.MazeArrays, strict: bool, episode_length: int):
    """`chunk(carry, keys, first_episode, episodes)` runs `episodes` (static) whole episodes
    of one seed from episode index `first_episode`, and returns the carry and, per episode,
    its observations (E, L+1, S) and return (E,). The carry is {state, replay, metrics,
    finite}. vmap it over seeds with `first_episode` unbatched."""
    skill_dim = agent.meta_dim
    length = episode_length
    starts = min(agent.learning_starts, _INT32_MAX)
    learns = agent.learning_starts < _INT32_MAX  # the random agent never does

    def learn(carry, key_sample, key_update):
        batch = carry["replay"].sample(key_sample, agent.batch_size, agent.updates_per_step)
        state, metrics = agent.update(carry["state"], batch, key_update)
        finite = carry["finite"]
        for value in metrics.values():
            finite = finite & jnp.all(jnp.isfinite(value))
        return {**carry, "state": state, "metrics": metrics, "finite": finite}

    def episode(carry, index, keys):
        first = index * length  # env step of the episode's first action
        obs, goal = maze_jax.reset(maze, jax.random.fold_in(keys["reset"], index), 1)
        meta = jnp.zeros((1, 0), jnp.float32)
        if skill_dim:
            meta = agent.draw_meta(carry["state"], jax.random.fold_in(keys["meta"], 2 * first),
                                   1)

        def env_step(inner, t):
            carry, obs, meta = inner
            step = first + t
            stored = meta  # the skill stored with this observation (drawn before it)
            if skill_dim:
                meta = agent.step_meta(carry["state"], meta, step,
                                       jax.random.fold_in(keys["meta"], 2 * step + 1))
            policy_input = jnp.concatenate([obs, meta], -1) if skill_dim else obs
            action = agent.act(carry["state"], policy_input,
                               jax.random.fold_in(keys["act"], step), step, False)
            if learns:  # past the seed phase, on the cadence, with a finished episode
                due = (step >= starts) & (step % agent.update_every == 0) & (index > 0)
                carry = jax.lax.cond(due, learn, lambda c, *_: c, carry,
                                     jax.random.fold_in(keys["sample"], step),
                                     jax.random.fold_in(keys["update"], step))
            draws = jax.random.uniform(jax.random.fold_in(keys["env"], step), (1, 3))
            next_obs = maze_jax.move(maze, obs, action, draws, strict)
            reward = maze_jax.reward(next_obs, goal)
            extras = {"meta": stored[0]} if skill_dim else {}
            replay = carry["replay"].add(t, next_obs[0], action=action[0], reward=reward[0],
                                         discount=jnp.float32(1.0), **extras)
            return ({**carry, "replay": replay}, next_obs, meta), reward[0]

        carry = {**carry, "replay": carry["replay"].start_episode(obs[0])}
        (carry, _, _), rewards = jax.lax.scan(env_step, (carry, obs, meta), jnp.arange(length))
        observations = carry["replay"].stage_observation
        return {**carry, "replay": carry["replay"].commit()}, (observations, rewards.sum())

    def chunk(carry, keys, first_episode, episodes: int):
        indices = first_episode + jnp.arange(episodes)
        carry, (observations, returns) = jax.lax.scan(
            lambda c, i: episode(c, i, keys), carry, indices)
        return carry, observations, returns

    return chunk


def group_chunk(chunk, placement: SeedPlacement):
    """`chunk` for the whole group, compiled: vmapped over the seeds, each device running its
    share alone (`SeedPlacement.per_device`), the carry donated."""
    seeds_chunk = jax.vmap(chunk, in_axes=(0, 0, None, None))

    def run(carry, keys, first_episode, episodes):
        def on_device(carry, keys, first_episode):
            return seeds_chunk(carry, keys, first_episode, episodes)
        return placement.per_device(on_device, shared=1)(carry, keys, first_episode)

    return jax.jit(run, static_argnums=3, donate_argnums=0)


def stack(trees: list) -> Any:
    return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


def unstack(tree: Any, index: int) -> Any:
    return jax.tree.map(lambda x: x[index], tree)


@dataclass
class SeedRun:
    """The host side of one seed: its run directory, logs and coverage."""

    seed: int
    run_dir: Path
    coverage: Any  # CoverageTracker
    eval_env: Any
    returns: list[float] = dataclasses.field(default_factory=list)
    sinks: Sinks | None = None


class DeviceTrainer:
    """Trains one agent on one maze for several seeds in one compiled program."""

    def __init__(self, agent: Any, maze_name: str, strict: bool, episode_length: int,
                 replay: DeviceReplay, runs: list[SeedRun], settings: LoopSettings,
                 snapshot_meta):
        """`settings.seed` is unused (each SeedRun has its seed); `snapshot_meta(run_dir,
        frame)` is the state.json of a snapshot (as `loop.Trainer.save_snapshot` writes)."""
        self.agent, self.runs, self.settings = agent, runs, settings
        self.length = episode_length
        self.snapshot_meta = snapshot_meta
        self.placement = SeedPlacement(len(runs))
        keys = stack([seed_keys(run.seed) for run in runs])
        states = jax.vmap(agent.init)(keys["init"])
        replays = stack([replay] * len(runs))
        metrics = _metrics_template(agent, unstack(states, 0), replay)
        self.keys = self.placement.place(keys)
        self.carry = self._place({"state": states, "replay": replays,
                                  "metrics": stack([metrics] * len(runs)),
                                  "finite": jnp.ones(len(runs), bool)})
        chunk = make_chunk(agent, maze_jax.maze_arrays(maze_name), strict, episode_length)
        self._chunk = group_chunk(chunk, self.placement)
        self.episodes = 0  # finished episodes per seed
        self._resumed = False

    @property
    def frame(self) -> int:
        return self.episodes * self.length

    # ------------------------------------------------------------------------- checkpoints
    def save_checkpoints(self) -> None:
        """Every seed's checkpoint at this frame, then (only then) the older ones go, so a
        kill between two seeds' writes leaves a frame that all of them hold."""
        frame = self.frame
        paths = []
        for i, run in enumerate(self.runs):
            replay = unstack(self.carry["replay"], i)
            state = {"step": frame, "frame": frame, "episodes": self.episodes,
                     "loop": "device", "episode_returns": run.returns[-100:]}
            arrays = {"replay": replay.state_dict(), "coverage": run.coverage.state_dict()}
            paths.append(checkpoint.save(run.run_dir / "checkpoints" / str(frame),
                                         unstack(self.carry["state"], i), state, arrays))
        for path in paths:
            for old in path.parent.iterdir():
                if old != path and old.name.isdigit():
                    shutil.rmtree(old)

    def restore(self) -> None:
        """Continue from the newest checkpoint frame that every seed holds. A group killed
        before its first checkpoint was complete for every seed starts afresh (the logs of
        its seeds are cut back to nothing)."""
        latest = [checkpoint.latest(run.run_dir / "checkpoints") for run in self.runs]
        missing = [run.run_dir for run, path in zip(self.runs, latest, strict=True) if not path]
        self._resumed = True
        if missing and len(self.runs) > 1:
            return
        if missing:
            raise checkpoint.CheckpointError(f"{missing[0]} has no complete checkpoint to resume")
        frame = min(int(path.name) for path in latest)
        states, replays = [], []
        template_state = unstack(self.carry["state"], 0)
        template_replay = unstack(self.carry["replay"], 0)
        for run in self.runs:
            directory = run.run_dir / "checkpoints" / str(frame)
            state, info, arrays = checkpoint.load(directory, template_state)
            if "sample_rng" in info:  # only the host loop keeps generator states
                raise checkpoint.CheckpointError(
                    f"{directory} was written by the host loop, its config.json asks for the "
                    "device loop")
            try:
                step, episodes = info["step"], info["episodes"]
                if not step == info["frame"] == episodes * self.length == frame:
                    raise ValueError(f"step {step}, frame {info['frame']} and episodes "
                                     f"{episodes} disagree with the directory's frame {frame}")
                replays.append(template_replay.load_state_dict(arrays["replay"]))
                run.coverage.load_state_dict(arrays["coverage"])
                run.returns = [float(r) for r in info["episode_returns"]]
            except KeyError as exc:
                raise checkpoint.CheckpointError(f"corrupt checkpoint {directory}: no {exc}") \
                    from exc
            except (TypeError, ValueError) as exc:
                raise checkpoint.CheckpointError(f"corrupt checkpoint {directory}: {exc}") \
                    from exc
            states.append(state)
            self.episodes = episodes
        real = jax.tree.map(lambda x: x[:len(self.runs)], self.carry)
        self.carry = self._place({**real, "state": stack(states), "replay": stack(replays)})

    def _place(self, carry: dict) -> dict:
        """The carry split across devices, with a buffer of its own per leaf: it is donated
        to each chunk, and a state may hold one array twice (DDPG's target critic starts as
        the critic)."""
        return self.placement.place(jax.tree.map(lambda x: jnp.array(x, copy=True), carry))

    def save_snapshots(self) -> None:
        for i, run in enumerate(self.runs):
            directory = run.run_dir / "snapshots" / str(self.frame)
            checkpoint.save(directory, unstack(self.carry["state"], i),
                            self.snapshot_meta(run.run_dir, self.frame))

    # ---------------------------------------------------------------------------------- loop
    def _chunk_episodes(self) -> int:
        """Episodes per compiled call: the largest divisor, up to CHUNK_EPISODES, of every
        episode count at which the host has work (logs, checkpoints, snapshots, the end), so
        every call has the same length and the program compiles once."""
        s = self.settings
        events = [s.frames, *s.snapshots, *(e for e in (s.log_every, s.checkpoint_every) if e)]
        common = math.gcd(*(math.ceil(e / self.length) for e in events))
        return max(d for d in range(1, CHUNK_EPISODES + 1) if common % d == 0)

    def run(self) -> list[LoopResult]:
        s = self.settings
        for run in self.runs:
            run.sinks = Sinks(run.run_dir, ["episode_return", "episode_return_std"],
                              resume_frame=self.frame if self._resumed else None)
        progress = Progress(s.frames, self.frame)
        total = s.frames // self.length
        snapshots = set(s.snapshots)
        chunk = self._chunk_episodes()
        try:
            while self.episodes < total:
                stop = min(total, self.episodes + chunk)
                self.carry, observations, returns = self._chunk(
                    self.carry, self.keys, np.int32(self.episodes), stop - self.episodes)
                before = self.frame
                self.episodes = stop
                self._after_chunk(np.asarray(observations), np.asarray(returns))
                if self.frame in snapshots:
                    self.save_snapshots()
                # the log line first: a checkpoint at a frame implies its line was written, so
                # a kill between the two cannot lose the line from a resumed run
                if crossed(s.log_every, before, self.frame):
                    self._log(progress)
                if crossed(s.checkpoint_every, before, self.frame):
                    self.save_checkpoints()
            self.save_snapshots()
            self.save_checkpoints()
            finals = [self.evaluate(i) if s.eval_episodes else {} for i in range(len(self.runs))]
        finally:
            for run in self.runs:
                if run.sinks is not None:
                    run.sinks.close()
        return [LoopResult(run.run_dir, self.frame, final, run.coverage.value)
                for run, final in zip(self.runs, finals, strict=True)]

    def _after_chunk(self, observations: np.ndarray, returns: np.ndarray) -> None:
        """Coverage and returns of the chunk's episodes; stop on a non-finite update."""
        finite = np.asarray(self.carry["finite"])
        for i, run in enumerate(self.runs):
            if not finite[i]:
                metrics = to_scalars(unstack(self.carry["metrics"], i))
                bad = [k for k, v in metrics.items() if not np.isfinite(v)] or ["a metric"]
                raise NonFiniteError(f"seed {run.seed}: non-finite {', '.join(bad)} by frame "
                                     f"{self.frame}; the last good checkpoint is kept")
            run.coverage.add_episodes(observations[i])
            run.returns.extend(float(r) for r in returns[i])

    def _log(self, progress: Progress) -> None:
        fps = progress.fps(self.frame)
        shown = {}
        for i, run in enumerate(self.runs):
            scalars = {"fps": fps, **to_scalars(unstack(self.carry["metrics"], i)),
                       "episode_return": float(np.mean(run.returns[-10:])),
                       "coverage": run.coverage.value}
            run.sinks.log(self.frame, "train", scalars)
            shown.setdefault("coverage", []).append(run.coverage.value)
        if not self.settings.quiet:
            label = "coverage" if len(self.runs) == 1 else f"coverage (mean of {len(self.runs)})"
            progress.report(self.frame, {label: float(np.mean(shown["coverage"]))})

    def evaluate(self, index: int) -> dict[str, float]:
        """The host loop's deterministic-policy episodes on the seed's evaluation env."""
        run, s = self.runs[index], self.settings
        key = jax.random.fold_in(self.keys["eval"][index], self.frame)
        returns, _ = run_episodes(self.agent, unstack(self.carry["state"], index), run.eval_env,
                                  s.eval_episodes, key, self.frame)
        row = summarise(returns, None)
        run.sinks.log_eval(self.frame, row)
        if not s.quiet:
            print(f"seed {run.seed}: eval at {self.frame:,} frames: {describe(row)} over "
                  f"{len(returns)} episodes", flush=True)
        return row


def _metrics_template(agent: Any, state: Any, replay: DeviceReplay) -> dict:
    """Zeros shaped like one learning call's metrics (the carry before the first update)."""
    if agent.learning_starts >= _INT32_MAX:
        return {}
    batch = jax.eval_shape(lambda r: r.sample(jax.random.PRNGKey(0), agent.batch_size,
                                              agent.updates_per_step), replay)
    _, metrics = jax.eval_shape(agent.update, state, batch, jax.random.PRNGKey(0))
    return jax.tree.map(lambda m: jnp.zeros(m.shape, m.dtype), metrics)

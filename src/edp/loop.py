"""The single training loop: collect, update, log, checkpoint, evaluate.

env -> replay -> batch -> agent.update -> metrics -> sinks, and obs -> agent.act -> env.
Everything with side effects lives here; the agent is a value transformed by pure jitted
functions. Random keys are folded from the seed and the step number, and checkpoints are taken
at episode boundaries together with the host RNG states, so a resumed run continues exactly.

Skill agents (`meta_dim > 0`, protocol in `edp.agents.base`) get their skill drawn at every
reset and updated before every action, appended to the observation they act on, and stored in
the replay as the per-step field "meta". Skills come from their own key stream folded from the
step number, so agents without skills see exactly the random numbers they saw before; a skill
is a deterministic function of (agent state, step) at the episode start where a checkpoint is
taken, so resuming redraws the same skills and the checkpoint needs no copy of them.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import edp
from edp import checkpoint
from edp.agents.base import Agent, with_meta
from edp.envs.base import VecEnv
from edp.replay import ReplayBuffer
from edp.sinks import Progress, Sinks, to_scalars


class NonFiniteError(RuntimeError):
    """A loss, statistic or action became NaN or infinite."""


def env_actions(action: jax.Array, where: str, clip: bool = False) -> np.ndarray:
    """The actions the env is given and the replay stores, as numpy: clipped to [-1, 1] if
    `clip` (beyond the reference, which forwards a diffusion sample's 3.2 unchanged); a
    NonFiniteError if any is NaN or infinite: a policy that diverged (an unclipped diffusion
    sample can run away while every loss stays finite) stops the run with one line instead of
    handing NaN to the environment."""
    action = np.asarray(action)
    if not np.isfinite(action).all():
        raise NonFiniteError(f"non-finite action {where}: the policy diverged; the last good "
                             "checkpoint is kept")
    return np.clip(action, -1.0, 1.0) if clip else action


@dataclass(frozen=True)
class LoopSettings:
    frames: int
    seed: int
    log_every: int
    checkpoint_every: int
    snapshots: tuple[int, ...]
    eval_episodes: int
    quiet: bool = False
    eval_every: int = 0  # frames between evaluations (0: only the final one)
    expert_score: float | None = None  # eval.csv gets normalized_return = return / this
    video: bool = False  # render the final evaluation's first episode to videos/<frame>.mp4
    # extra evaluation modes (`agent.act_eval(..., mode)`), each in eval.csv's <mode>_* columns
    eval_modes: tuple[str, ...] = ()
    clip_actions: bool = False  # clip every action to [-1, 1] (training and evaluation)


@dataclass
class LoopResult:
    run_dir: Path
    frames: int
    final_eval: dict[str, float]
    coverage: float | None


_fold_in = jax.jit(jax.random.fold_in)  # eager fold_in costs ~0.5 ms of dispatch per call


def _checked(update):
    """Wrap an update so one boolean says whether every metric is finite."""

    def run(state, batch, key):
        state, metrics = update(state, batch, key)
        finite = jnp.all(jnp.stack([jnp.all(jnp.isfinite(v)) for v in metrics.values()])) \
            if metrics else jnp.array(True)
        return state, metrics, finite

    return jax.jit(run)


class Trainer:
    """Owns the env, replay, agent state and sinks of one run."""

    def __init__(self, run_dir: Path, env: VecEnv, eval_env: VecEnv, agent: Agent,
                 replay: ReplayBuffer, settings: LoopSettings, coverage=None):
        self.run_dir, self.env, self.eval_env, self.agent = run_dir, env, eval_env, agent
        self.replay, self.settings, self.coverage = replay, settings, coverage
        root = jax.random.PRNGKey(settings.seed)
        self.init_key, self.act_key, self.update_key, self.eval_key = jax.random.split(root, 4)
        self.sample_rng = np.random.default_rng([settings.seed, 1])
        self.state = agent.init(self.init_key)
        self.meta_dim = agent.meta_dim
        self.meta_key = jax.random.fold_in(root, 4)  # skills: a stream of their own
        self.step = 0
        self.episodes = 0
        self._update = _checked(agent.update)
        self._episode_returns: list[float] = []
        self._resumed = False

    # ----------------------------------------------------------------------------- checkpoints
    def save_checkpoint(self) -> Path:
        arrays = {"replay": self.replay.state_dict()}
        if self.coverage is not None:
            arrays["coverage"] = self.coverage.state_dict()
        frame = self.frame
        state = {"step": self.step, "frame": frame, "episodes": self.episodes,
                 "sample_rng": self.sample_rng.bit_generator.state,
                 "env_rng": self.env.get_rng_state(),
                 "eval_env_rng": self.eval_env.get_rng_state(),
                 "episode_returns": self._episode_returns[-100:]}
        path = checkpoint.save(self.run_dir / "checkpoints" / str(frame), self.state, state, arrays)
        self._prune_checkpoints(keep=path)
        return path

    def _prune_checkpoints(self, keep: Path) -> None:
        import shutil

        for path in (self.run_dir / "checkpoints").iterdir():
            if path != keep and path.name.isdigit():
                shutil.rmtree(path)

    def restore(self, directory: Path) -> None:
        self.state, state, arrays = checkpoint.load(directory, self.state)
        try:
            self.replay.load_state_dict(arrays["replay"])
            if self.coverage is not None:
                self.coverage.load_state_dict(arrays["coverage"])
            self.step, self.episodes = state["step"], state["episodes"]
            self.sample_rng.bit_generator.state = state["sample_rng"]
            self.env.set_rng_state(state["env_rng"])
            self.eval_env.set_rng_state(state["eval_env_rng"])
            self._episode_returns = list(state["episode_returns"])
        except KeyError as exc:
            raise checkpoint.CheckpointError(f"corrupt checkpoint {directory}: no {exc}") from exc
        except (TypeError, ValueError) as exc:
            raise checkpoint.CheckpointError(f"corrupt checkpoint {directory}: {exc}") from exc
        self._resumed = True

    def save_snapshot(self) -> Path:
        directory = self.run_dir / "snapshots" / str(self.frame)
        meta = snapshot_meta(self.run_dir, self.frame, self.agent.name, self.env)
        return checkpoint.save(directory, self.state, meta)

    # ----------------------------------------------------------------------------------- loop
    @property
    def frame(self) -> int:
        return self.step * self.env.num_envs

    def _due(self, every: int, frames_this_step: int) -> bool:
        return crossed(every, self.frame - frames_this_step, self.frame)

    def run(self) -> LoopResult:
        s, agent, env = self.settings, self.agent, self.env
        total_steps = -(-s.frames // env.num_envs)
        eval_fields = ["episode_return", "episode_return_std"]
        if s.expert_score is not None:
            eval_fields.append("normalized_return")
        eval_fields += [f"{mode}_{name}" for mode in s.eval_modes for name in eval_fields]
        sinks = Sinks(self.run_dir, eval_fields, resume_frame=self.frame if self._resumed else None)
        progress = Progress(s.frames, self.frame)
        metrics: dict[str, Any] = {}
        snapshots = set(s.snapshots)
        obs = env.reset()
        meta = stored_meta = self._reset_meta()  # stored_meta: the skill stored with obs
        self.replay.start_episodes(obs)
        episode_return = np.zeros(env.num_envs)
        try:
            while self.step < total_steps:
                step = self.step
                if self._due(s.eval_every, env.num_envs):  # frame 0 included
                    self.evaluate(sinks)
                if meta is not None:
                    self.state, meta = agent.update_meta(self.state, meta, step,
                                                         self._meta_key(step, 1),
                                                         self._sample_transitions)
                action = env_actions(agent.act(self.state, with_meta(obs, meta),
                                               _fold_in(self.act_key, step), step, False),
                                     f"at frame {self.frame}", s.clip_actions)
                if self._learning_due(step):
                    batch = self.replay.sample(self.sample_rng, agent.batch_size,
                                               agent.updates_per_step)
                    key = _fold_in(self.update_key, step)
                    self.state, metrics, finite = self._update(self.state, batch, key)
                    if not bool(finite):
                        bad = [k for k, v in to_scalars(metrics).items() if not np.isfinite(v)]
                        raise NonFiniteError(f"non-finite {', '.join(bad)} at frame {self.frame}; "
                                             "the last good checkpoint is kept")
                out = env.step(action)
                episode_return += out.reward
                self.replay.add(action, out.reward, 1.0, out.observation, out.done,
                                **({} if meta is None else {"meta": stored_meta}))
                stored_meta = meta
                self.step += 1
                obs = out.observation
                log_due = self._due(s.log_every, env.num_envs)
                if out.done:
                    self._end_episodes(episode_return)
                    episode_return[:] = 0
                    if self.frame in snapshots:
                        self.save_snapshot()
                    if log_due:  # before the checkpoint: a kill between the two loses no record
                        self._log(sinks, progress, metrics)
                        log_due = False
                    if self._due(s.checkpoint_every, env.num_envs * env.episode_length):
                        self.save_checkpoint()
                    obs = env.reset()
                    meta = stored_meta = self._reset_meta()
                    self.replay.start_episodes(obs)
                if log_due:
                    self._log(sinks, progress, metrics)
            self.save_snapshot()
            self.save_checkpoint()
            final = self.evaluate(sinks, record=s.video) if s.eval_episodes else {}
        finally:
            sinks.close()
        return LoopResult(self.run_dir, self.frame, final,
                          self.coverage.value if self.coverage is not None else None)

    def _meta_key(self, step: int, which: int) -> jax.Array:
        """Key of the skill drawn at the reset before `step` (which 0) or updated at it (1)."""
        return _fold_in(self.meta_key, 2 * step + which)

    def _reset_meta(self) -> np.ndarray | None:
        """Skills of the episodes starting now (None for agents without skills)."""
        if not self.meta_dim:
            return None
        return self.agent.init_meta(self.state, self._meta_key(self.step, 0), self.env.num_envs)

    def _sample_transitions(self, n: int) -> dict | None:
        """n replay transitions (n, ...) for a skill schedule that reads the replay (APS
        fine-tuning); None while the buffer holds no finished episode."""
        if self.replay.size == 0:
            return None
        return {k: v[0] for k, v in self.replay.sample(self.sample_rng, n).items()}

    def _learning_due(self, step: int) -> bool:
        """Past the seed phase, on the update cadence, and with a finished episode to sample."""
        agent = self.agent
        return (step >= agent.learning_starts and step % agent.update_every == 0
                and self.replay.size > 0)

    def _log(self, sinks: Sinks, progress: Progress, metrics: dict) -> None:
        scalars = {"fps": progress.fps(self.frame), **to_scalars(metrics)}
        if self._episode_returns:
            scalars["episode_return"] = float(np.mean(self._episode_returns[-10:]))
        if self.coverage is not None:
            scalars["coverage"] = self.coverage.value
        sinks.log(self.frame, "train", scalars)
        if not self.settings.quiet:
            progress.report(self.frame, {k: v for k, v in scalars.items() if k != "fps"})

    def _end_episodes(self, returns: np.ndarray) -> None:
        self.episodes += self.env.num_envs
        self._episode_returns.extend(float(r) for r in returns)
        if self.coverage is not None:
            n = self.env.num_envs
            self.coverage.add_episodes(self.replay.recent_observations(n))

    def evaluate(self, sinks: Sinks, record: bool = False) -> dict[str, float]:
        """Deterministic-policy episodes on the evaluation env; logged to eval.csv. `record`
        renders the first episode (software rendering costs ~0.15 s a frame here)."""
        s = self.settings
        t0 = time.perf_counter()
        key, start = _fold_in(self.eval_key, self.frame), self.eval_env.get_rng_state()
        returns, frames = run_episodes(self.agent, self.state, self.eval_env, s.eval_episodes,
                                       key, self.step, record, clip=s.clip_actions)
        row = summarise(returns, s.expert_score)
        end = self.eval_env.get_rng_state()
        for mode in s.eval_modes:  # the same start states: paired, and the main row unchanged
            self.eval_env.set_rng_state(start)
            extra, _ = run_episodes(self.agent, self.state, self.eval_env, s.eval_episodes, key,
                                    self.step, mode=mode, clip=s.clip_actions)
            row.update({f"{mode}_{k}": v for k, v in summarise(extra, s.expert_score).items()})
        self.eval_env.set_rng_state(end)
        sinks.log_eval(self.frame, row)
        if frames:
            from edp.video import write_mp4

            write_mp4(self.run_dir / "videos" / f"{self.frame}.mp4", frames)
        if not s.quiet:
            print(f"eval at {self.frame:,} frames: {describe(row)} over {len(returns)} episodes "
                  f"({time.perf_counter() - t0:.1f}s)", flush=True)
        return row


def crossed(every: int, before: int, after: int) -> bool:
    """Whether going from frame `before` to `after` passed a multiple of `every` (0: never)."""
    return every > 0 and before // every != after // every


def snapshot_meta(run_dir: Path, frame: int, agent_name: str, env: VecEnv) -> dict:
    """A snapshot's state.json: what fine-tuning must check before using it (the run's config,
    the agent and env, their dimensions, the library versions)."""
    return {"frame": frame, "agent": agent_name, "env": env.name,
            "observation_dim": env.observation_dim, "action_dim": env.action_dim,
            "edp_version": edp.__version__, "jax_version": jax.__version__,
            "config": json.loads((run_dir / "config.json").read_text())["config"]}


def run_episodes(agent: Agent, state: Any, env: VecEnv, episodes: int, key: jax.Array,
                 step: int, record: bool = False, mode: str | None = None, on_rollout=None,
                 clip: bool = False) -> tuple[list[float], list[np.ndarray]]:
    """Returns of `episodes` deterministic-policy episodes (or of the agent's evaluation mode
    `mode`), and the rendered frames of the first one if `record`; `on_rollout(episodes done)`
    after each batch of parallel ones; `clip`: actions clipped to [-1, 1] (`env_actions`)."""
    returns: list[float] = []
    frames: list[np.ndarray] = []
    rollout = 0
    meta = None  # skill agents: one skill for the whole evaluation round (URLB)
    if agent.meta_dim:
        meta = np.repeat(agent.init_meta(state, jax.random.split(key)[1], 1), env.num_envs, 0)
    while len(returns) < episodes:
        obs = env.reset()
        total = np.zeros(env.num_envs)
        done, t = False, 0
        while not done:
            if record and rollout == 0:
                frames.append(env.render())
            act_key = _fold_in(_fold_in(key, rollout), t)
            action = env_actions(agent.act(state, with_meta(obs, meta), act_key, step, True)
                                 if mode is None else agent.act_eval(state, obs, act_key, mode),
                                 "in an evaluation episode", clip)
            out = env.step(action)
            total += out.reward
            obs, done, t = out.observation, out.done, t + 1
        returns.extend(total.tolist())
        rollout += 1
        if on_rollout is not None:
            on_rollout(min(len(returns), episodes))
    return returns[:episodes], frames


def summarise(returns: list[float], expert_score: float | None) -> dict[str, float]:
    """Mean and std of the returns, and the mean over the expert score when there is one."""
    row = {"episode_return": float(np.mean(returns)),
           "episode_return_std": float(np.std(returns))}
    if expert_score is not None:
        row["normalized_return"] = row["episode_return"] / expert_score
    return row


def describe(row: dict[str, float]) -> str:
    text = f"return {row['episode_return']:.3f} +- {row['episode_return_std']:.3f}"
    if "normalized_return" in row:
        text += f" (normalised {row['normalized_return']:.3f})"
    return text

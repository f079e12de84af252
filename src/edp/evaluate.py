"""`edp eval <run dir>`: re-evaluate a run's latest checkpoint for N fresh episodes.

The run's own config rebuilds its env and agent (a fine-tuning run also reads its snapshot's
shapes), so a checkpoint that does not fit is a one-line error, never a silent fallback.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
from tyro.conf import Positional

from edp import checkpoint, rundir
from edp.config import PretrainConfig, from_json

EVAL_SEED_OFFSET = 20_000  # distinct from the training env and the in-run evaluation env
PROGRESS_SECONDS = 10.0  # between progress lines of a long evaluation


@dataclass(frozen=True)
class EvalConfig:
    """Re-evaluate a run's latest checkpoint with the deterministic policy."""

    run: Positional[Path]
    """Run directory (pre-training or fine-tuning)."""
    episodes: int = 10
    """Evaluation episodes."""
    seed: int = 0
    """Seed of the evaluation env (offset from the run's own seeds)."""
    video: bool = False
    """Render the first episode to <run>/videos/eval_<frame>.mp4 (URLB envs)."""


@dataclass
class LoadedRun:
    """A run's latest checkpoint rebuilt from its own config: what `edp eval` and the
    benchmarks' diagnostics start from."""

    config: Any  # PretrainConfig or FinetuneConfig, resolved
    env: Any  # one environment of the run's task
    agent: Any
    state: Any
    meta: dict
    checkpoint: Path  # the checkpoint directory loaded (replay.npz is beside the agent)


def rebuild(run: Path, env_seed: int = 0) -> tuple[Any, Any, Any]:
    """(config, env, agent) of the run, from its config.json; a fine-tuning
    run also reads its snapshot's shapes. The env is seeded run seed + EVAL_SEED_OFFSET +
    env_seed, distinct from the run's own envs."""
    from edp.config import resolve
    from edp.envs import make_env

    data = rundir.read_config(run)
    if "method" in data:
        from edp import snapshot
        from edp.finetune.config import FinetuneConfig
        from edp.finetune.config import resolve as resolve_finetune
        from edp.finetune.run import builder

        run_cfg = resolve_finetune(from_json(FinetuneConfig, data))
        env = make_env(run_cfg.env, 1, run_cfg.seed + EVAL_SEED_OFFSET + env_seed,
                       run_cfg.maze_strict)
        snap = None if run_cfg.snapshot is None else snapshot.load(run_cfg.snapshot, env,
                                                                   weights=False)
        return run_cfg, env, builder(run_cfg, snap)(env)
    from edp.agents.registry import make_agent

    run_cfg = resolve(from_json(PretrainConfig, data))
    env = make_env(run_cfg.env, 1, run_cfg.seed + EVAL_SEED_OFFSET + env_seed,
                   run_cfg.maze_strict)
    return run_cfg, env, make_agent(run_cfg, env.observation_dim, env.action_dim)


def load_latest(run: Path, env_seed: int = 0, rebuilt: tuple | None = None) -> LoadedRun:
    """The run's latest checkpoint into its rebuilt agent (`rebuilt`: `rebuild`'s result, when
    the caller needed it first); a one-line error when there is none or it does not fit."""
    run_cfg, env, agent = rebuilt or rebuild(run, env_seed)
    latest = checkpoint.latest(run / "checkpoints")
    if latest is None:
        raise checkpoint.CheckpointError(f"{run} has no complete checkpoint")
    state, meta, _ = checkpoint.load(latest, agent.init(jax.random.PRNGKey(0)))
    missing = [k for k in ("step", "frame") if not isinstance(meta.get(k), int)]
    if missing:
        raise checkpoint.CheckpointError(f"corrupt checkpoint {latest}: state.json has no "
                                         f"'{missing[0]}'")
    return LoadedRun(run_cfg, env, agent, state, meta, latest)


def episode_progress(total: int, every: float = PROGRESS_SECONDS, stream=None, clock=None):
    """A run_episodes callback printing a progress line at most every `every` seconds, so a
    long evaluation shows its pace and ETA like training does."""
    import sys
    import time

    from edp.sinks import Progress

    clock = clock or time.perf_counter
    progress = Progress(total, 0, stream or sys.stderr, "episodes", "episodes/s", clock)
    last = [clock()]

    def report(done: int) -> None:
        if clock() - last[0] >= every and done < total:
            progress.report(done)
            last[0] = clock()

    return report


def evaluate_run(cfg: EvalConfig) -> tuple[dict[str, float], int, Path | None]:
    """(summary row, checkpoint frame, video path or None)."""
    from edp.config import check_episodes, check_seed
    from edp.envs import expert_score
    from edp.loop import run_episodes, summarise

    check_episodes("episodes", cfg.episodes, 1)
    check_seed(cfg.seed)
    rebuilt = rebuild(cfg.run, cfg.seed)
    if cfg.video:  # before the (possibly large) checkpoint is read
        from edp.video import check_renderable

        check_renderable(rebuilt[1])
    loaded = load_latest(cfg.run, rebuilt=rebuilt)
    agent, state, meta, env = loaded.agent, loaded.state, loaded.meta, loaded.env
    key = jax.random.PRNGKey(cfg.seed)
    clip = getattr(loaded.config, "clip_actions", False)  # fine-tuning runs only
    returns, frames = run_episodes(agent, state, env, cfg.episodes, key, meta["step"], cfg.video,
                                   on_rollout=episode_progress(cfg.episodes), clip=clip)
    video = None
    if frames:
        from edp.video import write_mp4

        video = write_mp4(cfg.run / "videos" / f"eval_{meta['frame']}.mp4", frames)
    return summarise(returns, expert_score(loaded.config.env)), meta["frame"], video

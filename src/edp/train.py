"""Build a run from a config (env, agent, replay, coverage, run directory) and train it.

`pretrain_run` and `edp.finetune.run.finetune_run` differ only in the agent they build and the
evaluation they ask for; `train` is everything else. A finished run writes result.json last:
its presence is what marks a run complete (sweeps rely on it).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from edp import checkpoint, rundir
from edp.agents.base import Agent
from edp.agents.registry import AGENT_NAMES, make_agent
from edp.config import PretrainConfig, parse_env, resolve, uses_device_loop, validate
from edp.envs import EnvId, VecEnv, make_env
from edp.loop import LoopResult, LoopSettings, Trainer
from edp.replay import ReplayBuffer, check_replay

EVAL_SEED_OFFSET = 10_000  # evaluation episodes use their own env stream
REWARD_MAP_ESTIMATES = 16

# (env) -> agent: what a run trains, given its env's dimensions
BuildAgent = Callable[[VecEnv], Agent]


def make_envs(cfg) -> tuple[VecEnv, VecEnv]:
    """Training env and its separately seeded evaluation env; unknown names are ConfigErrors."""
    parse_env(cfg.env)
    env = make_env(cfg.env, cfg.num_envs, cfg.seed, cfg.maze_strict)
    eval_env = make_env(cfg.env, 1, cfg.seed + EVAL_SEED_OFFSET, cfg.maze_strict)
    return env, eval_env


def train(cfg, label: str, env: VecEnv, eval_env: VecEnv, build: BuildAgent,
          settings: LoopSettings, resume_dir: Path | None) -> tuple[Trainer, LoopResult]:
    """Create (or reopen) the run directory under <out>/<env>/<label> and train to the end."""
    agent = build(env)
    skill_dim = agent.meta_dim  # skill agents store their skill with every step
    check_replay(cfg.replay_capacity, agent.batch_size, cfg.nstep, env.episode_length,
                 cfg.num_envs, env.observation_dim, env.action_dim + 2 + skill_dim)
    replay = ReplayBuffer(cfg.replay_capacity, env.episode_length, cfg.num_envs,
                          env.observation_dim, env.action_dim, cfg.nstep, cfg.discount,
                          extras={"meta": skill_dim} if skill_dim else None)
    coverage = None
    maze = EnvId.parse(cfg.env).maze
    if maze is not None:
        from edp.coverage import CoverageTracker

        coverage = CoverageTracker(maze)
    run_dir = resume_dir or rundir.create(cfg.out, cfg.env, label, cfg.seed, cfg)
    trainer = Trainer(run_dir, env, eval_env, agent, replay, settings, coverage)
    if resume_dir is not None:
        latest = checkpoint.latest(run_dir / "checkpoints")
        if latest is None:
            raise checkpoint.CheckpointError(f"{run_dir} has no complete checkpoint to resume")
        trainer.restore(latest)
    return trainer, trainer.run()


def write_result(kind: str, result: LoopResult) -> None:
    """result.json, atomically: the run finished (written after every other output)."""
    data = {"kind": kind, "frames": result.frames, "final_eval": result.final_eval,
            "coverage": result.coverage}
    rundir.write_atomic(result.run_dir / "result.json", json.dumps(data, indent=2))


def pretrain_run(cfg: PretrainConfig, resume_dir: Path | list[Path] | None = None
                 ) -> LoopResult | list[LoopResult]:
    """Validate, then create (or reopen) the run directory and train to cfg.frames. With
    `cfg.seeds` (or several directories to resume), one result per seed."""
    validate(cfg, agent_names=AGENT_NAMES)
    cfg = resolve(cfg)
    if uses_device_loop(cfg):
        from edp.device_train import pretrain_device

        resume = [resume_dir] if isinstance(resume_dir, Path) else resume_dir
        results = pretrain_device(cfg, resume)
        return results if cfg.seeds else results[0]
    if isinstance(resume_dir, list):
        resume_dir, = resume_dir
    env, eval_env = make_envs(cfg)
    settings = LoopSettings(frames=cfg.frames, seed=cfg.seed, log_every=cfg.log_every,
                            checkpoint_every=cfg.checkpoint_every, snapshots=cfg.snapshots,
                            eval_episodes=cfg.eval_episodes, quiet=cfg.quiet)
    build = lambda env: make_agent(cfg, env.observation_dim, env.action_dim)
    trainer, result = train(cfg, cfg.agent, env, eval_env, build, settings, resume_dir)
    if trainer.coverage is not None:
        write_maze_figures(cfg, trainer.agent, trainer.state, trainer.run_dir, trainer.coverage,
                           result.frames)
    write_result("pretrain", result)
    return result


def reward_draws(agent, state, points: np.ndarray, seed: int, estimates: int) -> np.ndarray:
    """(estimates, N) draws of the agent's intrinsic reward at `points`: the reward is a
    Monte-Carlo estimate, so the reward map and the benchmarks' probes average several, with
    keys from the run's seed so that they see the same draws."""
    import jax

    keys = jax.random.split(jax.random.PRNGKey(seed), estimates)
    return np.stack([np.asarray(agent.intrinsic_reward(state, points, k)) for k in keys])


def write_maze_figures(cfg: PretrainConfig, agent, state, run_dir: Path, coverage, frames: int
                       ) -> None:
    """coverage.json/png, and reward_map.png for agents with an intrinsic reward (`reward_map`)."""
    from edp.coverage import plot_reward_map, write_coverage

    title = f"{cfg.agent} on {cfg.env}, {frames:,} frames"
    write_coverage(coverage, run_dir, title)
    if agent.reward_map:
        def mean_reward(points):
            return reward_draws(agent, state, points, cfg.seed, REWARD_MAP_ESTIMATES).mean(0)

        plot_reward_map(EnvId.parse(cfg.env).maze, mean_reward, run_dir / "reward_map.png",
                        f"intrinsic reward (mean of {REWARD_MAP_ESTIMATES} estimates)\n{title}")

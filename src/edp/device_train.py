"""Build a compiled-loop maze pre-training (one or several seeds) and write its run directories.

The counterpart of `edp.train.pretrain_run` for `edp.device_loop`: one agent and one device
replay template, one ordinary run directory per seed (config.json records that seed alone, so
each directory reads like a single-seed run), and per seed the same closing files: coverage
figures, reward map, result.json.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from edp import rundir
from edp.agents.registry import make_agent
from edp.config import ConfigError, PretrainConfig
from edp.coverage import CoverageTracker
from edp.device_loop import DeviceTrainer, SeedRun, unstack
from edp.device_replay import DeviceReplay
from edp.envs import EnvId
from edp.envs.maze import EPISODE_LENGTH, MazeEnv
from edp.loop import LoopResult, LoopSettings, snapshot_meta
from edp.replay import check_replay
from edp.train import EVAL_SEED_OFFSET, write_maze_figures, write_result


def seed_configs(cfg: PretrainConfig) -> list[PretrainConfig]:
    """One single-seed config per seed of the group (what each config.json records)."""
    return [dataclasses.replace(cfg, seed=seed, seeds=(), loop="device")
            for seed in (cfg.seeds or (cfg.seed,))]


def pretrain_device(cfg: PretrainConfig, resume_dirs: list[Path] | None) -> list[LoopResult]:
    """Train every seed of a resolved, validated config to cfg.frames; results in seed order."""
    configs = seed_configs(cfg)
    if resume_dirs is not None and len(resume_dirs) != len(configs):
        raise ConfigError(f"{len(resume_dirs)} run directories to resume for "
                          f"{len(configs)} seeds")
    maze = EnvId.parse(cfg.env).maze
    env = MazeEnv(maze)
    agent = make_agent(cfg, env.observation_dim, env.action_dim)
    skill_dim = agent.meta_dim
    check_replay(cfg.replay_capacity, agent.batch_size, cfg.nstep, EPISODE_LENGTH, 1,
                 env.observation_dim, env.action_dim + 2 + skill_dim)  # one buffer per seed
    replay = DeviceReplay.create(cfg.replay_capacity, EPISODE_LENGTH, env.observation_dim,
                                 env.action_dim, cfg.nstep, cfg.discount,
                                 extras={"meta": skill_dim} if skill_dim else None)
    runs = []
    for i, seed_cfg in enumerate(configs):
        run_dir = resume_dirs[i] if resume_dirs else rundir.create(
            cfg.out, cfg.env, cfg.agent, seed_cfg.seed, seed_cfg)
        eval_env = MazeEnv(maze, seed=seed_cfg.seed + EVAL_SEED_OFFSET, strict=cfg.maze_strict)
        runs.append(SeedRun(seed_cfg.seed, run_dir, CoverageTracker(maze), eval_env))
    settings = LoopSettings(frames=cfg.frames, seed=cfg.seed, log_every=cfg.log_every,
                            checkpoint_every=cfg.checkpoint_every, snapshots=cfg.snapshots,
                            eval_episodes=cfg.eval_episodes, quiet=cfg.quiet)
    trainer = DeviceTrainer(agent, maze, cfg.maze_strict, EPISODE_LENGTH, replay, runs, settings,
                            lambda run_dir, frame: snapshot_meta(run_dir, frame, agent.name, env))
    placement = trainer.placement
    if placement.padded > placement.seeds and not cfg.quiet:
        print(f"note: {placement.seeds} seeds fill {placement.padded} device slots; "
              f"{placement.padded - placement.seeds} more would take no longer", flush=True)
    if resume_dirs:
        trainer.restore()
    results = trainer.run()
    for i, (seed_cfg, run, result) in enumerate(zip(configs, runs, results, strict=True)):
        write_maze_figures(seed_cfg, agent, unstack(trainer.carry["state"], i), run.run_dir,
                           run.coverage, result.frames)
        write_result("pretrain", result)
    return results

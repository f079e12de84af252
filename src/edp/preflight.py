"""A run's whole configuration checked without writing a file or starting any work.

`edp sweep` runs this for every run of its grid (and `--dry-run` shows the result) before it
submits one, so a flag passed through `--pretrain-args` that no run can accept is one line up
front, not a failed run per grid point. The checks are the ones the run itself makes before it
creates its directory; a fine-tune whose snapshot does not exist yet is checked without it.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

from edp.config import ConfigError

PENDING_SNAPSHOT = Path("<snapshot of its pre-training run>")


@functools.cache
def env_shape(name: str) -> tuple[int, int, int]:
    """(episode length, observation dim, action dim) of an env, built once per name."""
    from edp.envs import make_env

    env = make_env(name, 1, 0)
    return env.episode_length, env.observation_dim, env.action_dim


def check_pretrain(cfg) -> None:
    from edp.agents.registry import AGENT_NAMES, make_agent
    from edp.config import resolve, validate
    from edp.replay import check_replay

    validate(cfg, agent_names=AGENT_NAMES)
    cfg = resolve(cfg)
    length, obs_dim, action_dim = env_shape(cfg.env)
    agent = make_agent(cfg, obs_dim, action_dim)
    check_replay(cfg.replay_capacity, agent.batch_size, cfg.nstep, length, cfg.num_envs,
                 obs_dim, action_dim + 2 + agent.meta_dim)


def check_finetune(cfg, snapshot_pending: bool = False) -> None:
    """Without the snapshot (pending), the batch size is the config's own."""
    from edp.finetune.config import resolve, validate
    from edp.replay import check_replay

    if snapshot_pending:
        cfg = dataclasses.replace(cfg, snapshot=cfg.snapshot or PENDING_SNAPSHOT)
    validate(cfg)
    cfg = resolve(cfg)
    length, obs_dim, action_dim = env_shape(cfg.env)
    batch = cfg.method_config().batch_size
    check_replay(cfg.replay_capacity, batch, cfg.nstep, length, cfg.num_envs, obs_dim,
                 action_dim + 2)


def check_args(args: list[str] | tuple[str, ...], snapshot_pending: bool = False) -> None:
    """One-line ConfigError for an `edp pretrain|finetune ...` argument list no run accepts."""
    from edp.cli import parse_config

    command, rest = args[0], list(args[1:])
    cfg = parse_config(command, rest)
    try:
        if command == "pretrain":
            check_pretrain(cfg)
        else:
            check_finetune(cfg, snapshot_pending)
    except ConfigError:
        raise
    except ValueError as exc:  # an agent's own config check
        raise ConfigError(str(exc)) from exc

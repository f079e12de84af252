"""Pre-training agents by name. Adding an agent is its own file plus one entry here."""

from __future__ import annotations

from edp.agents.base import Agent
from edp.config import ConfigError, PretrainConfig

AGENT_NAMES = ("edp", "random", "ddpg")


def make_agent(cfg: PretrainConfig, obs_dim: int, action_dim: int) -> Agent:
    """The agent named by cfg.agent; cfg must be resolved (`edp.config.resolve`)."""
    backbone = cfg.ddpg
    try:
        if cfg.agent == "random":
            from edp.agents.random import RandomAgent

            return RandomAgent(obs_dim, action_dim)
        if cfg.agent == "ddpg":
            from edp.agents.ddpg import DDPGAgent

            return DDPGAgent(backbone, obs_dim, action_dim, name="ddpg", intrinsic=True)
        if cfg.agent == "edp":
            from edp.agents.edp import EDPAgent

            return EDPAgent(cfg.edp, backbone, obs_dim, action_dim)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    raise ConfigError(f"unknown agent '{cfg.agent}'; valid agents: {', '.join(AGENT_NAMES)}")

"""Pre-training agents by name. Adding an agent is its own file plus one entry here."""

from __future__ import annotations

import importlib

from edp.agents.base import Agent
from edp.config import ConfigError, PretrainConfig

# name -> class of the intrinsic-reward agents, in edp/agents/<name>.py, built as
# Class(cfg.<name>, cfg.ddpg, obs_dim, action_dim); imported on use (only the chosen one loads)
INTRINSIC_AGENTS = {
    "edp": "EDPAgent",
    "icm": "ICMAgent",
    "rnd": "RNDAgent",
    "disagreement": "DisagreementAgent",
    "apt": "APTAgent",
    "proto": "ProtoAgent",
    "smm": "SMMAgent",
    "diayn": "DIAYNAgent",
    "aps": "APSAgent",
    "cic": "CICAgent",
}
AGENT_NAMES = ("edp", "random", "ddpg", *(n for n in INTRINSIC_AGENTS if n != "edp"))


def make_agent(cfg: PretrainConfig, obs_dim: int, action_dim: int) -> Agent:
    """The agent named by cfg.agent; cfg must be resolved (`edp.config.resolve`)."""
    try:
        if cfg.agent == "random":
            from edp.agents.random import RandomAgent

            return RandomAgent(obs_dim, action_dim)
        if cfg.agent == "ddpg":
            from edp.agents.ddpg import DDPGAgent

            return DDPGAgent(cfg.ddpg, obs_dim, action_dim, name="ddpg", intrinsic=True)
        if cfg.agent in INTRINSIC_AGENTS:
            module = importlib.import_module(f"edp.agents.{cfg.agent}")
            agent_cls = getattr(module, INTRINSIC_AGENTS[cfg.agent])
            return agent_cls(getattr(cfg, cfg.agent), cfg.ddpg, obs_dim, action_dim)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    raise ConfigError(f"unknown agent '{cfg.agent}'; valid agents: {', '.join(AGENT_NAMES)}")

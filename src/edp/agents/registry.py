"""Pre-training agents by name. Adding an agent is its own file plus one entry here."""

from __future__ import annotations

from edp.agents.base import Agent
from edp.config import ConfigError, PretrainConfig

AGENT_NAMES = ("edp", "random", "ddpg", "icm", "rnd", "disagreement", "apt", "proto", "smm",
               "diayn", "aps", "cic")


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
        if cfg.agent == "icm":
            from edp.agents.icm import ICMAgent

            return ICMAgent(cfg.icm, backbone, obs_dim, action_dim)
        if cfg.agent == "rnd":
            from edp.agents.rnd import RNDAgent

            return RNDAgent(cfg.rnd, backbone, obs_dim, action_dim)
        if cfg.agent == "disagreement":
            from edp.agents.disagreement import DisagreementAgent

            return DisagreementAgent(cfg.disagreement, backbone, obs_dim, action_dim)
        if cfg.agent == "apt":
            from edp.agents.apt import APTAgent

            return APTAgent(cfg.apt, backbone, obs_dim, action_dim)
        if cfg.agent == "proto":
            from edp.agents.proto import ProtoAgent

            return ProtoAgent(cfg.proto, backbone, obs_dim, action_dim)
        if cfg.agent == "smm":
            from edp.agents.smm import SMMAgent

            return SMMAgent(cfg.smm, backbone, obs_dim, action_dim)
        if cfg.agent == "diayn":
            from edp.agents.diayn import DIAYNAgent

            return DIAYNAgent(cfg.diayn, backbone, obs_dim, action_dim)
        if cfg.agent == "aps":
            from edp.agents.aps import APSAgent

            return APSAgent(cfg.aps, backbone, obs_dim, action_dim)
        if cfg.agent == "cic":
            from edp.agents.cic import CICAgent

            return CICAgent(cfg.cic, backbone, obs_dim, action_dim)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    raise ConfigError(f"unknown agent '{cfg.agent}'; valid agents: {', '.join(AGENT_NAMES)}")

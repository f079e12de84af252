"""Pre-training agents by name: a table. Adding an agent is its own file (its class, config
group, presets and hand-over declared there) plus one line here; the run configuration
(`edp.config.PretrainConfig`), its presets and the CLI flags are built from this table."""

from __future__ import annotations

from typing import Any

from edp.agents.aps import APSAgent
from edp.agents.apt import APTAgent
from edp.agents.base import Agent
from edp.agents.cic import CICAgent
from edp.agents.ddpg import DDPGAgent
from edp.agents.diayn import DIAYNAgent
from edp.agents.disagreement import DisagreementAgent
from edp.agents.edp import EDPAgent
from edp.agents.icm import ICMAgent
from edp.agents.proto import ProtoAgent
from edp.agents.random import RandomAgent
from edp.agents.rnd import RNDAgent
from edp.agents.smm import SMMAgent
from edp.errors import ConfigError

AGENTS: dict[str, type[Agent]] = {
    "edp": EDPAgent,
    "random": RandomAgent,
    "ddpg": DDPGAgent,
    "icm": ICMAgent,
    "rnd": RNDAgent,
    "disagreement": DisagreementAgent,
    "apt": APTAgent,
    "proto": ProtoAgent,
    "smm": SMMAgent,
    "diayn": DIAYNAgent,
    "aps": APSAgent,
    "cic": CICAgent,
}
AGENT_NAMES = tuple(AGENTS)


def agent_class(name: str) -> type[Agent]:
    try:
        return AGENTS[name]
    except KeyError:
        raise ConfigError(f"unknown agent '{name}'; valid agents: "
                          f"{', '.join(AGENT_NAMES)}") from None


def make_agent(cfg: Any, obs_dim: int, action_dim: int) -> Agent:
    """The agent named by cfg.agent; cfg must be a resolved pre-training config
    (`edp.config.resolve`)."""
    cls = agent_class(cfg.agent)
    try:
        return cls.from_config(cfg, obs_dim, action_dim)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc

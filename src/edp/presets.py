"""Named presets: the defaults of a run, given the preset name, environment and agent.

`paper` reproduces the reference's hyper-parameters (docs/method.md §5.4; URLB's
DDPG for the plain `ddpg` baseline). `fast` is sized for a 2-core CPU while keeping the
method's behaviour; benchmarks/coverage measures that it still out-explores the baselines.
`cpu` is `fast` with the backbone that benchmarks/ablation found to buy the most coverage per
CPU-minute; every agent gets it, so the baselines keep EDP's budget.
Each agent declares its own part (`paper_group`, `paper_backbone`, `fast` of
`edp.agents.base.Agent`); every agent's group gets its preset, whichever agent runs, so that
config.json records the same values for the same preset.
"""

from __future__ import annotations

import dataclasses

from edp.agents.registry import AGENTS, agent_class
from edp.config import PRESETS, ConfigError, PretrainConfig, parse_env

# one update per 2 env steps for every agent (URLB's cadence): halves the learning cost; EDP's
# coverage on square_tree was 0.64 vs 0.66 at every step (seed 0, 100k)
FAST_BACKBONE = {"hidden_dim": 128, "batch_size": 256, "update_every": 2, "updates_per_step": 1}
# twice fast's width and an update every env step: EDP on square_tree 0.706 vs 0.579 for 3.2x the
# CPU, the best coverage per CPU-minute measured (benchmarks/ablation/README.md)
CPU_BACKBONE = {**FAST_BACKBONE, "hidden_dim": 256, "update_every": 1}
# the backbone of each preset sized for a CPU (`paper` keeps the reference's)
BACKBONES = {"fast": FAST_BACKBONE, "cpu": CPU_BACKBONE}


def pretrain_defaults(preset: str, env: str, agent: str, frames: int | None = None
                      ) -> PretrainConfig:
    """Preset values for this env/agent; the user's flags override them afterwards. With the
    user's `frames`, the preset's snapshot frames beyond it are left out (the end of a run is
    always a snapshot)."""
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset '{preset}'; valid presets: {', '.join(PRESETS)}")
    base = PretrainConfig(preset=preset, env=env, agent=agent)
    env_id = parse_env(env)
    replace = dataclasses.replace
    groups = {name: cls.paper_group(getattr(base, name), env_id)
              for name, cls in AGENTS.items() if cls.config}
    ddpg = replace(base.ddpg, **agent_class(agent).paper_backbone(env_id))
    snapshots = () if env_id.is_maze else (100_000, 500_000, 1_000_000, 2_000_000)
    if frames is not None:
        snapshots = tuple(f for f in snapshots if f <= frames)
    frames = frames or (100_000 if env_id.is_maze else 2_000_000)
    if preset in BACKBONES:
        ddpg = replace(ddpg, **BACKBONES[preset])
        groups = {name: replace(group, **AGENTS[name].fast) for name, group in groups.items()}
    return replace(base, ddpg=ddpg, frames=frames, snapshots=snapshots, **groups)

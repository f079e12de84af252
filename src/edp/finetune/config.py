"""The `edp finetune` configuration and its presets.

URLB protocol (docs/urlb.md §4.3): a fresh replay, 4,000 seed frames, one DDPG update
every 2 env steps, a deterministic evaluation every 10,000 frames (frame 0 included) and
100,000 frames in all. A fine-tuned Gaussian actor keeps the snapshot's architecture; so does
the diffusion policy of the diffusion methods.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from edp.agents.ddpg import DDPGConfig
from edp.config import PRESETS, ConfigError, RunConfig, check_env, check_episodes, check_run
from edp.finetune.common import DiffusionFinetuneConfig
from edp.finetune.dipo import DIPOConfig
from edp.finetune.dql import DQLConfig
from edp.finetune.edp import EDPFinetuneConfig
from edp.finetune.idql import IDQLConfig
from edp.finetune.methods import DIFFUSION_METHODS, FINETUNE_METHODS
from edp.finetune.qsm import QSMConfig
from edp.presets import BACKBONES

Method = Literal["ddpg", "edp", "idql", "dql", "qsm", "dipo"]


@dataclass(frozen=True)
class FinetuneConfig(RunConfig):
    """Fine-tuning on a downstream task, from a pre-training snapshot or from scratch."""

    env: str = "urlb/walker_run"
    """Downstream task: urlb/<domain>_<task> (e.g. urlb/walker_run) or a maze goal task
    maze/<maze>:<goal> (e.g. maze/square_tree:outer_left_leaf, maze/square_a:goal=4,0)."""
    method: Method = "ddpg"
    """ddpg (the Gaussian actor, URLB) or a diffusion method: edp, idql, dql, qsm, dipo."""
    snapshot: Path | None = None
    """Pre-training run directory (its latest snapshot) or one snapshot directory
    (<run>/snapshots/<frame>); omitted: train from scratch (ddpg only)."""
    eval_every: int = 10_000
    """Frames between deterministic evaluations (frame 0 included; 0: only at the end)."""
    eval_zero_noise: bool = False
    """Diffusion methods: also evaluate the low-noise policy (solver from x_T = 0, one
    deterministic action per state) on the same start states, in eval.csv's zero_noise_*
    columns; the plain columns stay the paper's one-sample evaluation."""
    clip_actions: bool = False
    """Clip every action to [-1, 1], the range the Gaussian actor is built to emit, before the
    env and the replay see it. The reference forwards diffusion samples unclipped, and a maze
    moves as far as the action says, so a broad diffusion policy out-steps DDPG there; clipping
    compares the methods like for like (docs/decisions.md). URLB clamps controls anyway. The
    diffusion methods' critics then score clip(a) too: the action executed and stored."""
    video: bool = False
    """Render the first episode of the final evaluation to <run>/videos/<frame>.mp4 (URLB
    envs; `edp eval --video` renders any run's latest checkpoint)."""
    ddpg: DDPGConfig = field(default_factory=lambda: DDPGConfig(update_every=2))
    """DDPG (method ddpg): taken from the snapshot's backbone, updated every 2 env steps."""
    edp: EDPFinetuneConfig = field(default_factory=EDPFinetuneConfig)
    """EDP fine-tuning: IQL critic, contrastive energy, distillation (method edp)."""
    idql: IDQLConfig = field(default_factory=IDQLConfig)
    """IDQL: behaviour cloning + IQL critic, best of N samples under Q (method idql)."""
    dql: DQLConfig = field(default_factory=DQLConfig)
    """DQL: behaviour cloning + Q through the sampling chain (method dql)."""
    qsm: QSMConfig = field(default_factory=QSMConfig)
    """QSM: score matched to the action-gradient of Q (method qsm)."""
    dipo: DIPOConfig = field(default_factory=DIPOConfig)
    """DIPO: replay actions improved along grad Q, then cloned (method dipo)."""

    def method_config(self) -> DDPGConfig | DiffusionFinetuneConfig:
        """The chosen method's config group."""
        return getattr(self, self.method)


def validate(cfg: FinetuneConfig) -> None:
    """Reject impossible settings before anything is written."""
    check_env(cfg.env, pretraining=False)
    if cfg.method not in FINETUNE_METHODS:
        raise ConfigError(f"unknown method '{cfg.method}'; valid methods: "
                          f"{', '.join(FINETUNE_METHODS)}")
    check_run(cfg)
    check_episodes("eval-episodes", cfg.eval_episodes, 1)
    if cfg.eval_every < 0:
        raise ConfigError(f"eval-every={cfg.eval_every} must be >= 0")
    if cfg.eval_zero_noise and cfg.method not in DIFFUSION_METHODS:
        raise ConfigError("eval-zero-noise is for diffusion methods: ddpg already evaluates "
                          "its actor's mean action")
    if cfg.method != "ddpg" and cfg.snapshot is None:
        raise ConfigError(f"method {cfg.method} fine-tunes a pre-trained diffusion policy: "
                          "give --snapshot <EDP pre-training run>")
    try:
        cfg.method_config().check()
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc


def resolve(cfg: FinetuneConfig) -> FinetuneConfig:
    """Seed-phase fields follow --seed-frames (recorded in config.json as used)."""
    ddpg = dataclasses.replace(cfg.ddpg, num_expl_steps=cfg.seed_frames,
                               learning_starts=cfg.seed_frames)
    methods = {name: dataclasses.replace(getattr(cfg, name), learning_starts=cfg.seed_frames)
               for name in DIFFUSION_METHODS}
    return dataclasses.replace(cfg, ddpg=ddpg, **methods)


def defaults(preset: str, method: str, snapshot_ddpg: DDPGConfig | None) -> FinetuneConfig:
    """Preset values; with a snapshot, the Gaussian actor and critic keep its backbone's
    architecture and batch (URLB: the same agent config as in pre-training)."""
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset '{preset}'; valid presets: {', '.join(PRESETS)}")
    base = FinetuneConfig(preset=preset, method=method)
    backbone = BACKBONES.get(preset, {"update_every": 2})
    ddpg = snapshot_ddpg or dataclasses.replace(base.ddpg, **backbone)
    ddpg = dataclasses.replace(ddpg, update_every=backbone["update_every"], updates_per_step=1)
    if preset == "paper":
        return dataclasses.replace(base, ddpg=ddpg)
    return dataclasses.replace(base, ddpg=ddpg, **_fast_diffusion(base))


def _fast_diffusion(base: FinetuneConfig) -> dict:
    """Diffusion methods sized for a 2-core CPU: sampling chains dominate their cost, so fewer
    solver steps and negatives, smaller batches and critics. They keep the reference's one
    update every env step: at one every 2, EDP gained less on walker from both snapshots
    measured (docs/decisions.md, fine-tuning). EDP's CEP labels use Q standardised per state
    with alpha 10: on walker_stand (3 seeds) that gained 1.8x what the reference's alpha 3 on
    raw Q did; and its teachers' prior follows the fine-tuned policy (anchor_ema 1/5000), ahead
    of the fixed prior on each of 3 seeds."""
    replace = dataclasses.replace
    common = dict(batch_size=128, diffusion_steps=5)
    critic = replace(base.edp.critic, hidden_dim=128)
    return {
        "edp": replace(base.edp, **common, critic=critic, num_negatives=8, energy_hidden_dim=64,
                       energy_layers=2, alpha=10.0, standardise_q=True, anchor_ema=2e-4),
        "idql": replace(base.idql, **common, critic=critic),
        "dql": replace(base.dql, **common, critic=critic),
        "qsm": replace(base.qsm, **common, critic=critic),
        "dipo": replace(base.dipo, **common, critic=critic, action_steps=5),
    }

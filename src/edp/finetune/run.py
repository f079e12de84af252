"""`edp finetune`: a downstream task from a snapshot (or from scratch), URLB protocol.

method ddpg: URLB `init_from` (docs/urlb.md §5.6): the snapshot's Gaussian actor and
critic trunk, fresh heads, target critic and optimisers, extrinsic reward. A skill agent's
snapshot (SMM, DIAYN, APS, CIC) is fine-tuned by its own `finetune_agent`: the same, with the
skill still appended to the inputs and chosen by the agent's fine-tuning schedule. Diffusion methods
start from the snapshot's diffusion policy (an EDP snapshot) with fresh critics/energies.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax

from edp import snapshot as snapshots
from edp.agents import ddpg
from edp.checkpoint import CheckpointError
from edp.config import ConfigError
from edp.finetune.config import FinetuneConfig, resolve, validate
from edp.finetune.methods import NEEDS, make_method
from edp.loop import LoopResult, LoopSettings
from edp.train import make_envs, train, write_result


def run_label(cfg: FinetuneConfig, pretrained_agent: str | None) -> str:
    return f"{cfg.method}_scratch" if pretrained_agent is None else \
        f"{cfg.method}_from_{pretrained_agent}"


def builder(cfg: FinetuneConfig, snap: snapshots.Snapshot | None):
    """(env) -> the method's agent, whose `init` starts from the snapshot; checks first that
    the snapshot's agent hands over what the method needs."""
    if snap is not None and NEEDS[cfg.method] not in snap.agent.handoff:
        agent = snap.meta["agent"]
        raise CheckpointError(
            f"snapshot {snap.path} is of agent {agent}, which has no DDPG actor to fine-tune"
            if cfg.method == "ddpg" else f"method {cfg.method} needs a diffusion policy: "
            f"snapshot {snap.path} is of agent {agent}, not edp")

    def build(env):
        if cfg.method == "ddpg":
            if snap is None:
                return ddpg.DDPGAgent(cfg.ddpg, env.observation_dim, env.action_dim,
                                      intrinsic=False)
            agent = snap.agent.finetune_agent(cfg.ddpg, snap.state)
            try:  # shapes checked now, before a run directory exists
                jax.eval_shape(agent.init, jax.random.PRNGKey(0))
            except ValueError as exc:
                raise CheckpointError(f"snapshot {snap.path}: {exc}") from exc
            return agent
        try:
            return make_method(cfg.method, snap.state.policy, env.observation_dim,
                               env.action_dim, cfg.method_config(), cfg.clip_actions)
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc

    return build


def settings_of(cfg: FinetuneConfig) -> LoopSettings:
    from edp.envs import expert_score

    return LoopSettings(frames=cfg.frames, seed=cfg.seed, log_every=cfg.log_every,
                        checkpoint_every=cfg.checkpoint_every, snapshots=(),
                        eval_episodes=cfg.eval_episodes, quiet=cfg.quiet,
                        eval_every=cfg.eval_every, expert_score=expert_score(cfg.env),
                        video=cfg.video,
                        eval_modes=("zero_noise",) if cfg.eval_zero_noise else (),
                        clip_actions=cfg.clip_actions)


def finetune_run(cfg: FinetuneConfig, resume_dir: Path | None = None) -> LoopResult:
    """Validate, load and check the snapshot, then train (or resume) the fine-tuning run."""
    validate(cfg)
    cfg = resolve(cfg)
    env, eval_env = make_envs(cfg)
    if cfg.video:
        from edp.video import check_renderable

        try:
            check_renderable(eval_env)
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc
    snap = None
    if cfg.snapshot is not None:
        # A resumed run only needs the snapshot's shapes: its checkpoint holds the weights.
        snap = snapshots.load(cfg.snapshot, env, weights=resume_dir is None)
    if snap is not None:  # config.json names the exact snapshot directory used
        cfg = dataclasses.replace(cfg, snapshot=snap.path)
    label = run_label(cfg, None if snap is None else snap.meta["agent"])
    trainer, result = train(cfg, label, env, eval_env, builder(cfg, snap), settings_of(cfg),
                            resume_dir)
    if trainer.coverage is not None:
        from edp.coverage import write_coverage

        write_coverage(trainer.coverage, trainer.run_dir,
                       f"{label} on {cfg.env}, {result.frames:,} frames")
    write_result("finetune", result)
    return result

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
from edp.finetune.methods import make_method
from edp.loop import LoopResult, LoopSettings
from edp.train import make_envs, train, write_result


def run_label(cfg: FinetuneConfig, pretrained_agent: str | None) -> str:
    return f"{cfg.method}_scratch" if pretrained_agent is None else \
        f"{cfg.method}_from_{pretrained_agent}"


def builder(cfg: FinetuneConfig, snap: snapshots.Snapshot | None):
    """(env) -> (agent, init_fn) for the method; checks the snapshot's agent kind."""
    if snap is not None and cfg.method == "ddpg" and not hasattr(snap.agent, "nets"):
        raise CheckpointError(f"snapshot {snap.path} is of agent {snap.meta['agent']}, which "
                              "has no DDPG actor to fine-tune")
    if snap is not None and cfg.method != "ddpg" and not hasattr(snap.agent, "policy_net"):
        raise CheckpointError(f"method {cfg.method} needs a diffusion policy: snapshot "
                              f"{snap.path} is of agent {snap.meta['agent']}, not edp")

    def build(env):
        if cfg.method == "ddpg":
            agent = ddpg.DDPGAgent(cfg.ddpg, env.observation_dim, env.action_dim,
                                   name="ddpg", intrinsic=False)
            if snap is None:
                return agent, None
            backbone = snap.state if isinstance(snap.state, ddpg.DDPGState) else \
                snap.state.backbone
            start = getattr(snap.agent, "finetune_start", ddpg.init_from_snapshot)
            if hasattr(snap.agent, "finetune_agent"):  # skill agents keep the skill as an input
                agent = snap.agent.finetune_agent(cfg.ddpg)
                start, backbone = agent.init_from_snapshot, snap.state

            try:  # shapes checked now, before a run directory exists
                jax.eval_shape(lambda k: start(agent.init(k), backbone), jax.random.PRNGKey(0))
            except ValueError as exc:
                raise CheckpointError(f"snapshot {snap.path}: {exc}") from exc

            def init_fn(key):
                return start(agent.init(key), backbone)

            return agent, init_fn
        try:
            agent = make_method(cfg.method, snap.agent.policy_net, env.observation_dim,
                                env.action_dim, cfg.method_config())
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc
        return agent, lambda key: agent.init(key, snap.state.policy)

    return build


def settings_of(cfg: FinetuneConfig) -> LoopSettings:
    from edp.envs import expert_score

    return LoopSettings(frames=cfg.frames, seed=cfg.seed, log_every=cfg.log_every,
                        checkpoint_every=cfg.checkpoint_every, snapshots=(),
                        eval_episodes=cfg.eval_episodes, quiet=cfg.quiet,
                        eval_every=cfg.eval_every, expert_score=expert_score(cfg.env),
                        video=cfg.video,
                        eval_modes=("zero_noise",) if cfg.eval_zero_noise else ())


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

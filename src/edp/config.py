"""Typed run configurations, named presets, and validation with one-line errors.

A configuration is a frozen dataclass; its field docstrings are the CLI's --help. Presets fill
in defaults that depend on the environment (maze vs URLB domain) and the size budget:
`paper` is the reference's hyper-parameters exactly, `fast` is sized for a 2-core CPU, `cpu`
is `fast` with the wider, busier DDPG backbone that the maze benchmarks use (docs/decisions.md).
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

import tyro

from edp.agents.ddpg import DDPGConfig
from edp.agents.registry import AGENTS
from edp.envs import EnvId
from edp.errors import ConfigError

Preset = Literal["paper", "fast", "cpu"]
PRESETS: tuple[str, ...] = typing.get_args(Preset)
MAX_SEED = 2**31 - 1  # env seeds add offsets to it and must stay below 2**32
MAX_EPISODES = 100_000  # evaluation episodes: beyond this a typo, not a measurement


@dataclass(frozen=True)
class RunConfig:
    """The run fields of pre-training and fine-tuning alike."""

    env: str
    """Environment (each command documents its own)."""
    preset: Preset = "fast"
    """Hyper-parameter preset: `paper` (reference values), `fast` (sized for a 2-core CPU) or
    `cpu` (`fast` with a 256-wide DDPG updated every env step: the maze benchmarks' budget)."""
    frames: int = 100_000
    """Environment frames to collect (env steps x parallel envs)."""
    seed: int = 0
    """Seed of every random number in the run; the same seed reproduces the same metrics."""
    out: Path = Path("runs")
    """Run root; the run directory is <out>/<env>/<agent>/<seed>-<id> (fine-tuning:
    <method>_from_<agent>, or <method>_scratch without a snapshot, in place of <agent>)."""
    seed_frames: int = 4000
    """Frames before learning starts; DDPG actors act uniformly at random during them."""
    num_envs: int = 1
    """Parallel environment copies stepped in lock-step."""
    replay_capacity: int = 1_000_000
    """Replay buffer capacity in transitions (every run starts with an empty buffer)."""
    nstep: int = 3
    """n of the n-step returns sampled from the replay buffer."""
    discount: float = 0.99
    """Discount factor gamma."""
    log_every: int = 5000
    """Frames between metric log lines and progress reports."""
    checkpoint_every: int = 50_000
    """Frames between resumable checkpoints (0: only at the end)."""
    eval_episodes: int = 5
    """Episodes of each deterministic-policy evaluation (pre-training: the final one, 0 skips
    it; fine-tuning: ExDM 5, URLB 10)."""
    maze_strict: bool = False
    """Mazes: forbid the reference's corner leaks through walls (default keeps them)."""
    quiet: bool = False
    """Do not print progress lines."""
    wandb_project: str | None = None
    """Also log metrics.jsonl to this W&B project (needs the `wandb` extra: pip install
    'edp[wandb]'; WANDB_MODE=offline logs under <run>/wandb/)."""


@dataclass(frozen=True)
class PretrainRun(RunConfig):
    """Reward-free pre-training of an exploration agent."""

    env: str = "maze/square_tree"
    """Environment: maze/<name> or urlb/<domain> (e.g. maze/square_a, urlb/walker)."""
    agent: str = "edp"
    """Pre-training agent: edp, random, ddpg (zero reward), icm, rnd, disagreement, apt, proto,
    smm, diayn, aps, cic."""
    seeds: tuple[int, ...] = ()
    """Several seeds in one process (overrides --seed): on mazes they run side by side in the
    compiled loop, each writing its own run directory."""
    loop: Literal["auto", "host", "device"] = "auto"
    """Training loop: `device` compiles acting, maze steps, replay and learning into one
    program (mazes with one env copy); `host` is the Python loop every env has; `auto` picks
    device where it can."""
    snapshots: tuple[int, ...] = ()
    """Frames at which to save a snapshot for fine-tuning (the end of the run always is one)."""
    ddpg: DDPGConfig = field(default_factory=DDPGConfig)
    """DDPG backbone of every learning agent (its seed phase follows --seed-frames)."""

    @property
    def run_name(self) -> str:
        return f"{self.env}/{self.agent}"


# PretrainRun plus one config group `--<name>.*` per registered agent with a config, in
# registry order: an agent is declared once, in its own file.
PretrainConfig = dataclasses.make_dataclass(
    "PretrainConfig",
    [(name, Annotated[cls.config, tyro.conf.arg(help=cls.config_help)],
      field(default_factory=cls.config)) for name, cls in AGENTS.items() if cls.config],
    bases=(PretrainRun,), frozen=True,
    namespace={"__module__": __name__, "__doc__": PretrainRun.__doc__})


def check_positive(**values: float) -> None:
    """One-line error for the first non-positive size or rate."""
    for name, value in values.items():
        if not value > 0:
            raise ConfigError(f"{name.replace('_', '-')}={value} must be > 0")


def check_seed(seed: int) -> None:
    if not 0 <= seed <= MAX_SEED:
        raise ConfigError(f"seed={seed} must be in [0, {MAX_SEED}]")


def check_episodes(name: str, episodes: int, low: int) -> None:
    if not low <= episodes <= MAX_EPISODES:
        raise ConfigError(f"{name}={episodes} must be in [{low}, {MAX_EPISODES:,}]")


def parse_env(env: str) -> EnvId:
    """The parsed env name; an unknown or malformed one is a one-line ConfigError."""
    try:
        return EnvId.parse(env)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc


def check_env(env: str, pretraining: bool) -> None:
    """An unknown env first (it is the likeliest typo); pre-training needs a reward-free env,
    fine-tuning a task."""
    parsed = parse_env(env)
    if pretraining and parsed.goal is not None:
        raise ConfigError(f"pre-training env '{env}' is a goal task: pre-train on "
                          f"{parsed.pretrain_env} and fine-tune on the task")


def check_run(cfg: RunConfig) -> None:
    """The checks of the run fields that pre-training and fine-tuning configs share."""
    if cfg.preset not in PRESETS:
        raise ConfigError(f"unknown preset '{cfg.preset}'; valid presets: {', '.join(PRESETS)}")
    check_seed(cfg.seed)
    check_positive(frames=cfg.frames, num_envs=cfg.num_envs, replay_capacity=cfg.replay_capacity,
                   nstep=cfg.nstep, log_every=cfg.log_every)
    if not 0 < cfg.discount <= 1:
        raise ConfigError(f"discount={cfg.discount} must be in (0, 1]")
    if cfg.seed_frames < 0:
        raise ConfigError(f"seed-frames={cfg.seed_frames} must be >= 0")
    if cfg.frames < cfg.seed_frames:
        raise ConfigError(f"frames={cfg.frames} is less than seed-frames={cfg.seed_frames}")
    if cfg.checkpoint_every < 0:
        raise ConfigError(f"checkpoint-every={cfg.checkpoint_every} must be >= 0")


def validate(cfg: PretrainConfig, env_names: tuple[str, ...] | None = None,
             agent_names: tuple[str, ...] | None = None) -> None:
    """Reject impossible settings before anything is written."""
    check_env(cfg.env, pretraining=True)
    if agent_names is not None and cfg.agent not in agent_names:
        raise ConfigError(f"unknown agent '{cfg.agent}'; valid agents: {', '.join(agent_names)}")
    check_run(cfg)
    check_episodes("eval-episodes", cfg.eval_episodes, 0)
    bad = [f for f in cfg.snapshots if not 0 < f <= cfg.frames]
    if bad:
        raise ConfigError(f"snapshot frame {bad[0]} is outside (0, frames={cfg.frames}]")
    for seed in cfg.seeds:
        check_seed(seed)
    if len(set(cfg.seeds)) != len(cfg.seeds):
        raise ConfigError(f"seeds={list(cfg.seeds)} repeats a seed")
    if cfg.loop == "device" and not _device_env(cfg):
        raise ConfigError("loop=device runs mazes with num-envs=1 only; use --loop host")
    if len(cfg.seeds) > 1 and not uses_device_loop(cfg):
        raise ConfigError("several --seeds in one process need the device loop (mazes, "
                          "num-envs=1); run one process per seed instead")
    if uses_device_loop(cfg):
        from edp.envs.maze import EPISODE_LENGTH

        for name, value in (("frames", cfg.frames), ("log-every", cfg.log_every),
                            *(("snapshot frame", f) for f in cfg.snapshots)):
            if value % EPISODE_LENGTH:
                raise ConfigError(f"{name}={value} must be a multiple of the episode length "
                                  f"{EPISODE_LENGTH} in the device loop (or use --loop host)")


def uses_device_loop(cfg: PretrainConfig) -> bool:
    """Whether the run trains in the compiled maze loop (`edp.device_loop`)."""
    return cfg.loop == "device" or (cfg.loop == "auto" and _device_env(cfg))


def _device_env(cfg: PretrainConfig) -> bool:
    """A reward-free maze with one env copy per seed: what the device loop runs."""
    env = EnvId.parse(cfg.env)
    return env.is_maze and env.goal is None and cfg.num_envs == 1


def from_json(cls: type, data: dict):
    """Rebuild a (nested) config dataclass from its config.json form; unknown keys are errors."""
    hints = typing.get_type_hints(cls, include_extras=False)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ConfigError(f"unknown {cls.__name__} field '{sorted(unknown)[0]}' in config.json")
    values = {}
    for name, value in data.items():
        kind = hints[name]
        if dataclasses.is_dataclass(kind):
            value = from_json(kind, value)
        elif Path in (kind, *typing.get_args(kind)) and value is not None:
            value = Path(value)
        elif typing.get_origin(kind) is tuple:
            value = tuple(value)
        values[name] = value
    return cls(**values)


def resolve(cfg: PretrainConfig) -> PretrainConfig:
    """Derived fields made consistent, so config.json records what the run really used."""
    ddpg = dataclasses.replace(cfg.ddpg, num_expl_steps=cfg.seed_frames,
                               learning_starts=cfg.seed_frames)
    return dataclasses.replace(cfg, ddpg=ddpg)

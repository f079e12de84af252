"""Pre-training snapshots as fine-tuning reads them: find, check, rebuild the agent, load.

A snapshot directory (<run>/snapshots/<frame>/) holds the agent state and a state.json with the
agent's name, the env, the dimensions and the full pre-training config, so the pre-training
agent can be rebuilt exactly and every mismatch named before any training starts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax

from edp import checkpoint
from edp.config import PretrainConfig, from_json, resolve
from edp.envs import EnvId


@dataclass(frozen=True)
class Snapshot:
    path: Path
    meta: dict  # state.json: frame, agent, env, observation_dim, action_dim, config, versions
    agent: Any  # the pre-training agent rebuilt from the snapshot's config
    state: Any  # its state as saved (or, with weights=False, a freshly initialised one)


def find(path: Path) -> Path:
    """A snapshot directory from itself or from a run directory (its latest snapshot)."""
    path = Path(path)
    files = ("state.json", "agent.msgpack")
    if not any((path / name).is_file() for name in files):
        snapshots = path / "snapshots"
        frames = [p for p in snapshots.iterdir() if p.name.isdigit()] if snapshots.is_dir() \
            else []
        if not frames:
            what = "run directory without snapshots" if (path / "config.json").is_file() else \
                "snapshot or run directory"
            raise checkpoint.CheckpointError(f"{path} is not a {what}")
        path = max(frames, key=lambda p: int(p.name))
    missing = [name for name in files if not (path / name).is_file()]
    if missing:
        raise checkpoint.CheckpointError(f"corrupt checkpoint {path}: {missing[0]} is missing")
    return path


def read_meta(path: Path) -> tuple[Path, dict, PretrainConfig]:
    """(snapshot directory, its state.json, the resolved pre-training config); a missing or
    corrupt one is a one-line CheckpointError."""
    directory = find(path)
    try:
        meta = json.loads((directory / "state.json").read_text())
        cfg = resolve(from_json(PretrainConfig, meta["config"]))
        missing = [k for k in ("env", "agent", "observation_dim", "action_dim") if k not in meta]
        if missing:
            raise KeyError(missing[0])
    except (ValueError, KeyError, TypeError) as exc:
        raise checkpoint.CheckpointError(f"corrupt snapshot {directory}: {exc}") from exc
    return directory, meta, cfg


def load(path: Path, env, weights: bool = True) -> Snapshot:
    """Read and check a snapshot against the fine-tuning env; one-line CheckpointError on a
    missing, corrupt or mismatched one. weights=False skips the arrays (a template)."""
    from edp.agents.registry import make_agent

    directory, meta, cfg = read_meta(path)
    snap_env, dims = meta["env"], (meta["observation_dim"], meta["action_dim"])
    domain = EnvId.parse(env.name).pretrain_env
    try:
        same = EnvId.parse(snap_env).pretrain_env == domain
    except ValueError:  # an env this version does not know: not the task's domain either
        same = False
    if not same:
        raise checkpoint.CheckpointError(
            f"snapshot {directory} was pre-trained on {snap_env}, not on the domain of "
            f"{env.name} ({domain})")
    if dims != (env.observation_dim, env.action_dim):
        raise checkpoint.CheckpointError(
            f"snapshot {directory} has observation/action dims {dims}, {env.name} has "
            f"{(env.observation_dim, env.action_dim)}")
    agent = make_agent(cfg, *dims)
    template = agent.init(jax.random.PRNGKey(0))
    state = checkpoint.load(directory, template)[0] if weights else template
    return Snapshot(directory, meta, agent, state)

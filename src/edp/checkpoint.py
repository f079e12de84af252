"""Atomic checkpoints: a directory is written under a temporary name and renamed into place.

A checkpoint directory holds agent.msgpack (flax serialisation of the agent state), optional
NumPy archives (replay buffer, coverage) and state.json (counters and host RNG states). A reader
only ever sees complete directories; a crash mid-write leaves a `.tmp-*` directory that is ignored
and cleaned up by the next write.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
from flax import serialization

from edp import rundir


class CheckpointError(ValueError):
    """A checkpoint is missing, corrupt or does not fit the run loading it."""


def save(directory: Path, agent_state: Any, state: dict, arrays: dict[str, dict] | None = None
         ) -> Path:
    """Write `directory` atomically; `arrays` maps archive name -> dict of arrays."""
    directory = Path(directory)
    tmp = directory.with_name(f".tmp-{directory.name}")
    try:
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        (tmp / "agent.msgpack").write_bytes(serialization.to_bytes(agent_state))
        for name, data in (arrays or {}).items():
            with open(tmp / f"{name}.npz", "wb") as f:
                np.savez(f, **data)
        (tmp / "state.json").write_text(json.dumps(state))
    except OSError as exc:  # disk full, read-only, ...: earlier checkpoints stay untouched
        shutil.rmtree(tmp, ignore_errors=True)
        raise OSError(f"cannot write checkpoint {directory}: {exc.strerror or exc}; earlier "
                      "checkpoints are intact") from exc
    _fsync_dir(tmp)
    # re-saving the same frame swaps; `latest` finishes a swap a crash interrupted
    rundir.swap_in(tmp, directory, directory.with_name(f".old-{directory.name}"))
    return directory


def load(directory: Path, agent_template: Any) -> tuple[Any, dict, dict[str, dict]]:
    """Agent state (shaped like the template), state.json, and every .npz archive."""
    directory = Path(directory)
    if not directory.is_dir():
        raise CheckpointError(f"{directory} is not a checkpoint directory")
    missing = [n for n in ("agent.msgpack", "state.json") if not (directory / n).is_file()]
    if missing:
        raise CheckpointError(f"corrupt checkpoint {directory}: {missing[0]} is missing")
    try:
        raw = serialization.msgpack_restore((directory / "agent.msgpack").read_bytes())
        state = json.loads((directory / "state.json").read_text())
        arrays = {}
        for path in sorted(directory.glob("*.npz")):
            with np.load(path) as data:
                arrays[path.stem] = {k: data[k] for k in data.files}
    except Exception as exc:  # any decoding failure means a corrupt checkpoint
        raise CheckpointError(f"corrupt checkpoint {directory}: {exc}") from exc
    return restore_into(agent_template, raw, directory), state, arrays


def restore_into(template: Any, raw: dict, where: Path | str) -> Any:
    """Fill the template's structure from a raw msgpack dict, checking every leaf's shape."""
    expected = serialization.to_state_dict(template)
    raw = _upgrade_networks(expected, raw)
    mismatch = _first_mismatch(expected, raw, "")
    if mismatch:
        raise CheckpointError(f"checkpoint {where} does not fit this agent: {mismatch}")
    return serialization.from_state_dict(template, raw)


TRAIN_STATE_FIELDS = {"params", "constants", "opt_state"}


def _upgrade_networks(expected: Any, raw: Any) -> Any:
    """Checkpoints written before every network was an `edp.train_state.TrainState` stored
    DDPG's actor and critic and IQL's q and value as bare params under `x` with the optimiser
    state under `x_opt`; rebuild the TrainState form wherever the template has one."""
    if not isinstance(expected, dict) or not isinstance(raw, dict):
        return raw
    raw = dict(raw)
    for key, sub in expected.items():
        if key not in raw:
            continue
        if (isinstance(sub, dict) and set(sub) == TRAIN_STATE_FIELDS and f"{key}_opt" in raw
                and not (isinstance(raw[key], dict) and "opt_state" in raw[key])):
            raw[key] = {"params": raw[key], "constants": {}, "opt_state": raw.pop(f"{key}_opt")}
        else:
            raw[key] = _upgrade_networks(sub, raw[key])
    return raw


def _first_mismatch(expected: Any, got: Any, path: str) -> str | None:
    if isinstance(expected, dict):
        if not isinstance(got, dict):
            return f"{path or '/'} is not a mapping"
        for key in expected:
            if key not in got:
                return f"missing {path}/{key}"
            found = _first_mismatch(expected[key], got[key], f"{path}/{key}")
            if found:
                return found
        extra = set(got) - set(expected)
        return f"unexpected {path}/{sorted(extra)[0]}" if extra else None
    exp_shape, got_shape = np.shape(expected), np.shape(got)
    if exp_shape != got_shape:
        return f"{path} has shape {got_shape}, expected {exp_shape}"
    return None


def latest(checkpoints_dir: Path) -> Path | None:
    """The newest complete checkpoint (directories named by frame), or None. A swap of a
    re-saved frame interrupted between its two renames is finished first."""
    if not checkpoints_dir.is_dir():
        return None
    for old in checkpoints_dir.glob(".old-*"):
        target = old.with_name(old.name.removeprefix(".old-"))
        if target.exists():
            shutil.rmtree(old)
        else:
            os.replace(old, target)
    frames = [p for p in checkpoints_dir.iterdir() if p.is_dir() and p.name.isdigit()]
    return max(frames, key=lambda p: int(p.name), default=None)


def _fsync_dir(directory: Path) -> None:
    for path in directory.iterdir():
        with open(path, "rb") as f:
            os.fsync(f.fileno())

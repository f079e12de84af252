"""Run directories: <out>/<env>/<agent>/<seed>-<id>/ with the resolved config.json, and the
atomic writes their files and folders are replaced with (a crash leaves the old or the new)."""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import shutil
import subprocess
from pathlib import Path

import edp


def create(out: Path, env: str, agent: str, seed: int, config: object) -> Path:
    """A fresh directory that no other run uses, with config.json written in it."""
    parent = Path(out) / env / agent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OSError(f"cannot create run root {parent}: {exc.strerror}") from exc
    while True:
        run_dir = parent / f"{seed}-{secrets.token_hex(3)}"
        try:
            run_dir.mkdir()
            break
        except FileExistsError:
            continue
    write_config(run_dir, config)
    return run_dir


def write_config(run_dir: Path, config: object) -> None:
    data = {"config": to_json(config), "edp_version": edp.__version__, "git_commit": git_commit()}
    (run_dir / "config.json").write_text(json.dumps(data, indent=2))


def to_json(config: object) -> dict:
    def convert(value):
        if isinstance(value, Path):
            return str(value)
        if isinstance(value, tuple):
            return [convert(v) for v in value]
        if isinstance(value, dict):
            return {k: convert(v) for k, v in value.items()}
        return value

    return convert(dataclasses.asdict(config))


def read_config(run_dir: Path) -> dict:
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir} is not a run directory (no config.json)")
    return json.loads(path.read_text())["config"]


def git_commit() -> str | None:
    """The commit of the edp checkout in use, if it is one."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent,
                             capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def write_atomic(path: Path, text: str) -> None:
    """Replace a file's content atomically: a crash leaves the old file or the new one."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def swap_in(new: Path, final: Path, aside: Path) -> None:
    """Make the finished directory `new` the directory `final`: the old `final` is renamed to
    `aside`, `new` takes its name, and `aside` is deleted. A crash between the two renames
    leaves `aside` complete, for a reader to restore (`checkpoint.latest`)."""
    if final.exists():
        os.replace(final, aside)
        os.replace(new, final)
        shutil.rmtree(aside)
    else:
        os.replace(new, final)

"""Where metrics go: metrics.jsonl, eval.csv, TensorBoard, optionally W&B, and a progress line
on stderr.

Only this module and the loop touch files; agents return plain dicts of scalars.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import sys
import time
from pathlib import Path

import numpy as np


def to_scalars(metrics: dict) -> dict[str, float]:
    """Device arrays -> Python floats (one host transfer, done only when logging)."""
    return {k: float(np.asarray(v)) for k, v in metrics.items()}


class Sinks:
    """Appends to the run directory's logs; safe to reopen on resume."""

    def __init__(self, run_dir: Path, eval_fields: list[str], resume_frame: int | None = None):
        """With resume_frame, records logged after that frame (by the run that was stopped
        after its last checkpoint) are dropped first, so a resumed run's logs equal an
        uninterrupted run's."""
        from tensorboardX import SummaryWriter

        self.run_dir = run_dir
        if resume_frame is not None:
            _truncate_jsonl(run_dir / "metrics.jsonl", resume_frame)
            _truncate_csv(run_dir / "eval.csv", resume_frame)
        self._jsonl = open(run_dir / "metrics.jsonl", "a", buffering=1)
        eval_path = run_dir / "eval.csv"
        new_csv = not eval_path.exists()
        self._csv_file = open(eval_path, "a", newline="", buffering=1)
        self._csv = csv.DictWriter(self._csv_file, fieldnames=["frame", *eval_fields])
        if new_csv:
            self._csv.writeheader()
        purge = None if resume_frame is None else resume_frame + 1
        self._tb = SummaryWriter(str(run_dir), flush_secs=30, purge_step=purge)
        config_path = run_dir / "config.json"
        config = json.loads(config_path.read_text())["config"] if config_path.is_file() else {}
        project = config.get("wandb_project")
        self._wandb = WandbMirror(run_dir, project, config) if project else None

    def log(self, frame: int, phase: str, scalars: dict[str, float]) -> None:
        record = {"frame": frame, "phase": phase, **scalars}
        self._jsonl.write(json.dumps(record, allow_nan=True) + "\n")
        for key, value in scalars.items():
            if math.isfinite(value):
                self._tb.add_scalar(f"{phase}/{key}", value, frame)
        if self._wandb is not None:
            self._wandb.log(frame, phase, scalars)

    def log_eval(self, frame: int, row: dict[str, float]) -> None:
        self._csv.writerow({"frame": frame, **row})
        self.log(frame, "eval", row)

    def close(self) -> None:
        self._jsonl.close()
        self._csv_file.close()
        self._tb.close()
        if self._wandb is not None:
            self._wandb.close()


class WandbMirror:
    """Every metrics.jsonl record, also sent to a W&B run of `project` (the run's
    `--wandb-project`; the optional `wandb` extra). Keys are <phase>/<metric>, plotted against
    `frame`. The W&B run's id is derived from the run directory, so a resumed run continues it;
    W&B keeps what the stopped run logged after its last checkpoint, which metrics.jsonl drops.
    WANDB_MODE=offline writes it under <run>/wandb/ for a later `wandb sync`."""

    def __init__(self, run_dir: Path, project: str, config: dict):
        import wandb

        run_id = re.sub(r"[^A-Za-z0-9_.-]+", "_", "-".join(run_dir.parts[-4:]))
        self._run = wandb.init(project=project, id=run_id, name=run_id, resume="allow",
                               dir=str(run_dir), config=config)
        self._run.define_metric("frame")
        self._run.define_metric("*", step_metric="frame")

    def log(self, frame: int, phase: str, scalars: dict[str, float]) -> None:
        self._run.log({"frame": frame, **{f"{phase}/{k}": v for k, v in scalars.items()}})

    def close(self) -> None:
        self._run.finish()


def _complete_lines(path: Path) -> list[str]:
    """Lines that were fully written (a kill can leave a torn last line without newline)."""
    return [line for line in path.read_text().splitlines(keepends=True) if line.endswith("\n")]


def _truncate_jsonl(path: Path, frame: int) -> None:
    """Train records up to the checkpoint's frame stay; an evaluation at that frame runs after
    the checkpoint, so it is dropped and redone."""
    if path.exists():
        def kept(record: dict) -> bool:
            return record["frame"] < frame or (record["frame"] == frame
                                                and record["phase"] != "eval")

        keep = [line for line in _complete_lines(path) if kept(json.loads(line))]
        _rewrite(path, "".join(keep))


def _truncate_csv(path: Path, frame: int) -> None:
    """eval.csv rows before the checkpoint's frame (see _truncate_jsonl)."""
    if path.exists():
        lines = _complete_lines(path)
        keep = lines[:1] + [line for line in lines[1:] if int(line.split(",", 1)[0]) < frame]
        _rewrite(path, "".join(keep))


def _rewrite(path: Path, text: str) -> None:
    """Replace a file's content atomically (a crash leaves the old or the new file)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


class Progress:
    """A one-line progress report: frames, frames/s, ETA and a few key metrics."""

    def __init__(self, total_frames: int, start_frame: int = 0, stream=sys.stderr):
        self.total = total_frames
        self.stream = stream
        self._t0 = time.perf_counter()
        self._f0 = start_frame

    def fps(self, frame: int) -> float:
        elapsed = time.perf_counter() - self._t0
        return (frame - self._f0) / elapsed if elapsed > 0 else 0.0

    def report(self, frame: int, scalars: dict[str, float]) -> None:
        fps = self.fps(frame)
        eta = (self.total - frame) / fps if fps > 0 else float("inf")
        shown = "  ".join(f"{k} {v:.4g}" for k, v in scalars.items())
        print(f"[{frame:>9,}/{self.total:,} frames] {fps:7.1f} fps  ETA {_duration(eta)}  {shown}",
              file=self.stream, flush=True)


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "--:--"
    minutes, sec = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{sec:02d}" if hours else f"{minutes:02d}:{sec:02d}"

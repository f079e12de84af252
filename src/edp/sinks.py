"""Where metrics go: metrics.jsonl, eval.csv, TensorBoard, and a progress line on stderr.

Only this module and the loop touch files; agents return plain dicts of scalars.
"""

from __future__ import annotations

import csv
import json
import math
import sys
import time
from pathlib import Path

import numpy as np


def to_scalars(metrics: dict) -> dict[str, float]:
    """Device arrays -> Python floats (one host transfer, done only when logging)."""
    return {k: float(np.asarray(v)) for k, v in metrics.items()}


class Sinks:
    """Appends to the run directory's logs; safe to reopen on resume."""

    def __init__(self, run_dir: Path, eval_fields: list[str], quiet: bool = False):
        from tensorboardX import SummaryWriter

        self.run_dir = run_dir
        self.quiet = quiet
        self._jsonl = open(run_dir / "metrics.jsonl", "a", buffering=1)
        eval_path = run_dir / "eval.csv"
        new_csv = not eval_path.exists()
        self._csv_file = open(eval_path, "a", newline="", buffering=1)
        self._csv = csv.DictWriter(self._csv_file, fieldnames=["frame", *eval_fields])
        if new_csv:
            self._csv.writeheader()
        self._tb = SummaryWriter(str(run_dir), flush_secs=30)

    def log(self, frame: int, phase: str, scalars: dict[str, float]) -> None:
        record = {"frame": frame, "phase": phase, **scalars}
        self._jsonl.write(json.dumps(record, allow_nan=True) + "\n")
        for key, value in scalars.items():
            if math.isfinite(value):
                self._tb.add_scalar(f"{phase}/{key}", value, frame)

    def log_eval(self, frame: int, row: dict[str, float]) -> None:
        self._csv.writerow({"frame": frame, **row})
        self.log(frame, "eval", row)

    def close(self) -> None:
        self._jsonl.close()
        self._csv_file.close()
        self._tb.close()


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

"""Where metrics go: metrics.jsonl, eval.csv, TensorBoard, optionally W&B, and a progress line
on stderr.

Only this module and the loop touch files; agents return plain dicts of scalars.
"""

from __future__ import annotations

import csv
import json
import math
import re
import sys
import time
from pathlib import Path

import numpy as np

from edp import rundir


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
        rundir.write_atomic(path, "".join(keep))


def _truncate_csv(path: Path, frame: int) -> None:
    """eval.csv rows before the checkpoint's frame (see _truncate_jsonl)."""
    if path.exists():
        lines = _complete_lines(path)
        keep = lines[:1] + [line for line in lines[1:] if int(line.split(",", 1)[0]) < frame]
        rundir.write_atomic(path, "".join(keep))


def logged_frames(every: int, num_envs: int, below: int, start: bool = False) -> set[int]:
    """Frames (< below) at which a record is due every `every` frames when frames advance by
    num_envs (the loop's `_due`); `start` adds frame 0 (evaluations)."""
    if every <= 0:
        return set()
    frames = {-(-m // num_envs) * num_envs for m in range(every, below, every)}
    return {f for f in frames if f < below} | ({0} if start else set())


class LogError(ValueError):
    """A run's log does not hold what its checkpoint says was written."""


def check_logs(run_dir: Path, frame: int, log_every: int, num_envs: int, eval_every: int,
               repair: bool = False) -> list[str]:
    """Before resuming from the checkpoint at `frame`: metrics.jsonl and eval.csv must parse
    and hold every record due before it. A LogError names the file and what is wrong, unless
    `repair`: then the lines that do not parse are dropped, the rest is kept, and the problems
    are returned for the caller to record. A torn last line (a kill mid-write) is normal."""
    metrics_path, eval_path = run_dir / "metrics.jsonl", run_dir / "eval.csv"
    metrics, records, bad = _read_log(metrics_path, _jsonl_record)
    problems = [f"metrics.jsonl line {n} does not parse" for n in bad[:1]]
    train = {r["frame"] for r in records if r["phase"] == "train"}
    missing = sorted(logged_frames(log_every, num_envs, frame) - train)
    if missing:
        problems.append(f"metrics.jsonl lacks the train records of {_frames(missing)}")
    rows, frames, bad = _read_log(eval_path, _csv_frame, header="frame,")
    problems += [f"eval.csv line {n} does not parse" for n in bad[:1]]
    missing = sorted(logged_frames(eval_every, num_envs, frame, start=True) - set(frames))
    if missing:
        problems.append(f"eval.csv lacks the evaluations of {_frames(missing)}")
    if problems and not repair:
        raise LogError(f"{problems[0]} before the checkpoint at frame {frame:,}"
                       + (f" (and {len(problems) - 1} more problems)" if len(problems) > 1
                          else ""))
    if problems:
        if metrics_path.exists():
            rundir.write_atomic(metrics_path, "".join(metrics))
        if rows:
            rundir.write_atomic(eval_path, "".join(rows))
        elif eval_path.exists():  # no trustworthy header: the run writes a new file
            eval_path.unlink()
    return problems


def _frames(frames: list[int]) -> str:
    shown = ", ".join(f"{f:,}" for f in frames[:3])
    return f"frame {shown}" if len(frames) == 1 else \
        f"{len(frames)} frames ({shown}{', ...' if len(frames) > 3 else ''})"


def _jsonl_record(line: str) -> dict:
    record = json.loads(line)
    if not isinstance(record, dict) or not isinstance(record.get("frame"), int) \
            or not isinstance(record.get("phase"), str):
        raise ValueError("not a metrics record")
    return record


def _csv_frame(line: str) -> int:
    return int(line.split(",", 1)[0])


def _read_log(path: Path, parse, header: str | None = None
              ) -> tuple[list[str], list, list[int]]:
    """(the complete lines worth keeping, the values parsed from the records among them, the
    numbers of the lines that do not parse); rows without their header cannot be trusted."""
    if not path.exists():
        return [], [], []
    lines = _complete_lines(path)
    keep: list[str] = []
    if header is not None:
        if not lines or not lines[0].startswith(header):
            return [], [], [1]
        keep, lines = lines[:1], lines[1:]
    values, bad = [], []
    for number, line in enumerate(lines, len(keep) + 1):
        try:
            values.append(parse(line))
            keep.append(line)
        except (ValueError, TypeError):
            bad.append(number)
    return keep, values, bad


class Progress:
    """A one-line progress report: count, the recent rate, an ETA from it, and a few metrics.

    The rate is measured since the previous report (the last log interval), not since the
    start: a seed phase of random actions runs several times faster than learning, and an
    average over it would promise an early end."""

    def __init__(self, total: int, start: int = 0, stream=sys.stderr, unit: str = "frames",
                 rate_unit: str = "fps", clock=time.perf_counter):
        self.total, self.stream, self.unit, self.rate_unit = total, stream, unit, rate_unit
        self._clock = clock
        self._mark = (clock(), start)  # (time, count) of the previous report
        self._last: tuple[int, float] | None = None  # (count, rate) measured at it

    def fps(self, count: int) -> float:
        """The rate since the previous call (the same value again for the same count)."""
        if self._last is not None and self._last[0] == count:
            return self._last[1]
        now = self._clock()
        then, before = self._mark
        rate = (count - before) / (now - then) if now > then else 0.0
        self._mark, self._last = (now, count), (count, rate)
        return rate

    def report(self, count: int, scalars: dict[str, float] | None = None) -> None:
        rate = self.fps(count)
        eta = (self.total - count) / rate if rate > 0 else float("inf")
        shown = "  ".join(f"{k} {v:.4g}" for k, v in (scalars or {}).items())
        print(f"[{count:>9,}/{self.total:,} {self.unit}] {rate:7.1f} {self.rate_unit}  "
              f"ETA {_duration(eta)}  {shown}".rstrip(), file=self.stream, flush=True)


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "--:--"
    minutes, sec = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{sec:02d}" if hours else f"{minutes:02d}:{sec:02d}"

"""`edp report`: collect run directories into results.csv, report.md and figures.

Maze pre-training runs are summarised by their final state coverage (mean, population std as
the reference script, and a bootstrap 95% confidence interval of the mean) and by coverage
curves per episode. Fine-tuning runs (URLB protocol) are scored by the expert-normalised return
of their last evaluation and aggregated over tasks as rliable does (IQM, mean, median,
optimality gap, probability of improvement, with rliable's stratified bootstrap confidence
intervals); curves show the evaluation return against frames.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import sys
import tempfile
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from tyro.conf import Positional

from edp import rundir
from edp.envs import EnvId
from edp.figures import pyplot, save_figure


@dataclass(frozen=True)
class ReportConfig:
    """Aggregate finished runs into tables and figures."""

    runs: Positional[tuple[Path, ...]]
    """Run directories or roots to search (recursively) for run directories."""
    out: Path = Path("report")
    """Directory for results.csv, report.md and the figures."""
    bootstrap: int = 2000
    """Bootstrap resamples for confidence intervals."""
    reference: str = "edp_from_edp"
    """Fine-tuning method (its directory name, <method>_from_<agent> or <method>_scratch) whose
    probability of improvement over each other method is reported."""
    eval_mode: Literal["sample", "zero_noise"] = "sample"
    """Evaluation that scores fine-tuning runs: `sample` (eval.csv's plain columns: the paper's
    one-sample evaluation of diffusion policies, DDPG's mean action) or `zero_noise` (the
    zero_noise_* columns of diffusion runs made with --eval-zero-noise; runs without them, e.g.
    ddpg, keep their plain columns)."""


MAX_BOOTSTRAP = 100_000
# What a report writes into --out: replaced as a whole by the next report, other files kept.
OUTPUT_PATTERNS = ("results.csv", "report.md", "coverage_curves.png", "visits_*.png",
                   "finetune_*.png")


def check(cfg: ReportConfig) -> None:
    """One-line ConfigError for settings no report can use."""
    from edp.config import ConfigError

    if not 1 <= cfg.bootstrap <= MAX_BOOTSTRAP:
        raise ConfigError(f"bootstrap={cfg.bootstrap} must be in [1, {MAX_BOOTSTRAP:,}]")
    out = Path(cfg.out).absolute()
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {cfg.out} is a file, not a directory")
    if out == Path.cwd() or out in Path.cwd().parents:
        raise ConfigError(f"--out {cfg.out} is the current directory or above it: give a "
                          "directory for the report")


@dataclass(frozen=True)
class Run:
    path: Path
    env: str  # the pre-training env, or the fine-tuning task
    agent: str  # the pre-training agent, or the fine-tuning label: the directory (ddpg_from_edp)
    seed: int
    frames: int
    coverage: list[float] | None
    kind: str  # "pretrain" or "finetune"
    finished: bool  # result.json written


def find_runs(roots: tuple[Path, ...], stream=sys.stderr) -> list[Run]:
    """Every directory under the roots that holds a config.json (a run), sorted; a run whose
    files cannot be read is left out with one warning line on `stream`."""
    found = []
    for root in roots:
        root = Path(root)
        if not root.exists():
            raise FileNotFoundError(f"no such run directory or root: {root}")
        candidates = [root] if (root / "config.json").is_file() else []
        candidates += [p.parent for p in root.rglob("config.json") if p.parent != root]
        for path in candidates:
            try:
                found.append(_load_run(path))
            except UnreadableRun as exc:
                print(f"edp: warning: skipped run {path}: {exc}", file=stream)
    unique = {run.path.resolve(): run for run in found}
    return sorted(unique.values(), key=lambda r: (r.env, r.agent, r.seed, str(r.path)))


class UnreadableRun(ValueError):
    """A run directory whose files do not parse; the message names the file."""


def _read(path: Path, parse):
    try:
        return parse(path)
    except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
        raise UnreadableRun(f"{path.name}: {type(exc).__name__}: {exc}") from exc


def _load_run(path: Path) -> Run:
    def config(file: Path) -> dict:
        cfg = json.loads(file.read_text())["config"]
        kind, name = ("finetune", path.parent.name) if "method" in cfg else \
            ("pretrain", str(cfg["agent"]))
        return {"env": str(cfg["env"]), "seed": int(cfg["seed"]),
                "frames": int(cfg["frames"]), "kind": kind, "name": name}

    cfg = _read(path / "config.json", config)
    coverage = None
    if (path / "coverage.json").is_file():
        coverage = _read(path / "coverage.json", lambda f: [
            float(v) for v in json.loads(f.read_text())["curve"]])
    kind, name = cfg["kind"], cfg["name"]
    if kind == "pretrain" and _read(path / "config.json", lambda _: EnvId.parse(cfg["env"])).goal:
        raise UnreadableRun(f"config.json: pre-trained on the goal task {cfg['env']}, which "
                            "no report compares")
    if kind == "finetune":
        _read(path / "eval.csv", lambda _: read_evals(path))
    return Run(path, cfg["env"], name, cfg["seed"], cfg["frames"], coverage, kind,
               (path / "result.json").is_file())


def bootstrap_ci(values: np.ndarray, resamples: int, seed: int = 0) -> tuple[float, float]:
    """95% percentile-bootstrap interval of the mean."""
    values = np.asarray(values, float)
    if len(values) < 2:
        return float(values.mean()), float(values.mean())
    rng = np.random.default_rng(seed)
    means = rng.choice(values, (resamples, len(values))).mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def coverage_rows(runs: list[Run], resamples: int) -> list[dict]:
    groups: dict[tuple[str, str], list[Run]] = defaultdict(list)
    for run in runs:
        if run.coverage and run.kind == "pretrain":
            groups[(run.env, run.agent)].append(run)
    rows = []
    for (env, agent), members in sorted(groups.items()):
        finals = np.array([r.coverage[-1] for r in members])
        lo, hi = bootstrap_ci(finals, resamples)
        rows.append({"env": env, "agent": agent, "runs": len(members),
                     "frames": min(r.frames for r in members), "mean": finals.mean(),
                     "std": finals.std(), "ci_low": lo, "ci_high": hi,
                     "seeds": " ".join(str(r.seed) for r in members),
                     "finals": " ".join(f"{v:.4f}" for v in finals)})
    return rows


LINESTYLES = ("-", "--", ":", "-.")


def label_styles(labels) -> dict[str, dict]:
    """One line style per agent or method for every panel and figure of a report, so that a
    label keeps its look where another label is missing. Ten clearly different hues (tab10);
    past ten, the hues repeat with another dash pattern (tab20's light/dark pairs look alike)."""
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    return {name: {"color": cmap(i % 10), "linestyle": LINESTYLES[i // 10 % len(LINESTYLES)]}
            for i, name in enumerate(sorted(set(labels)))}


def plot_coverage_curves(runs: list[Run], path: Path) -> None:
    """One panel per maze: mean coverage per episode with a +-1 std band, one line per agent;
    one legend for all panels, in a panel of its own so that it covers no curve."""
    plt = pyplot()

    by_env: dict[str, dict[str, list[list[float]]]] = defaultdict(lambda: defaultdict(list))
    for run in runs:
        if run.coverage and run.kind == "pretrain":
            by_env[run.env][run.agent].append(run.coverage)
    envs = sorted(by_env)
    styles = label_styles(agent for agents in by_env.values() for agent in agents)
    cols = min(4, len(envs) + 1)
    rows = -(-(len(envs) + 1) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3.2 * rows), squeeze=False)
    counts: dict[str, set[int]] = defaultdict(set)
    for ax, env in zip(axes.flat, envs, strict=False):
        for agent, curves in sorted(by_env[env].items()):
            n = min(len(c) for c in curves)
            stack = np.array([c[:n] for c in curves])
            mean, std = stack.mean(0), stack.std(0)
            x = np.arange(1, n + 1)
            ax.plot(x, mean, label=agent, **styles[agent])
            ax.fill_between(x, mean - std, mean + std, alpha=0.15, color=styles[agent]["color"])
            counts[agent].add(len(curves))
        ax.set_title(env)
        ax.set_xlabel("episode")
        ax.set_ylabel("state coverage")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(envs):]:
        ax.axis("off")
    runs_of = lambda n: f"{min(n)}-{max(n)}" if len(n) > 1 else f"{min(n)}"
    handles = [plt.Line2D([], [], **styles[agent]) for agent in sorted(counts)]
    labels = [f"{agent} ({runs_of(counts[agent])})" for agent in sorted(counts)]
    axes.flat[len(envs)].legend(handles, labels, loc="center", fontsize=9,
                                ncol=1 if len(labels) <= 14 else 2, title="agent (runs per maze)")
    save_figure(plt, fig, path)


def final_tracker(run: Run):
    """The run's visit counts from its latest checkpoint (None if it has none)."""
    from edp import checkpoint
    from edp.coverage import CoverageTracker

    latest = checkpoint.latest(run.path / "checkpoints")
    if latest is None or not (latest / "coverage.npz").is_file():
        return None
    tracker = CoverageTracker(EnvId.parse(run.env).maze)
    with np.load(latest / "coverage.npz") as data:
        tracker.load_state_dict({k: data[k] for k in data.files})
    return tracker


def plot_maze_visits(runs: list[Run], out: Path) -> list[str]:
    """visits_<maze>.png: each agent's visited states side by side (its lowest-seed run)."""
    from edp.coverage import plot_densities

    first: dict[str, dict[str, Run]] = defaultdict(dict)
    for run in sorted(runs, key=lambda r: r.seed):
        if run.kind == "pretrain" and run.coverage and run.agent not in first[run.env]:
            first[run.env][run.agent] = run
    names = []
    for env, by_agent in sorted(first.items()):
        panels = [(f"{agent} (seed {run.seed}): {run.coverage[-1]:.3f}", tracker)
                  for agent, run in sorted(by_agent.items())
                  if (tracker := final_tracker(run)) is not None]
        if panels:
            names.append(f"visits_{_slug(env)}.png")
            plot_densities(panels, out / names[-1], f"visited states on {env}")
    return names


def ranks(rows: list[dict]) -> dict[tuple[str, str], int]:
    """Rank (1 = highest mean coverage) of each agent on each maze."""
    by_env: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        by_env[row["env"]].append(row)
    return {(env, r["agent"]): i + 1 for env, members in by_env.items()
            for i, r in enumerate(sorted(members, key=lambda r: -r["mean"]))}


# Aggregates over tasks as rliable (Agarwal et al. 2021) defines them, with rliable's stratified
# bootstrap for their confidence intervals. A score set is one array per task with the runs on
# the last axis, so tasks may have different numbers of runs (rliable's metrics take a runs x
# tasks matrix); leading axes (evaluation frames) broadcast, giving curves. The statistics are
# vectorised NumPy because rliable's (scipy's Mann-Whitney U and trim_mean, called once per
# resample and frame) made a report 28x slower; tests check them against rliable.metrics.

def iqm(per_task: list[np.ndarray]) -> np.ndarray:
    """Interquartile mean of the pooled run-task scores: drop int(n / 4) from each end of the
    sorted n scores (scipy.stats.trim_mean(scores, 0.25), as rliable) and average the rest."""
    pooled = np.sort(np.concatenate(per_task, axis=-1), axis=-1)
    n = pooled.shape[-1]
    cut = int(0.25 * n)
    return pooled[..., cut:n - cut].mean(-1)


def mean_of_means(per_task: list[np.ndarray]) -> np.ndarray:
    return np.mean([x.mean(-1) for x in per_task], axis=0)


def median_of_means(per_task: list[np.ndarray]) -> np.ndarray:
    return np.median([x.mean(-1) for x in per_task], axis=0)


def optimality_gap(per_task: list[np.ndarray]) -> np.ndarray:
    """How far the pooled scores fall short of 1 (the expert), on average; above 1 counts 0."""
    return np.maximum(0.0, 1.0 - np.concatenate(per_task, axis=-1)).mean(-1)


def probability_of_improvement(xs: list[np.ndarray], ys: list[np.ndarray]) -> np.ndarray:
    """P(X > Y) averaged over tasks; per task the Mann-Whitney U of X over Y / (n m): the share
    of run pairs where X scores higher, ties counting 1/2."""
    per_task = []
    for x, y in zip(xs, ys, strict=True):
        x, y = x[..., :, None], y[..., None, :]
        per_task.append((x > y).mean((-2, -1)) + 0.5 * (x == y).mean((-2, -1)))
    return np.mean(per_task, axis=0)


AGGREGATES = {"IQM": iqm, "mean": mean_of_means, "median": median_of_means,
              "optimality gap": optimality_gap}


def stratified_interval(statistic, groups: tuple[list[np.ndarray], ...], resamples: int,
                        seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The statistic and its 95% percentile interval under rliable's stratified bootstrap: the
    runs of each task (of each group) are resampled with replacement, independently (and at
    each evaluation frame independently, as rliable does for curves)."""
    from rliable import library

    sizes = np.cumsum([0, *(len(group) for group in groups)])
    point = np.asarray(statistic(*groups))

    def on_resample(*runs_first):  # rliable resamples axis 0: move the runs there and back
        tasks = [np.moveaxis(x, 0, -1) for x in runs_first]
        groups = (tasks[a:b] for a, b in zip(sizes[:-1], sizes[1:], strict=True))
        return np.ravel(statistic(*groups))

    arrays = [np.moveaxis(np.asarray(x, float), -1, 0) for group in groups for x in group]
    state = np.random.get_state()  # rliable draws from NumPy's global generator
    np.random.seed(seed)
    try:
        _, interval = library.get_interval_estimates({"": arrays}, on_resample, reps=resamples)
    finally:
        np.random.set_state(state)
    low, high = (bound.reshape(point.shape)[()] for bound in interval[""])
    return point[()], low, high


@dataclass(frozen=True)
class Evals:
    """A fine-tuning run's eval.csv: frames, raw returns and scores (normalised if possible)."""

    frames: np.ndarray
    returns: np.ndarray
    scores: np.ndarray
    normalised: bool


def read_evals(run_dir: Path, mode: str = "sample") -> Evals | None:
    """Columns <mode>_* where mode is not `sample` and the run has them, else the plain ones."""
    path = run_dir / "eval.csv"
    if not path.is_file():
        return None
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return None
    prefix = f"{mode}_" if f"{mode}_episode_return" in rows[0] else ""
    column = lambda name: np.array([float(r[prefix + name]) for r in rows])
    normalised = f"{prefix}normalized_return" in rows[0]
    returns = column("episode_return")
    return Evals(np.array([int(r["frame"]) for r in rows]), returns,
                 column("normalized_return") if normalised else returns, normalised)


def finetune_groups(runs: list[Run], mode: str = "sample") -> dict[tuple[str, str], list[Evals]]:
    """(task, method label) -> the evaluations (`read_evals` mode) of its finished runs."""
    groups: dict[tuple[str, str], list[Evals]] = defaultdict(list)
    for run in runs:
        if run.kind == "finetune" and run.finished:
            evals = read_evals(run.path, mode)
            if evals is not None:
                groups[(run.env, run.agent)].append(evals)
    return dict(sorted(groups.items()))


def final_scores(groups: dict[tuple[str, str], list[Evals]], label: str,
                 normalised_only: bool = False) -> dict[str, np.ndarray]:
    """task -> final scores of the label's runs (only expert-normalised tasks if asked)."""
    return {task: np.array([e.scores[-1] for e in evals])
            for (task, name), evals in groups.items()
            if name == label and (all(e.normalised for e in evals) or not normalised_only)}


def _common_frames(evals: list[Evals]) -> np.ndarray:
    return np.array(sorted(set.intersection(*(set(e.frames.tolist()) for e in evals))), int)


def _at(evals: list[Evals], frames: np.ndarray, field: str) -> np.ndarray:
    """The runs' values at these frames (all of which every run evaluated): (frames, runs)."""
    return np.stack([getattr(e, field)[np.isin(e.frames, frames)] for e in evals], axis=-1)


def _cell(point: float, low: float, high: float) -> str:
    return f"{point:.3f} [{low:.3f}, {high:.3f}]"


def finetune_lines(groups: dict[tuple[str, str], list[Evals]], cfg: ReportConfig) -> list[str]:
    """The fine-tuning sections of report.md: per task, aggregates, probability of improvement."""
    labels = sorted({label for _, label in groups})
    raw = sorted({task for (task, _), evals in groups.items()
                  if not all(e.normalised for e in evals)})
    return (_task_table(groups, cfg, raw) + _aggregate_table(groups, labels, cfg, raw)
            + _improvement_table(groups, labels, cfg) + _efficiency_table(groups))


def frames_to_reach(evals: list[Evals], target: float) -> float:
    """First evaluation frame at which the mean score over runs reaches `target` (inf if
    never): the runs' common evaluation frames, mean across runs."""
    frames = _common_frames(evals)
    reached = np.flatnonzero(_at(evals, frames, "scores").mean(axis=-1) >= target)
    return float(frames[reached[0]]) if reached.size else float("inf")


def _efficiency_table(groups) -> list[str]:
    """Sample efficiency against training from scratch (`<method>_scratch`): frames each method
    needs to reach 80% of the from-scratch final mean score, and their ratio."""
    lines = []
    for task in sorted({task for task, _ in groups}):
        scratch = [label for (t, label) in groups if t == task and label.endswith("_scratch")]
        if not scratch:
            continue
        base = groups[(task, scratch[0])]
        target = 0.8 * float(np.mean([e.scores[-1] for e in base]))
        base_frames = frames_to_reach(base, target)
        if not lines:
            lines = ["", "## Fine-tuning: sample efficiency against training from scratch", "",
                     "Frames to reach 80% of the from-scratch final mean score (mean curve over "
                     "runs); ratio = scratch frames / method frames (> 1: fewer frames needed). "
                     "A target at or below the first evaluation is reached at frame 0.", "",
                     "| task | method | target | frames | ratio |",
                     "| --- | --- | --- | --- | --- |"]
        for (t, label), evals in groups.items():
            if t != task:
                continue
            frames = frames_to_reach(evals, target)
            ratio = 1.0 if frames == base_frames else \
                base_frames / frames if frames > 0 else float("inf")
            shown = "never" if np.isinf(frames) else f"{frames:,.0f}"
            lines.append(f"| {task} | {label} | {target:.3f} | {shown} | {ratio:.2f} |")
    return lines


def _task_table(groups, cfg: ReportConfig, raw: list[str]) -> list[str]:
    lines = ["## Fine-tuning: score at the last evaluation", "",
             "Score: return / expert return of the task"
             + (f" (raw return on {', '.join(raw)}: no expert score)" if raw else "") + ".", "",
             "| task | method | runs | frames | mean | 95% CI of mean | per run | frame 0 | gain |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for (task, label), evals in groups.items():
        finals = np.array([e.scores[-1] for e in evals])
        mean, low, high = stratified_interval(mean_of_means, ([finals],), cfg.bootstrap)
        # What fine-tuning added to the policy it started from (runs evaluated at frame 0).
        starts = [e.scores[0] for e in evals if e.frames[0] == 0]
        start, gain = ((f"{np.mean(starts):.3f}", f"{mean - np.mean(starts):+.3f}")
                       if len(starts) == len(evals) else ("-", "-"))
        lines.append(f"| {task} | {label} | {len(evals)} | {min(e.frames[-1] for e in evals):,} "
                     f"| {mean:.3f} | [{low:.3f}, {high:.3f}] | "
                     f"{' '.join(f'{v:.3f}' for v in finals)} | {start} | {gain} |")
    return lines


def _aggregate_table(groups, labels: list[str], cfg: ReportConfig, raw: list[str]) -> list[str]:
    lines = ["", "## Fine-tuning: aggregates over tasks", ""]
    rows = {label: list(final_scores(groups, label, normalised_only=True).values())
            for label in labels}
    rows = {label: finals for label, finals in rows.items() if finals}
    if not rows:
        return lines + ["No task has an expert score: aggregates over tasks need normalised "
                        "scores."]
    lines += [f"Expert-normalised scores{' (without ' + ', '.join(raw) + ')' if raw else ''}. "
              f"Point estimate [95% stratified bootstrap CI, {cfg.bootstrap} resamples]; IQM "
              "and optimality gap over all run-task scores, mean and median of the per-task "
              "means.", "",
              "| method | tasks | runs | " + " | ".join(AGGREGATES) + " |",
              "| --- | --- | --- |" + " --- |" * len(AGGREGATES)]
    for label, finals in rows.items():
        cells = [_cell(*stratified_interval(fn, (finals,), cfg.bootstrap))
                 for fn in AGGREGATES.values()]
        lines.append(f"| {label} | {len(finals)} | {sum(len(f) for f in finals)} | "
                     + " | ".join(cells) + " |")
    return lines


def _improvement_table(groups, labels: list[str], cfg: ReportConfig) -> list[str]:
    """Rank-based, so every task counts, normalised or not."""
    ref = cfg.reference
    lines = ["", f"## Probability of improvement of {ref}", ""]
    mine = final_scores(groups, ref)
    others = {label: final_scores(groups, label) for label in labels if label != ref}
    shared = {label: sorted(set(mine) & set(theirs)) for label, theirs in others.items()}
    if not any(shared.values()):
        return lines + [f"Needs runs of {ref} (`--reference`) and of another method on the "
                        "same tasks."]
    lines += [f"P({ref} > method) averaged over the tasks both ran [95% stratified bootstrap "
              "CI].", "", f"| method | tasks | P({ref} > method) |", "| --- | --- | --- |"]
    for label, tasks in shared.items():
        if tasks:
            xs, ys = [mine[t] for t in tasks], [others[label][t] for t in tasks]
            cell = _cell(*stratified_interval(probability_of_improvement, (xs, ys),
                                              cfg.bootstrap))
            lines.append(f"| {label} | {len(tasks)} | {cell} |")
    return lines


def _slug(task: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in task)


def plot_finetune_curves(groups: dict[tuple[str, str], list[Evals]], out: Path,
                         resamples: int) -> list[str]:
    """finetune_<task>.png: mean return (95% CI band) per method; finetune_iqm.png: IQM of the
    normalised scores over tasks per method (stratified bootstrap band). Returns file names."""
    plt = pyplot()
    styles = label_styles(label for _, label in groups)
    names = []
    for task in sorted({task for task, _ in groups}):
        fig, ax = plt.subplots(figsize=(5, 3.4))
        for (other, label), evals in groups.items():
            if other == task:
                frames = _common_frames(evals)
                mean, low, high = stratified_interval(
                    mean_of_means, ([_at(evals, frames, "returns")],), resamples)
                ax.plot(frames, mean, label=f"{label} ({len(evals)})", **styles[label])
                ax.fill_between(frames, low, high, alpha=0.2, color=styles[label]["color"])
        _finish(ax, task, "episode return")
        names.append(f"finetune_{_slug(task)}.png")
        save_figure(plt, fig, out / names[-1])
    normalised = {key: evals for key, evals in groups.items()
                  if all(e.normalised for e in evals)}
    if not normalised:
        return names
    fig, ax = plt.subplots(figsize=(5, 3.4))
    for label in sorted({label for _, label in normalised}):
        tasks = [evals for (_, name), evals in normalised.items() if name == label]
        frames = _common_frames([e for evals in tasks for e in evals])
        if len(frames):
            per_task = [_at(evals, frames, "scores") for evals in tasks]
            point, low, high = stratified_interval(iqm, (per_task,), resamples)
            count = f"{len(tasks)} task" + ("" if len(tasks) == 1 else "s")
            ax.plot(frames, point, label=f"{label} ({count})", **styles[label])
            ax.fill_between(frames, low, high, alpha=0.2, color=styles[label]["color"])
    _finish(ax, "IQM over tasks with an expert score", "score (return / expert)")
    names.append("finetune_iqm.png")
    save_figure(plt, fig, out / names[-1])
    return names


def _finish(ax, title: str, ylabel: str) -> None:
    from matplotlib.ticker import EngFormatter

    ax.set_title(title)
    ax.set_xlabel("frames")
    ax.xaxis.set_major_formatter(EngFormatter())  # 20 k, 1 M
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)


def write_report(cfg: ReportConfig, stream=sys.stderr) -> Path:
    """Every output is written into a temporary directory beside --out and moved into place
    at the end: results.csv, report.md and the figures always come from one invocation, and
    a failure leaves the previous report as it was."""
    check(cfg)
    runs = find_runs(cfg.runs, stream)
    if not runs:
        raise FileNotFoundError(f"no run directories under {', '.join(map(str, cfg.runs))}")
    final = Path(cfg.out).absolute()
    inside = [run.path for run in runs if final in run.path.absolute().parents]
    if inside:
        from edp.config import ConfigError

        raise ConfigError(f"--out {cfg.out} holds run directories ({inside[0]}): give a "
                          "directory for the report")
    final.parent.mkdir(parents=True, exist_ok=True)
    out = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    try:
        _write_outputs(cfg, runs, out)
        _move_into_place(out, final)
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)
        raise
    return final / "report.md"


def _move_into_place(new: Path, final: Path) -> None:
    """Swap the finished directory in; files of the old one that no report writes are kept."""
    if final.is_dir():
        ours = {p for pattern in OUTPUT_PATTERNS for p in final.glob(pattern)}
        for path in final.iterdir():
            if path not in ours and not (new / path.name).exists():
                os.replace(path, new / path.name)
    aside = final.with_name(f".{final.name}.old-{new.name.rsplit('-', 1)[-1]}")
    rundir.swap_in(new, final, aside)
    final.chmod(0o777 & ~_umask())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _shown(path: Path) -> str:
    """A path for the report's files: relative to the working directory when it lies under it
    (a report made at a repository's root names its runs portably), else absolute."""
    path, here = path.absolute(), Path.cwd()
    return str(path.relative_to(here)) if here in path.parents else str(path)


SOURCES_LISTED = 4  # more paths than this are named by their shared folder (results.csv lists all)


def _sources(paths: tuple[Path, ...]) -> str:
    """The report's sources: each path, or for many the folder they share, so the header stays
    one readable line when a benchmark passes its run directories one by one."""
    if len(paths) <= SOURCES_LISTED:
        return ", ".join(map(_shown, paths))
    shared = Path(os.path.commonpath([path.absolute() for path in paths]))
    return f"{len(paths)} paths under {_shown(shared)} (listed in results.csv)"


def _write_outputs(cfg: ReportConfig, runs: list[Run], out: Path) -> None:
    rows = coverage_rows(runs, cfg.bootstrap)
    with open(out / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["kind", "env", "agent", "seed", "frames",
                                               "finished", "coverage", "score", "path"])
        writer.writeheader()
        for run in runs:
            evals = read_evals(run.path, cfg.eval_mode) if run.kind == "finetune" else None
            writer.writerow({"kind": run.kind, "env": run.env, "agent": run.agent,
                             "seed": run.seed, "frames": run.frames, "finished": run.finished,
                             "coverage": run.coverage[-1] if run.coverage else "",
                             "score": evals.scores[-1] if evals else "",
                             "path": _shown(run.path)})
    lines = ["# Report", "", f"{len(runs)} runs from {_sources(cfg.runs)}.", ""]
    if rows:
        plot_coverage_curves(runs, out / "coverage_curves.png")
        rank = ranks(rows)
        lines += ["## Maze state coverage (final, after the run's last episode)", "",
                  "| env | agent | rank | runs | frames | mean | std | 95% CI of mean | per run |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        lines += [f"| {r['env']} | {r['agent']} | {rank[(r['env'], r['agent'])]} | {r['runs']} "
                  f"| {r['frames']:,} | {r['mean']:.3f} | {r['std']:.3f} | "
                  f"[{r['ci_low']:.3f}, {r['ci_high']:.3f}] | {r['finals']} |" for r in rows]
        lines += ["", "![coverage curves](coverage_curves.png)", ""]
        lines += [f"![{name}]({name})" for name in plot_maze_visits(runs, out)] + [""]
    groups = finetune_groups(runs, cfg.eval_mode)
    if groups:
        if cfg.eval_mode != "sample":
            lines += [f"Fine-tuning scores: eval.csv's {cfg.eval_mode}_* columns where a run "
                      "has them, else its plain columns.", ""]
        lines += finetune_lines(groups, cfg)
        unfinished = sum(r.kind == "finetune" and not r.finished for r in runs)
        if unfinished:
            lines += ["", f"{unfinished} unfinished fine-tuning runs (no result.json) are left "
                      "out."]
        lines += [""] + [f"![{name}]({name})" for name in
                         plot_finetune_curves(groups, out, cfg.bootstrap)] + [""]
    (out / "report.md").write_text("\n".join(lines))

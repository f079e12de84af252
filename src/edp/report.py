"""`edp report`: collect run directories into results.csv, report.md and figures.

Maze runs are summarised by their final state coverage (mean, population std as the reference
script, and a bootstrap 95% confidence interval of the mean) and by coverage curves per episode.
"""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tyro.conf import Positional


@dataclass(frozen=True)
class ReportConfig:
    """Aggregate finished runs into tables and figures."""

    runs: Positional[tuple[Path, ...]]
    """Run directories or roots to search (recursively) for run directories."""
    out: Path = Path("report")
    """Directory for results.csv, report.md and the figures."""
    bootstrap: int = 2000
    """Bootstrap resamples for confidence intervals."""


@dataclass(frozen=True)
class Run:
    path: Path
    env: str
    agent: str
    seed: int
    frames: int
    coverage: list[float] | None


def find_runs(roots: tuple[Path, ...]) -> list[Run]:
    """Every directory under the roots that holds a config.json (a run), sorted."""
    found = []
    for root in roots:
        root = Path(root)
        if not root.exists():
            raise FileNotFoundError(f"no such run directory or root: {root}")
        candidates = [root] if (root / "config.json").is_file() else []
        candidates += [p.parent for p in root.rglob("config.json") if p.parent != root]
        for path in candidates:
            found.append(_load_run(path))
    unique = {run.path.resolve(): run for run in found}
    return sorted(unique.values(), key=lambda r: (r.env, r.agent, r.seed, str(r.path)))


def _load_run(path: Path) -> Run:
    cfg = json.loads((path / "config.json").read_text())["config"]
    coverage = None
    if (path / "coverage.json").is_file():
        coverage = json.loads((path / "coverage.json").read_text())["curve"]
    return Run(path, cfg["env"], cfg["agent"], cfg["seed"], cfg["frames"], coverage)


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
        if run.coverage:
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


def plot_coverage_curves(runs: list[Run], path: Path) -> None:
    """One panel per maze: mean coverage per episode with a +-1 std band, one line per agent."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_env: dict[str, dict[str, list[list[float]]]] = defaultdict(lambda: defaultdict(list))
    for run in runs:
        if run.coverage:
            by_env[run.env][run.agent].append(run.coverage)
    envs = sorted(by_env)
    cols = min(4, len(envs))
    rows = -(-len(envs) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3.2 * rows), squeeze=False)
    for ax, env in zip(axes.flat, envs, strict=False):
        for agent, curves in sorted(by_env[env].items()):
            n = min(len(c) for c in curves)
            stack = np.array([c[:n] for c in curves])
            mean, std = stack.mean(0), stack.std(0)
            x = np.arange(1, n + 1)
            ax.plot(x, mean, label=f"{agent} ({len(curves)})")
            ax.fill_between(x, mean - std, mean + std, alpha=0.2)
        ax.set_title(env)
        ax.set_xlabel("episode")
        ax.set_ylabel("state coverage")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(envs):]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(cfg: ReportConfig) -> Path:
    runs = find_runs(cfg.runs)
    if not runs:
        raise FileNotFoundError(f"no run directories under {', '.join(map(str, cfg.runs))}")
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = coverage_rows(runs, cfg.bootstrap)
    with open(out / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["env", "agent", "seed", "frames", "coverage",
                                               "path"])
        writer.writeheader()
        for run in runs:
            writer.writerow({"env": run.env, "agent": run.agent, "seed": run.seed,
                             "frames": run.frames,
                             "coverage": run.coverage[-1] if run.coverage else "",
                             "path": str(run.path)})
    lines = ["# Report", "", f"{len(runs)} runs from {', '.join(map(str, cfg.runs))}.", ""]
    if rows:
        plot_coverage_curves(runs, out / "coverage_curves.png")
        lines += ["## Maze state coverage (final, after the run's last episode)", "",
                  "| env | agent | runs | frames | mean | std | 95% CI of mean | per run |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        lines += [f"| {r['env']} | {r['agent']} | {r['runs']} | {r['frames']:,} | "
                  f"{r['mean']:.3f} | {r['std']:.3f} | [{r['ci_low']:.3f}, {r['ci_high']:.3f}] "
                  f"| {r['finals']} |" for r in rows]
        lines += ["", "![coverage curves](coverage_curves.png)", ""]
    (out / "report.md").write_text("\n".join(lines))
    return out / "report.md"

"""The README's coverage table from a report's results.csv: one row per maze, one column per
agent (final coverage, mean +- population std over seeds, n), EDP's rank by mean, and the
per-seed values. Several CSVs merge (the first holding a run wins), so the recorded runs'
results.csv and lost_runs.csv (runs made before records were kept) make one table.
`--paper` puts the paper's Table 1 value after ours for every agent it lists, and asks of the
ranked agent whether it reaches the paper's mean - 1 std and whether it is first or inside the
95% bootstrap interval of the first's mean (the interval `edp report` gives). `--figure` draws
our mean against the paper's value for every (agent, maze) the paper lists: a faithful baseline
sits on the diagonal. `--by-agent` turns the table round for the README's summary: one row
per agent, one column per maze (our mean, the paper's value after it, the maze's best in bold),
and a last row with the ranked agent's rank.

    python benchmarks/coverage/table.py benchmarks/coverage/results/results.csv \
        benchmarks/coverage/lost_runs.csv --agents edp random ddpg
    python benchmarks/coverage/table.py benchmarks/coverage/cpu/results/results.csv \
        benchmarks/coverage/cpu/lost_runs.csv --paper --figure benchmarks/coverage/cpu/paper.png
    python benchmarks/coverage/table.py benchmarks/coverage/cpu/results/results.csv \
        benchmarks/coverage/cpu/lost_runs.csv --paper --by-agent
"""

from __future__ import annotations

import argparse
import csv
from collections import defaultdict
from pathlib import Path

import numpy as np

from edp.envs import EnvId
from edp.envs.maze import MAZE_NAMES
from edp.figures import pyplot, save_figure
from edp.report import bootstrap_ci, label_styles

# the paper's Table 1: coverage after 100k frames, 10 seeds, mean (and std where it gives one)
PAPER_MAZES = ("square_a", "square_b", "square_c", "square_d", "square_tree",
               "square_bottleneck", "square_large")
PAPER = {
    "edp": (0.99, 0.99, 0.98, 0.78, 0.91, 0.75, 0.71),
    "cic": (0.94, 0.98, 0.86, 0.74, 0.89, 0.58, 0.47),
    "icm": (0.58, 0.53, 0.47, 0.49, 0.49, 0.32, 0.25),
    "rnd": (0.50, 0.39, 0.52, 0.32, 0.28, 0.33, 0.33),
    "disagreement": (0.38, 0.30, 0.41, 0.29, 0.32, 0.28, 0.21),
    "diayn": (0.41, 0.44, 0.42, 0.37, 0.38, 0.29, 0.30),
    "smm": (0.47, 0.45, 0.36, 0.28, 0.25, 0.41, 0.34),
}
PAPER_STD = {"edp": (0.02, 0.01, 0.02, 0.01, 0.01, 0.15, 0.07),
             "cic": (0.02, 0.01, 0.03, 0.01, 0.01, 0.05, 0.01)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, nargs="+",
                        help="results.csv files written by `edp report`; the first wins")
    parser.add_argument("--agents", nargs="+", help="columns, in order (default: all, sorted)")
    parser.add_argument("--rank-of", default="edp", help="agent whose rank is a column")
    parser.add_argument("--paper", action="store_true",
                        help="the paper's values beside ours, and the issue-20 target columns")
    parser.add_argument("--by-agent", action="store_true",
                        help="one row per agent and one column per maze (the README's summary)")
    parser.add_argument("--figure", type=Path,
                        help="PNG of our coverage against the paper's, per agent and maze")
    args = parser.parse_args()
    values = load(args.results)
    agents = args.agents or sorted({agent for _, agent in values})
    mazes = [m for m in MAZE_NAMES if any((m, a) in values for a in agents)]
    me = args.rank_of
    if args.by_agent:
        print("\n".join(by_agent(values, agents, mazes, me, args.paper)))
    else:
        print("\n".join(by_maze(values, agents, mazes, me, args.paper)))
    if args.figure:
        plot_against_paper(paper_pairs(values, agents), agents, args.figure)
        print(f"figure: {args.figure}")


def load(paths: list[Path]) -> dict[tuple[str, str], dict[int, float]]:
    """{(maze, agent): {seed: final coverage}} from the pre-training rows; the first file
    holding a run wins."""
    values: dict[tuple[str, str], dict[int, float]] = defaultdict(dict)
    for path in paths:
        if not path.is_file():
            raise SystemExit(f"{path}: no such file (a report's results.csv)")
        with path.open() as f:
            for row in csv.DictReader(f):
                if row["kind"] == "pretrain" and row["coverage"]:
                    seeds = values[EnvId.parse(row["env"]).maze, row["agent"]]
                    seeds.setdefault(int(row["seed"]), float(row["coverage"]))
    if not values:
        raise SystemExit(f"{', '.join(map(str, paths))}: no pre-training coverage rows")
    return values


def by_maze(values: dict[tuple[str, str], dict[int, float]], agents: list[str],
            mazes: list[str], me: str, with_paper: bool) -> list[str]:
    """The study's full table: a row per maze, mean +- std per agent, `me`'s rank and targets,
    and every seed's value."""
    extra = [f"{me} >= paper - std", f"{me} first or in the first's CI"] if with_paper else []
    lines = [f"| maze | {' | '.join(agents)} | {me} rank | {' | '.join(extra + [''])}per seed "
             f"({' / '.join(agents)}) |",
             "| --- " * (len(agents) + 3 + len(extra)) + "|"]
    for maze in mazes:
        runs = seed_values(values, maze, agents)
        cells = [cell(a, maze, r, with_paper) for a, r in runs.items()]
        order = ranking(runs)
        rank = order.index(me) + 1 if me in order else "-"
        answers = targets(me, maze, runs, order) if with_paper else []
        seeds = " / ".join(" ".join(f"{v:.3f}" for v in r) for r in runs.values())
        lines.append(f"| {maze} | {' | '.join(cells)} | {rank} | "
                     f"{' | '.join(answers + [''])}{seeds} |")
    return lines


def by_agent(values: dict[tuple[str, str], dict[int, float]], agents: list[str],
             mazes: list[str], me: str, with_paper: bool) -> list[str]:
    """The summary: a row per agent with its mean on every maze (the paper's value after it),
    the maze's best in bold, and a last row with `me`'s rank among the agents measured there."""
    runs = {maze: seed_values(values, maze, agents) for maze in mazes}
    orders = {maze: ranking(r) for maze, r in runs.items()}
    lines = [f"| agent | {' | '.join(mazes)} |", "| --- " * (len(mazes) + 1) + "|"]
    for agent in agents:
        cells = []
        for maze in mazes:
            seeds = runs[maze][agent]
            ours = f"{np.mean(seeds):.3f}" if seeds else "-"
            if seeds and orders[maze][0] == agent:
                ours = f"**{ours}**"
            theirs = paper(agent, maze) if with_paper else None
            cells.append(ours if theirs is None else f"{ours} ({theirs:.2f})")
        lines.append(f"| {agent} | {' | '.join(cells)} |")
    ranks = [f"{orders[m].index(me) + 1} of {len(orders[m])}" if me in orders[m] else "-"
             for m in mazes]
    lines.append(f"| {me} rank | {' | '.join(ranks)} |")
    return lines


def seed_values(values: dict[tuple[str, str], dict[int, float]], maze: str,
                agents: list[str]) -> dict[str, list[float]]:
    """Each agent's final coverage on `maze`, in seed order (empty where it has no run)."""
    return {a: [v for _, v in sorted(values.get((maze, a), {}).items())] for a in agents}


def ranking(runs: dict[str, list[float]]) -> list[str]:
    """The agents with runs, best mean first."""
    means = {a: np.mean(r) for a, r in runs.items() if r}
    return sorted(means, key=lambda a: -means[a])


def paper(agent: str, maze: str) -> float | None:
    return PAPER[agent][PAPER_MAZES.index(maze)] if agent in PAPER and maze in PAPER_MAZES else None


def paper_pairs(values: dict[tuple[str, str], dict[int, float]],
                agents: list[str]) -> list[tuple[str, str, float, float, float]]:
    """(agent, maze, paper's mean, our mean, our std over seeds) for every measured pair of
    `agents` that the paper's Table 1 has."""
    pairs = []
    for (maze, agent), seeds in sorted(values.items()):
        theirs = paper(agent, maze)
        if agent in agents and seeds and theirs is not None:
            runs = list(seeds.values())
            pairs.append((agent, maze, theirs, float(np.mean(runs)), float(np.std(runs))))
    return pairs


def plot_against_paper(pairs: list[tuple[str, str, float, float, float]], agents: list[str],
                       path: Path) -> None:
    """One point per (agent, maze) with its std over seeds: colour the agent (given all the
    study's `agents`, the colours of `edp report`'s figures), marker the maze, and the diagonal
    where ours equals the paper's."""
    if not pairs:
        raise SystemExit("--figure: no measured (agent, maze) that the paper's Table 1 lists")
    plt = pyplot()
    styles = label_styles(agents)
    markers = dict(zip(PAPER_MAZES, "osD^vPX", strict=True))
    fig, ax = plt.subplots(figsize=(6.4, 5.2))
    ax.plot([0, 1], [0, 1], color="0.6", linestyle="--", linewidth=1)
    for agent, maze, theirs, mean, std in pairs:
        ax.errorbar(theirs, mean, yerr=std, marker=markers[maze], color=styles[agent]["color"],
                    markersize=6, capsize=2, linestyle="none")
    shown = sorted({agent for agent, *_ in pairs})
    mazes = [m for m in PAPER_MAZES if any(m == maze for _, maze, *_ in pairs)]
    handles = ([plt.Line2D([], [], color=styles[a]["color"], marker="o", linestyle="none")
                for a in shown]
               + [plt.Line2D([], [], color="0.3", marker=markers[m], linestyle="none")
                  for m in mazes])
    ax.legend(handles, shown + mazes, fontsize=8, loc="upper left", ncol=2)
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.02)
    ax.set_aspect("equal")
    ax.set_xlabel("paper's Table 1 (100k frames, mean of 10 seeds)")
    ax.set_ylabel("ours (mean and std over seeds)")
    ax.set_title("final state coverage: ours against the paper's")
    ax.grid(alpha=0.3)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_figure(plt, fig, path)


def cell(agent: str, maze: str, runs: list[float], with_paper: bool) -> str:
    if not runs:
        return "-"
    ours = f"{np.mean(runs):.3f} +- {np.std(runs):.3f} (n={len(runs)})"
    theirs = paper(agent, maze) if with_paper else None
    return ours if theirs is None else f"{ours} / {theirs:.2f}"


def targets(me: str, maze: str, runs: dict[str, list[float]], order: list[str]) -> list[str]:
    """Does `me` reach the paper's mean - 1 std, and is it first or inside the first's 95%
    bootstrap interval?"""
    if not runs.get(me):
        return ["-", "-"]
    mean = float(np.mean(runs[me]))
    bar = (paper(me, maze) - PAPER_STD[me][PAPER_MAZES.index(maze)]
           if me in PAPER_STD and maze in PAPER_MAZES else None)
    reached = "-" if bar is None else f"{'yes' if mean >= bar else 'no'} ({bar:.2f})"
    first = order[0]
    low, _ = bootstrap_ci(np.array(runs[first]), 2000)
    if first == me:
        lead = "first"
    else:
        lead = f"{'yes' if mean >= low else 'no'} ({first} CI low {low:.3f})"
    return [reached, lead]


if __name__ == "__main__":
    main()

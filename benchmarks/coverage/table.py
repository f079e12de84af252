"""The README's coverage table from a report's results.csv: one row per maze, one column per
agent (final coverage, mean +- population std over seeds, n), EDP's rank by mean, and the
per-seed values. Several CSVs merge (the first holding a run wins), so the recorded runs'
results.csv and lost_runs.csv (runs made before records were kept) make one table.

    python benchmarks/coverage/table.py benchmarks/coverage/results/results.csv \
        benchmarks/coverage/lost_runs.csv --agents edp random ddpg
"""

from __future__ import annotations

import argparse
import csv
from collections import defaultdict
from pathlib import Path

import numpy as np

from edp.envs import EnvId
from edp.envs.maze import MAZE_NAMES


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, nargs="+",
                        help="results.csv files written by `edp report`; the first wins")
    parser.add_argument("--agents", nargs="+", help="columns, in order (default: all, sorted)")
    parser.add_argument("--rank-of", default="edp", help="agent whose rank is a column")
    args = parser.parse_args()
    values: dict[tuple[str, str], dict[int, float]] = defaultdict(dict)
    for path in args.results:
        with path.open() as f:
            for row in csv.DictReader(f):
                if row["kind"] == "pretrain" and row["coverage"]:
                    seeds = values[EnvId.parse(row["env"]).maze, row["agent"]]
                    seeds.setdefault(int(row["seed"]), float(row["coverage"]))
    if not values:
        raise SystemExit(f"{', '.join(map(str, args.results))}: no pre-training coverage rows")
    agents = args.agents or sorted({agent for _, agent in values})
    mazes = [m for m in MAZE_NAMES if any((m, a) in values for a in agents)]
    print(f"| maze | {' | '.join(agents)} | {args.rank_of} rank | per seed "
          f"({' / '.join(agents)}) |")
    print("| --- " * (len(agents) + 3) + "|")
    for maze in mazes:
        runs = {a: [v for _, v in sorted(values[maze, a].items())] for a in agents}
        means = {a: np.mean(r) for a, r in runs.items() if r}
        cells = [f"{means[a]:.3f} +- {np.std(r):.3f} (n={len(r)})" if r else "-"
                 for a, r in runs.items()]
        order = sorted(means, key=lambda a: -means[a])
        rank = order.index(args.rank_of) + 1 if args.rank_of in means else "-"
        seeds = " / ".join(" ".join(f"{v:.3f}" for v in r) for r in runs.values())
        print(f"| {maze} | {' | '.join(cells)} | {rank} | {seeds} |")


if __name__ == "__main__":
    main()

"""EDP maze coverage against learning budget: one knob at a time from `fast`, 100k frames.

    python benchmarks/ablation/run.py                     # every cell; re-invoke to continue
    python benchmarks/ablation/run.py --cells fast stratified --mazes square_tree
    python benchmarks/ablation/run.py --table             # README tables and the figure only

Each cell (a set of flags on top of `--preset fast`) runs on each maze as one `edp pretrain
--seeds 0 1` process (compiled loop, seeds split across the cores). A finished (cell, maze)
appends one row per seed to results.jsonl (coverage, wall and CPU time of the process) and
copies the small files of its runs to records/; a stopped process is resumed from its
checkpoints on the next invocation (its row then says so: its CPU time is that of the last
process only). Then the tables and coverage_vs_cpu.png are written from results.jsonl.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from harness import REPO, Results, machine, pretrain_group  # noqa: E402

from edp.figures import pyplot, save_figure  # noqa: E402

HERE = Path(__file__).resolve().parent
RUNS, RECORDS = HERE / "runs", HERE / "records"
RESULTS = Results(HERE / "results.jsonl")
SEEDS = (0, 1)
MAZES = ("square_a", "square_tree", "square_large")
EVERY_STEP = ["--ddpg.update-every", "1"]
CELLS = {  # name: flags on top of `--preset fast` (see docs/method.md §5.4 for the paper's)
    "fast": [],
    "stratified": ["--edp.reward-estimator", "stratified"],
    "next_state": ["--edp.reward-on", "next_observation"],
    "no_reward_dropout": ["--edp.no-reward-dropout"],
    "K20": ["--edp.reward-samples", "20"],
    "iters1": EVERY_STEP,
    "iters2": [*EVERY_STEP, "--ddpg.updates-per-step", "2"],
    "iters5": [*EVERY_STEP, "--ddpg.updates-per-step", "5"],
    "batch1024": ["--ddpg.batch-size", "1024"],
    "score128x2": ["--edp.score-hidden-dim", "128", "--edp.score-blocks", "2",
                   "--edp.score-time-dim", "128"],
    "score256x3": ["--edp.score-hidden-dim", "256", "--edp.score-blocks", "3",
                   "--edp.score-time-dim", "128"],
    "ddpg256": ["--ddpg.hidden-dim", "256"],
    "ddpg1024": ["--ddpg.hidden-dim", "1024"],
    # the two best single knobs per CPU-minute on square_tree, together
    "ddpg256_iters1": ["--ddpg.hidden-dim", "256", *EVERY_STEP],
    # the larger state model lost least inside cells, ddpg256_iters1 least between them
    "ddpg256_iters1_score128x2": ["--ddpg.hidden-dim", "256", *EVERY_STEP,
                                  "--edp.score-hidden-dim", "128", "--edp.score-blocks", "2",
                                  "--edp.score-time-dim", "128"],
}
PAPER = {"square_a": (0.99, 0.02), "square_b": (0.99, 0.01), "square_c": (0.98, 0.02),
         "square_d": (0.78, 0.01), "square_tree": (0.91, 0.01),
         "square_bottleneck": (0.75, 0.15), "square_large": (0.71, 0.07)}  # EDP, Table 1


def run_cell(cell: str, maze: str) -> None:
    """Train (or resume) the cell's seeds on the maze in one process; append their rows."""
    out = RUNS / cell
    parent = out / "maze" / maze / "edp"
    args = ["--env", f"maze/{maze}", "--agent", "edp", "--preset", "fast", *CELLS[cell]]
    print(f"{cell} on {maze}: edp pretrain {' '.join(args)} --seeds {' '.join(map(str, SEEDS))}",
          flush=True)
    wall, cpu, resumed = pretrain_group(parent, list(SEEDS), args, out)
    for seed in SEEDS:
        (run,) = parent.glob(f"{seed}-*")
        target = RECORDS / cell / maze / run.name
        target.mkdir(parents=True, exist_ok=True)
        for name in ("config.json", "coverage.json", "result.json"):
            shutil.copy(run / name, target / name)
        result = json.loads((run / "result.json").read_text())
        RESULTS.append({"cell": cell, "maze": maze, "seed": seed, "flags": CELLS[cell],
                        "coverage": result["coverage"], "wall_s": wall, "cpu_s": cpu,
                        "seeds_in_process": len(SEEDS), "resumed": resumed,
                        "record": str(target.relative_to(REPO))})


def table(rows: list[dict]) -> str:
    import numpy as np

    mazes = [m for m in MAZES if any(r["maze"] == m for r in rows)]
    lines = ["| cell | " + " | ".join(mazes) + " | CPU min per seed-run |",
             "| --- |" + " --- |" * (len(mazes) + 1)]
    for cell in (c for c in CELLS if any(r["cell"] == c for r in rows)):
        cells, cpu = [], []
        for maze in mazes:
            mine = [r for r in rows if (r["cell"], r["maze"]) == (cell, maze)]
            values = [r["coverage"] for r in mine]
            cpu += [r["cpu_s"] / r["seeds_in_process"] / 60 for r in mine if not r["resumed"]]
            cells.append(f"{np.mean(values):.3f} +- {np.std(values):.3f}" if values else "")
        lines.append(f"| {cell} | " + " | ".join(cells) + f" | {np.mean(cpu):.1f} |"
                     if cpu else f"| {cell} | " + " | ".join(cells) + " | |")
    lines.append("| paper EDP (10 seeds) | " + " | ".join(
        f"{PAPER[m][0]:.2f} +- {PAPER[m][1]:.2f}" for m in mazes) + " | |")
    return "\n".join(lines)


def figure(rows: list[dict], path: Path) -> None:
    """Mean coverage of each (cell, maze) against the CPU minutes of one seed's run."""
    import matplotlib.ticker
    import numpy as np

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for i, maze in enumerate(m for m in MAZES if any(r["maze"] == m for r in rows)):
        colour, label = f"C{i}", maze  # the maze's first point names it in the legend
        for cell in CELLS:
            mine = [r for r in rows if (r["cell"], r["maze"]) == (cell, maze)]
            timed = [r for r in mine if not r["resumed"]]
            if not timed:
                continue
            x = np.mean([r["cpu_s"] / r["seeds_in_process"] / 60 for r in timed])
            y = np.mean([r["coverage"] for r in mine])
            ax.scatter(x, y, color=colour, label=label)
            label = None
            ax.annotate(cell, (x, y), fontsize=7, xytext=(3, 2), textcoords="offset points")
        ax.axhline(PAPER[maze][0], color=colour, lw=0.8, ls="--")
    ax.set_xscale("log")
    ax.margins(x=0.25)  # room for the rightmost cell's name
    plain = matplotlib.ticker.FuncFormatter(lambda x, _: f"{x:g}")  # 12, not 1.2 x 10^1
    ax.xaxis.set_major_locator(matplotlib.ticker.FixedLocator([5, 10, 15, 20, 30, 40, 60, 120]))
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    ax.xaxis.set_major_formatter(plain)
    ax.set_xlabel("CPU minutes per seed (100k frames, 2 seeds per process)")
    ax.set_ylabel("final coverage (mean of seeds)")
    ax.set_title("EDP maze coverage vs learning budget (dashed: paper)")
    ax.legend(loc="lower right", fontsize=8)
    save_figure(plt, fig, path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cells", nargs="+", default=list(CELLS), choices=list(CELLS))
    parser.add_argument("--mazes", nargs="+", default=list(MAZES), choices=list(PAPER))
    parser.add_argument("--table", action="store_true", help="only write the table and figure")
    args = parser.parse_args()
    if not args.table:
        print(f"command: {' '.join(sys.argv)}\nmachine: {machine()}", flush=True)
        for cell in args.cells:
            for maze in args.mazes:
                if not any((r["cell"], r["maze"]) == (cell, maze) for r in RESULTS.rows()):
                    run_cell(cell, maze)
    rows = RESULTS.rows()
    if rows:
        print(table(rows))
        figure(rows, HERE / "coverage_vs_cpu.png")


if __name__ == "__main__":
    main()

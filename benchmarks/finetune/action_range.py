"""How far outside the action space [-1, 1] each fine-tuning run acted (a markdown table).

From the replay of each run's final checkpoint, over the last --last steps, the share of steps
with some |a_i| > 1 and the median and 99th percentile of max_i |a_i|, per (method, task) over
seeds (medians). The diffusion policies' samples are unclipped (as in the reference); URLB's
MuJoCo clamps the controls, so an action of 10 acts as 1, while the replay and the critic see
10.

    python benchmarks/finetune/action_range.py benchmarks/urlb/runs/urlb/walker_*
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from edp import checkpoint


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tasks", nargs="+", type=Path, help="task folders of a run root")
    parser.add_argument("--last", type=int, default=10_000)
    args = parser.parse_args()
    rows: dict[tuple[str, str], list[tuple[float, float, float]]] = {}
    for task in args.tasks:
        for run in sorted(task.glob("*/*/result.json")):
            final = checkpoint.latest(run.parent / "checkpoints")
            if final is None or not (final / "replay.npz").is_file():
                continue
            with np.load(final / "replay.npz") as replay:
                action = replay["steps/action"]
            size = np.abs(action.reshape(-1, action.shape[-1])).max(-1)[-args.last:]
            rows.setdefault((run.parent.parent.name, task.name), []).append(
                ((size > 1).mean(), np.median(size), np.quantile(size, 0.99)))
    if not rows:
        raise SystemExit("no finished run with a replay under the given task folders")
    print("| method | task | runs | share of steps outside [-1, 1] | median of max_i abs(a_i) "
          "| its 99th percentile |")
    print("| --- | --- | --- | --- | --- | --- |")
    for (method, task), values in sorted(rows.items()):
        share, median, p99 = np.median(np.array(values), axis=0)
        print(f"| {method} | {task} | {len(values)} | {share:.2f} | {median:.3g} | {p99:.3g} |")


if __name__ == "__main__":
    main()

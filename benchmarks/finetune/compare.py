"""Is a study run with an option better than its control? P(option > control) per task.

    python benchmarks/finetune/compare.py \
        --option benchmarks/urlb/records_pre1_backup_policy/urlb \
        --control benchmarks/urlb/records_pre1/urlb

`edp report` names a method by its run directory, so a study run with an option
(`--finetune-args`) and its control carry the same name and one report cannot set them against
each other. This collects the finished fine-tuning runs under each side's folders (run
directories or records) and prints, for every (task, method) both sides hold, the final scores
and the probability that a run with the option scores higher than one without (ties 1/2); then,
per method over their common tasks, that probability with its 95% stratified bootstrap
interval and each side's IQM, as `edp report` computes them.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from edp.report import (
    find_runs,
    finetune_groups,
    iqm,
    probability_of_improvement,
    stratified_interval,
)


def finals(roots: list[Path], mode: str) -> dict[tuple[str, str], np.ndarray]:
    """(task, method) -> final scores of the finished fine-tuning runs under the roots."""
    groups = finetune_groups(find_runs(tuple(roots)), mode)
    return {key: np.array([e.scores[-1] for e in evals]) for key, evals in groups.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--option", nargs="+", type=Path, required=True,
                        help="folders holding the runs made with the option")
    parser.add_argument("--control", nargs="+", type=Path, required=True,
                        help="folders holding the control runs")
    parser.add_argument("--eval-mode", choices=("sample", "zero_noise"), default="sample",
                        help="which evaluation scores a run (as `edp report --eval-mode`)")
    parser.add_argument("--bootstrap", type=int, default=2000, help="bootstrap resamples")
    args = parser.parse_args()
    try:
        option, control = finals(args.option, args.eval_mode), finals(args.control, args.eval_mode)
    except FileNotFoundError as exc:
        parser.error(str(exc))
    common = sorted(set(option) & set(control))
    if not common:
        parser.error("the two sides share no (task, method) with finished runs")
    print("| task | method | option (runs) | control (runs) | P(option > control) |")
    print("| --- | --- | --- | --- | --- |")
    for key in common:
        p = probability_of_improvement([option[key]], [control[key]])
        print(f"| {key[0]} | {key[1]} | {option[key].mean():.3f} ({len(option[key])}) | "
              f"{control[key].mean():.3f} ({len(control[key])}) | {p:.2f} |")
    for method in sorted({m for _, m in common}):
        xs = [option[k] for k in common if k[1] == method]
        ys = [control[k] for k in common if k[1] == method]
        p, low, high = stratified_interval(probability_of_improvement, (xs, ys), args.bootstrap)
        print(f"{method} over {len(xs)} tasks: P(option > control) {p:.2f} [{low:.2f}, "
              f"{high:.2f}]; IQM option {iqm(xs):.3f}, control {iqm(ys):.3f}")


if __name__ == "__main__":
    main()

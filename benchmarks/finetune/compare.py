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
interval and, over the common tasks with an expert score, each side's IQM, as `edp report`
computes them.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from edp.report import (
    Evals,
    final_scores,
    find_runs,
    finetune_groups,
    iqm,
    probability_of_improvement,
    stratified_interval,
)

Groups = dict[tuple[str, str], list[Evals]]


def side(roots: list[Path], mode: str) -> Groups:
    """(task, method) -> the evaluations of the finished fine-tuning runs under the roots."""
    return finetune_groups(find_runs(tuple(roots)), mode)


def method_lines(option: Groups, control: Groups, method: str, tasks: list[str],
                 bootstrap: int) -> str:
    """P(option > control) over the tasks (rank-based: every task counts) and both IQMs over
    those with an expert score (raw returns of different tasks do not pool)."""
    mine, theirs = final_scores(option, method), final_scores(control, method)
    xs, ys = [mine[t] for t in tasks], [theirs[t] for t in tasks]
    p, low, high = stratified_interval(probability_of_improvement, (xs, ys), bootstrap)
    line = (f"{method} over {len(tasks)} tasks: P(option > control) {p:.2f} [{low:.2f}, "
            f"{high:.2f}]")
    scored = (set(final_scores(option, method, normalised_only=True))
              & set(final_scores(control, method, normalised_only=True)))
    normalised = [t for t in tasks if t in scored]
    if not normalised:
        return line + "; no task with an expert score for the IQM"
    unscored = f" (without {', '.join(sorted(set(tasks) - scored))})" if len(normalised) < len(
        tasks) else ""
    return (line + f"; IQM{unscored} option {iqm([mine[t] for t in normalised]):.3f}, "
            f"control {iqm([theirs[t] for t in normalised]):.3f}")


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
        option, control = side(args.option, args.eval_mode), side(args.control, args.eval_mode)
    except FileNotFoundError as exc:
        parser.error(str(exc))
    common = sorted(set(option) & set(control))
    if not common:
        parser.error("the two sides share no (task, method) with finished runs")
    print("| task | method | option (runs) | control (runs) | P(option > control) |")
    print("| --- | --- | --- | --- | --- |")
    for task, method in common:
        x, y = final_scores(option, method)[task], final_scores(control, method)[task]
        p = probability_of_improvement([x], [y])
        print(f"| {task} | {method} | {x.mean():.3f} ({len(x)}) | {y.mean():.3f} ({len(y)}) | "
              f"{p:.2f} |")
    for method in sorted({m for _, m in common}):
        tasks = [t for t, m in common if m == method]
        print(method_lines(option, control, method, tasks, args.bootstrap))


if __name__ == "__main__":
    main()

"""Does a fine-tuning run's gain follow its critic's contrast between candidate actions?

    python benchmarks/finetune/contrast.py benchmarks/urlb/runs/pre1/urlb/walker_stand/edp_from_edp

For every finished EDP fine-tuning run below the given folders: its gain (final one-sample
evaluation minus frame 0) beside training metrics averaged over the frames after --skip: the
teachers' Q over the negatives' Q (how far the guided targets move in Q), the std of Q over a
state's M negatives (how much the critic separates the candidates it ranks) and the CEP label
max. Reads each run's metrics.jsonl and eval.csv (run directories, not records).
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from harness import cep_records, cep_statistics  # noqa: E402


def row(run: Path, skip: int) -> str | None:
    if not ((run / "result.json").is_file() and (run / "metrics.jsonl").is_file()):
        return None
    train = [r for r in cep_records(run) if r["frame"] > skip]
    if not train:
        return None
    with open(run / "eval.csv", newline="") as f:
        evals = list(csv.DictReader(f))
    gain = float(evals[-1]["normalized_return"]) - float(evals[0]["normalized_return"])
    stats = cep_statistics(train)
    return (f"| {run} | {gain:+.3f} | {stats['teacher_gain']:+.3f} | {stats['q_std']:.3f} | "
            f"{stats['label_max']:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path,
                        help="folders holding EDP fine-tuning run directories (<seed>-<id>)")
    parser.add_argument("--skip", type=int, default=20_000,
                        help="average the metrics over frames after this (default: %(default)s)")
    args = parser.parse_args()
    rows = [r for folder in args.folders for run in sorted(folder.glob("*-*"))
            if (r := row(run, args.skip)) is not None]
    if not rows:
        raise SystemExit("contrast.py: no finished EDP fine-tuning run in " +
                         ", ".join(map(str, args.folders)))
    print("| run | gain | teacher Q - negative Q | Q std over negatives | CEP label max |\n"
          "| --- | --- | --- | --- | --- |")
    print("\n".join(rows))


if __name__ == "__main__":
    main()

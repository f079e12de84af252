"""Copy the small files of every finished run under a run root into a committed record tree.

The run root is e.g. an `edp sweep --out` inside the git-ignored benchmarks/*/runs/; from the
records, `edp report` can be drawn again on another machine. Small files only: config,
eval.csv, coverage curve, result, and a pre-training's final visit counts; not the replay or
the weights. Re-invocable (records are overwritten).

    python benchmarks/record.py benchmarks/finetune/runs/maze benchmarks/finetune/records/maze
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from harness import record

TEXT = ("config.json", "eval.csv", "coverage.json", "result.json")
FINAL = ("coverage.npz", "state.json")  # a pre-training's visit counts, from its last checkpoint


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, help="run root the runs were written to")
    parser.add_argument("records", type=Path, help="record tree (same relative layout)")
    args = parser.parse_args()
    if not args.root.is_dir():
        raise SystemExit(f"no run root {args.root}")
    runs = sorted(result.parent for result in args.root.rglob("result.json"))
    for run in runs:
        pretrain = json.loads((run / "result.json").read_text())["kind"] == "pretrain"
        final = FINAL if pretrain and any((run / "checkpoints").glob("*/coverage.npz")) else ()
        record(run, args.root, args.records,
               tuple(name for name in TEXT if (run / name).is_file()), final)
    print(f"{len(runs)} finished runs recorded in {args.records}")


if __name__ == "__main__":
    main()

"""Issue 21's walker_stand probes of EDP fine-tuning: label sharpness, critic, evaluation mode.

    python benchmarks/finetune/probe.py [<walker EDP snapshot>] [--probes NAME ...] [--jobs 2]
    python benchmarks/finetune/probe.py --probes std_alpha10 --seeds 0 1 2 --jobs 2

Every probe is `edp finetune --env urlb/walker_stand --method edp --preset fast --seed <seed>`
(--seeds, default 0; the snapshot is the same for every seed) from the snapshot for 50k
frames with one set of flags, evaluated both ways (--eval-zero-noise: the paper's one-sample
columns and the zero_noise_* columns, on the same start states). The grid:
reference discount off/on x Q standardisation off/on x alpha 3, 10, 30 (12 runs), then the
critic-contrast and guidance probes at alpha 30 (the best alpha of the earlier probes, README),
then on the best of the grid (std_alpha10) two guidance probes, two with a prior that follows
the fine-tuned policy (`--edp.anchor-ema`) and two with resampled teachers (`--edp.teacher`).

Re-invocable (stop it with Ctrl-C, which also stops the running probes): finished runs
(result.json) are skipped, interrupted ones resume from their last checkpoint (every 10k
frames), a run directory without a checkpoint is started again. Runs live
under <root>/runs/<probe>/ (git-ignored); <root>/results.md and results.csv are rewritten
after every run from whatever eval.csv and metrics.jsonl hold (unfinished runs included); a
row of results.csv whose run is not on this machine (made by another one) is kept as it is. Every
row names its snapshot (a new machine makes a new one; means over seeds are per snapshot).

The snapshot: the walker EDP pre-training of benchmarks/urlb (400k frames, `fast`, seed 0,
about 50 minutes here), the one its fine-tuning table starts from. By default the run that
benchmarks/urlb/run.py (or `MAKE_SNAPSHOT` below) makes in benchmarks/urlb/runs/ (git-ignored;
re-invoke it, or `edp pretrain --resume <run>`, if it was stopped).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from harness import REPO, cep_records, cep_statistics  # noqa: E402

HERE = Path(__file__).resolve().parent
TASK, LABEL = "urlb/walker_stand", "edp_from_edp"
MAKE_SNAPSHOT = ("edp pretrain --env urlb/walker --agent edp --preset fast --seed 0 --frames "
                 "400000 --snapshots 100000 400000 --out benchmarks/urlb/runs")
PRETRAINED = REPO / "benchmarks" / "urlb" / "runs" / "urlb" / "walker" / "edp"
SINGLE_THREAD = {"XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false "
                 "intra_op_parallelism_threads=1"}


def probe_grid() -> dict[str, list[str]]:
    """Probe name -> its flags beyond `fast` (dict order = run order). Every probe names its
    alpha and its standardisation: `fast`'s own choice of them came out of these probes."""
    probes = {}
    for ref in (False, True):
        for std in (False, True):
            for alpha in (3, 10, 30):
                name = "_".join(["refdisc"] * ref + ["std"] * std + [f"alpha{alpha}"])
                probes[name] = (["--edp.alpha", str(alpha)]
                                + ["--edp.critic.reference-discount"] * ref
                                + ["--edp.standardise-q" if std else "--edp.no-standardise-q"])
    alpha30 = probes["alpha30"]
    probes["alpha30_seed_uniform"] = [*alpha30, "--edp.seed-uniform"]
    probes["alpha30_backup_policy"] = [*alpha30, "--edp.critic.backup", "policy"]
    probes["alpha30_guidance2"] = [*alpha30, "--edp.guidance-scale", "2"]
    # the best probe so far with exact CEP (negatives from the guided policy) or the paper's
    # energy net: is the guidance, whose teachers gain little Q over the negatives, the limit?
    std_alpha10 = probes["std_alpha10"]
    probes["std_alpha10_negatives_pretrained"] = [*std_alpha10, "--edp.negatives-from",
                                                  "pretrained"]
    probes["std_alpha10_energy256x4"] = [*std_alpha10, "--edp.energy-hidden-dim", "256",
                                         "--edp.energy-layers", "4"]
    # a prior that follows the fine-tuned policy (anchor_ema = 1 / lag): tilts that compound
    # instead of one tilt of the broad pre-trained policy; lag in gradient iterations
    for lag in (5000, 1000):
        probes[f"std_alpha10_prior_lag{lag}"] = [*std_alpha10, "--edp.anchor-ema", str(1 / lag)]
    # teachers resampled from M prior samples by the labels (no energy): is the learned
    # guidance what limits the tilt?
    probes["std_alpha10_resampled"] = [*std_alpha10, "--edp.teacher", "resampled"]
    probes["std_alpha10_resampled_prior_lag1000"] = [*probes["std_alpha10_resampled"],
                                                     "--edp.anchor-ema", "0.001"]
    return probes


def find_run(out: Path, seed: int) -> Path | None:
    runs = sorted((out / TASK / LABEL).glob(f"{seed}-*/config.json"))
    return runs[0].parent if runs else None


def seeds_run(out: Path) -> set[int]:
    """The seeds with a run directory under a probe's output."""
    return {int(p.parent.name.split("-")[0]) for p in (out / TASK / LABEL).glob("*/config.json")}


def run_probe(name: str, seed: int, flags: list[str], args: argparse.Namespace) -> None:
    """Run, resume or skip one probe's seed (a failure is printed; the other probes go on)."""
    out = args.root / "runs" / name
    run = find_run(out, seed)
    label = f"{name} seed {seed}"
    if run is not None and (run / "result.json").is_file():
        print(f"{label:32} done before: {os.path.relpath(run, REPO)}", flush=True)
        return
    if run is not None and any((run / "checkpoints").glob("[0-9]*")):
        cli = ["finetune", "--resume", str(run)]
    else:
        if run is not None:  # killed before its first checkpoint: nothing to resume
            shutil.rmtree(run)
        cli = ["finetune", "--env", TASK, "--method", "edp", "--preset", "fast",
               "--seed", str(seed), "--snapshot", str(args.snapshot), "--out", str(out),
               "--frames", str(args.frames), "--seed-frames", str(args.seed_frames),
               "--eval-every", str(args.eval_every), "--eval-episodes", str(args.eval_episodes),
               "--checkpoint-every", str(args.checkpoint_every), "--log-every",
               str(args.log_every), "--eval-zero-noise", "--quiet", *flags]
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "edp.cli", *cli], capture_output=True,
                          text=True, env={**os.environ, **SINGLE_THREAD})
    ok = proc.returncode == 0
    tail = (proc.stdout if ok else proc.stderr).strip().splitlines()[-1:] or [""]
    print(f"{label:32} {time.perf_counter() - t0:7.1f}s  {'ok' if ok else 'FAILED'}  {tail[0]}",
          flush=True)


def summary(name: str, seed: int, flags: list[str], run: Path | None) -> dict:
    """One results row: scores per evaluation frame (both modes) and late CEP statistics."""
    row = {"probe": name, "seed": seed, "flags": " ".join(flags) or "(fast)",
           "status": "not started", "snapshot": ""}
    if run is None or not (run / "eval.csv").is_file():
        return row
    snapshot = Path(json.loads((run / "config.json").read_text())["config"]["snapshot"])
    if snapshot.parent.name == "snapshots":  # <run>/snapshots/<frames>: name the run
        snapshot = snapshot.parent.parent
    with open(run / "eval.csv", newline="") as f:
        evals = list(csv.DictReader(f))
    train = cep_records(run)
    late = train[-2:]  # the last two log lines (10k frames at the default log cadence)
    row.update(status="done" if (run / "result.json").is_file() else
               f"at {int(evals[-1]['frame']) if evals else 0:,} frames",
               frames=[int(e["frame"]) for e in evals],
               sample=[float(e["normalized_return"]) for e in evals],
               zero_noise=[float(e["zero_noise_normalized_return"]) for e in evals],
               **cep_statistics(late),
               fps=sum(r["fps"] for r in train) / len(train) if train else float("nan"),
               snapshot=os.path.relpath(snapshot, REPO))  # committed: no machine's path
    return row


def _number(value: float | None, fmt: str) -> str:
    return "" if value is None or math.isnan(value) else format(value, fmt)


def seed_means(rows: list[dict], frames: int) -> list[str]:
    """Markdown lines: for each probe with several finished seeds from one snapshot, the mean
    +- std over them of the final score in both evaluation modes."""
    lines = []
    for name, snapshot in dict.fromkeys((r["probe"], r["snapshot"]) for r in rows):
        done = [r for r in rows if r["probe"] == name and r["snapshot"] == snapshot
                and r["status"] == "done" and r["frames"][-1] == frames]
        if len(done) < 2:
            continue
        stats = []
        for mode in ("sample", "zero_noise"):
            final = [r[mode][-1] for r in done]
            stats.append(f"{statistics.fmean(final):.3f} +- {statistics.pstdev(final):.3f}")
        seeds = ", ".join(str(r["seed"]) for r in done)
        lines.append(f"| {name} | {Path(snapshot).name} | {seeds} | {stats[0]} | {stats[1]} |")
    if not lines:
        return []
    return ["", f"Final score ({frames:,} frames), mean +- population std over seeds:", "",
            "| probe | snapshot | seeds | sample | zero_noise |", "| --- | --- | --- | --- | --- |",
            *lines]


STATS = ("label_max", "q_std", "teacher_gain", "fps")  # on a probe's `sample` row of the csv


def previous_rows(root: Path) -> dict[tuple[str, int, str], dict]:
    """The rows of an earlier results.csv, as `summary` gives them, by (probe, seed,
    snapshot)."""
    path = root / "results.csv"
    if not path.is_file():
        return {}
    with open(path, newline="") as f:
        lines = list(csv.DictReader(f))
    rows = {}
    for line in lines:
        key = (line["probe"], int(line["seed"]), line["snapshot"])
        row = rows.setdefault(key, {"probe": key[0], "seed": key[1], "snapshot": key[2],
                                    "flags": line["flags"], "status": line["status"]})
        scored = [(int(k), float(v)) for k, v in line.items() if k.isdigit() and v != ""]
        row["frames"] = [f for f, _ in scored]
        row[line["eval"]] = [v for _, v in scored]
        row.update({k: float(line[k]) for k in STATS if line.get(k)})
    return rows


def write_results(rows: list[dict], root: Path, args: argparse.Namespace) -> Path:
    frames = sorted({f for r in rows for f in r.get("frames", [])})
    head = ["probe", "seed", "snapshot", "flags", "status", "eval",
            *[f"{f // 1000}k" for f in frames],
            "CEP label max", "Q std / state", "teacher - negative Q", "fps"]
    snapshots = sorted({r["snapshot"] for r in rows if r["snapshot"]})
    lines = [f"# EDP walker_stand probes ({args.frames:,} frames)", "",
             "Fine-tuned from the 400k walker EDP snapshot named by the row (the pre-training "
             "runs " + ", ".join(f"`{s}`" for s in snapshots) + "). "
             "Expert-normalised return per evaluation: `sample` = one sample per step (the "
             "paper), `zero_noise` = solver from x_T = 0, on the same start states. CEP "
             "statistics: mean of the last two log lines (label max of "
             "softmax over the 8 negatives, uniform 0.125).", "",
             "| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    table = []
    for r in rows:
        for mode in ("sample", "zero_noise"):
            scores = dict(zip(r.get("frames", []), r.get(mode, []), strict=True))
            cells = [f"{scores[f]:.3f}" if f in scores else "" for f in frames]
            stats = [_number(r.get(k), ".3f") for k in ("label_max", "q_std", "teacher_gain")]
            stats = [*stats, _number(r.get("fps"), ".0f")] if mode == "sample" else [""] * 4
            first = ([r["probe"], str(r["seed"]), Path(r["snapshot"]).name,
                      f"`{r['flags']}`", r["status"]] if mode == "sample" else [""] * 5)
            lines.append("| " + " | ".join([*first, mode, *cells, *stats]) + " |")
            table.append({"probe": r["probe"], "seed": r["seed"], "snapshot": r["snapshot"],
                          "flags": r["flags"], "status": r["status"], "eval": mode,
                          **{k: r.get(k, "") if mode == "sample" else "" for k in STATS},
                          **{str(f): scores.get(f, "") for f in frames}})
    lines += seed_means(rows, args.frames)
    (root / "results.md").write_text("\n".join(lines) + "\n")
    with open(root / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["probe", "seed", "snapshot", "flags", "status",
                                               "eval",
                                               *STATS, *map(str, frames)])
        writer.writeheader()
        writer.writerows(table)
    return root / "results.md"


def all_rows(grid: dict[str, list[str]], args: argparse.Namespace) -> list[dict]:
    """A row per probe and seed run so far, not only this invocation's (a subset keeps the
    others' rows; so does a machine without the runs of an earlier results.csv), plus this
    invocation's not started yet."""
    rows, previous = [], previous_rows(args.root)
    for name, flags in grid.items():
        out = args.root / "runs" / name
        recorded = {seed for probe, seed, _ in previous if probe == name}
        for seed in sorted({*args.seeds, *seeds_run(out), *recorded}):
            run = find_run(out, seed)
            here = (summary(name, seed, flags, run)
                    if run is not None or (name in args.probes and seed in args.seeds) else None)
            rows += [r for (probe, s, snapshot), r in previous.items()
                     if (probe, s) == (name, seed) and (here is None
                                                        or snapshot != here["snapshot"])]
            rows += [here] if here is not None else []
    return rows


def main() -> None:
    grid = probe_grid()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("snapshot", type=Path, nargs="?", help="walker EDP pre-training run or "
                        "snapshot (default: the seed-0 run MAKE_SNAPSHOT makes)")
    parser.add_argument("--probes", nargs="+", choices=list(grid), default=list(grid))
    parser.add_argument("--frames", type=int, default=50_000)
    parser.add_argument("--seed-frames", type=int, default=4000)
    parser.add_argument("--eval-every", type=int, default=10_000)
    parser.add_argument("--eval-episodes", type=int, default=5)
    parser.add_argument("--checkpoint-every", type=int, default=10_000)
    parser.add_argument("--log-every", type=int, default=5000)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0],
                        help="fine-tuning seeds of each probe (the snapshot stays the same)")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--root", type=Path, default=HERE / "probes")
    args = parser.parse_args()
    if args.snapshot is None:
        made = sorted(PRETRAINED.glob("0-*/result.json"))
        args.snapshot = made[0].parent if made else PRETRAINED / "0-<id>"
    args.snapshot = args.snapshot.expanduser().resolve()
    if not args.snapshot.exists():
        parser.error(f"no snapshot at {args.snapshot}; make the 400k walker one with\n  "
                     f"{MAKE_SNAPSHOT}\nand invoke this again (or pass another run directory)")
    args.root.mkdir(parents=True, exist_ok=True)
    print("command:", " ".join(["python", *sys.argv]), flush=True)
    lock = threading.Lock()

    def one(job: tuple[str, int]) -> None:
        name, seed = job
        run_probe(name, seed, grid[name], args)
        with lock:  # one writer of the tables at a time
            write_results(all_rows(grid, args), args.root, args)

    with ThreadPoolExecutor(args.jobs) as pool:
        list(pool.map(one, [(n, s) for s in args.seeds for n in args.probes]))
    print((args.root / "results.md").read_text())


if __name__ == "__main__":
    main()

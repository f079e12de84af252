"""Maze coverage benchmark: agents x mazes x seeds, then `edp report` into this folder.

    python benchmarks/coverage/run.py --agents random edp ddpg --seeds 0 1 2

The seeds of one (maze, agent) train as one `edp pretrain --seeds` process (the compiled maze
loop, seeds split across the cores), in --root inside the repository (git-ignored), with a
checkpoint every 20k frames: a stopped process resumes from its checkpoints on the next
invocation. A finished run's small files (config, coverage curve, result, final visit counts,
how it moved; not the replay or the weights) are copied into the committed record tree
(--records), because machines do not outlive a session: the report is drawn from the records,
and a run already recorded there with the same preset and frames, or listed in lost_runs.csv
(runs whose directories were lost before records were kept), is skipped, so the script can be
re-invoked (`--rerun-lost` runs the lost ones again, to record their visit counts). A study
with extra flags (--flags) needs its own --records and --report; another preset gets its own
folder (--preset cpu: cpu/records, cpu/results and cpu/lost_runs.csv). Prints the command, the
machine and the resulting table.
"""

from __future__ import annotations

import argparse
import csv
import json
import shlex
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from harness import machine, pretrain_group, record  # noqa: E402
from wall_steps import write_moves  # noqa: E402

from edp.config import PRESETS  # noqa: E402
from edp.envs import EnvId  # noqa: E402
from edp.envs.maze import MAZE_NAMES  # noqa: E402
from edp.report import ReportConfig, write_report  # noqa: E402

HERE = Path(__file__).resolve().parent
RUNS = HERE / "work"
RECORDS = HERE / "runs"
LOST = "lost_runs.csv"  # in the study's folder
SEVEN = [m for m in MAZE_NAMES if m != "square_corridor"]
# what the report reads; the final checkpoint's replay and weights stay behind in --root
RECORDED = ("config.json", "coverage.json", "result.json")
FINAL = ("coverage.npz", "state.json")  # the final visit counts, from the last checkpoint


def lost_runs(study: Path) -> set[tuple[str, str, int, int]]:
    """(maze, agent, seed, frames) of the study's finished runs whose directories were lost."""
    if not (study / LOST).is_file():
        return set()
    with (study / LOST).open() as f:
        return {(EnvId.parse(row["env"]).maze, row["agent"], int(row["seed"]),
                 int(row["frames"])) for row in csv.DictReader(f)}


def done(records: Path, lost: set, maze: str, agent: str, seed: int, frames: int,
         preset: str) -> bool:
    if (maze, agent, seed, frames) in lost:
        return True
    for result in (records / "maze" / maze / agent).glob(f"{seed}-*/result.json"):
        config = json.loads((result.parent / "config.json").read_text())["config"]
        if (config["frames"], config["preset"]) == (frames, preset):
            return True
    return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", nargs="+", default=["random", "edp", "ddpg"])
    parser.add_argument("--mazes", nargs="+", default=SEVEN)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--frames", type=int, default=100_000)
    parser.add_argument("--preset", default="fast", choices=PRESETS)
    parser.add_argument("--flags", default="", help="more `edp pretrain` flags for every run, "
                        "one quoted string (e.g. \"--ddpg.hidden-dim 256\")")
    parser.add_argument("--root", type=Path, default=RUNS)
    parser.add_argument("--records", type=Path,
                        help="record tree (default: runs/, or <preset>/records/ beside it)")
    parser.add_argument("--report", type=Path,
                        help="report folder (default: results/, or <preset>/results/)")
    parser.add_argument("--rerun-lost", action="store_true",
                        help="run the runs of lost_runs.csv again, to record their visit counts")
    args = parser.parse_args()
    if args.flags and not (args.records and args.report):
        parser.error("--flags makes another study: give it its own --records and --report")
    study = HERE if args.preset == "fast" else HERE / args.preset
    default_records = RECORDS if study == HERE else study / "records"
    args.records = args.records or default_records
    args.report = args.report or study / "results"
    print("command:", shlex.join([Path(sys.executable).name, *sys.argv]))
    print("machine:", machine())
    lost = (lost_runs(study) if args.records == default_records and not args.rerun_lost
            else set())
    groups = []
    for maze in args.mazes:
        for agent in args.agents:
            seeds = [s for s in args.seeds
                     if not done(args.records, lost, maze, agent, s, args.frames, args.preset)]
            if seeds:
                groups.append((maze, agent, seeds))
    print(f"{len(groups)} seed groups to run", flush=True)
    for i, (maze, agent, seeds) in enumerate(groups, 1):
        out = args.root / args.preset
        parent = out / "maze" / maze / agent
        cli = ["--env", f"maze/{maze}", "--agent", agent, "--frames", str(args.frames),
               "--preset", args.preset, "--checkpoint-every", "20000", *shlex.split(args.flags)]
        print(f"[{i}/{len(groups)}] {maze} {agent} seeds {seeds}", flush=True)
        wall, cpu, resumed = pretrain_group(parent, seeds, cli, out)
        values = []
        for seed in seeds:
            (run,) = parent.glob(f"{seed}-*")
            # the replay stays behind: keep how the agent moved (wall_steps.py), if it left one
            moved = ("moves.json",) if write_moves(run) else ()
            record(run, out, args.records, RECORDED + moved, FINAL)
            values.append(json.loads((run / "result.json").read_text())["coverage"])
        print(f"[{i}/{len(groups)}] {maze} {agent}: coverage "
              f"{' '.join(f'{v:.3f}' for v in values)}; {wall:.0f} s wall, {cpu / 60:.1f} CPU-min"
              f"{' (resumed: this process only)' if resumed else ''}", flush=True)
        # a long study leaves a report of what it has so far after every group
        path = write_report(ReportConfig(runs=(args.records,), out=args.report))
    if not args.records.is_dir():
        raise SystemExit(f"no recorded runs in {args.records}")
    if not groups:
        path = write_report(ReportConfig(runs=(args.records,), out=args.report))
    print(path.read_text())


if __name__ == "__main__":
    main()

"""The `edp` command: `edp pretrain ...` (more subcommands arrive with their features).

Every subcommand's options come from a frozen dataclass (tyro turns field docstrings into
--help). Presets depend on the environment and agent, so `--preset`, `--env` and `--agent` are
read first and the preset's values become the defaults that other flags override.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from pathlib import Path

from edp.config import ConfigError
from edp.sweep import main as sweep

USAGE = """usage: edp <command> [options]

commands:
  pretrain   reward-free pre-training of an exploration agent (writes a run directory)
  finetune   fine-tune on a downstream task from a pre-training snapshot (or from scratch)
  eval       re-evaluate a run's latest checkpoint for N episodes
  report     aggregate run directories into results.csv, report.md and figures
  bench      time per env step (act / env / learn) against the machine's GEMM throughput
  sweep      run a grid of runs (envs x agents x seeds [x tasks x methods]) on Ray

`edp <command> --help` explains every option of a command."""


def _fail(message: str) -> int:
    print(f"edp: error: {message}", file=sys.stderr)
    return 2


def _preparse(argv: list[str], defaults: dict[str, str]) -> dict[str, str]:
    parser = argparse.ArgumentParser(add_help=False)
    for name, default in defaults.items():
        parser.add_argument(f"--{name}", default=default)
    known, _ = parser.parse_known_args(argv)
    return vars(known)


def _int_or_none(text: str | None) -> int | None:
    try:
        return int(text)
    except (TypeError, ValueError):
        return None


def pretrain(argv: list[str]) -> int:
    from edp import presets
    from edp.config import PretrainConfig
    from edp.train import pretrain_run

    def default(chosen: dict[str, str]) -> PretrainConfig:
        frames = _int_or_none(chosen.pop("frames"))  # tyro reports a malformed value below
        return presets.pretrain_defaults(**chosen, frames=frames)

    base = PretrainConfig()
    return _train_command(
        argv, "pretrain", PretrainConfig, pretrain_run, default,
        {"preset": base.preset, "env": base.env, "agent": base.agent, "frames": None},
        "Reward-free pre-training. Writes a run directory with config.json, metrics.jsonl, "
        "eval.csv, TensorBoard events, checkpoints/, snapshots/ and, on mazes, coverage.json "
        "and coverage.png. Resume a stopped run with `edp pretrain --resume <run dir>`.")


def _train_command(argv: list[str], command: str, config_cls, run_fn, default,
                   preparsed: dict[str, str | None], description: str) -> int:
    """Resume, or parse a new run's flags over the defaults of the chosen preset (read first
    with `preparsed`); an error in those is one line, except under --help."""
    import tyro

    if "--resume" in argv:
        return _resume(argv, command, config_cls, run_fn)
    try:
        defaults = default(_preparse(argv, preparsed))
    except (ConfigError, OSError) as exc:
        if "-h" not in argv and "--help" not in argv:
            return _fail(str(exc))
        defaults = config_cls()
    cfg = tyro.cli(config_cls, default=defaults, args=argv, prog=f"edp {command}",
                   description=description)
    return _run(run_fn, cfg)


def _run(run_fn, cfg, resume_dir: Path | None = None) -> int:
    """Run a training command; expected failures are one-line errors, never tracebacks."""
    from edp.checkpoint import CheckpointError
    from edp.loop import NonFiniteError

    if cfg.wandb_project and importlib.util.find_spec("wandb") is None:
        return _fail("--wandb-project needs W&B: pip install 'edp[wandb]'")
    try:
        result = run_fn(cfg, resume_dir)
    except (ConfigError, OSError, CheckpointError, NonFiniteError) as exc:
        return _fail(str(exc))
    for one in result if isinstance(result, list) else [result]:
        print(_summary(one))
    return 0


def _summary(result) -> str:
    from edp.loop import describe

    summary = f"run directory: {result.run_dir}"
    if result.final_eval:
        # reward-free maze pre-training keeps the maze's inherited goal reward only as a record
        what = "maze goal reward, unused in pre-training" if result.coverage is not None \
            else None
        summary += f"\nfinal evaluation{f' ({what})' if what else ''}: " \
            f"{describe(result.final_eval)}"
    if result.coverage is not None:
        summary += (f"\nfinal coverage: {result.coverage:.4f} "
                    f"(figure: {result.run_dir / 'coverage.png'})")
    return summary


def _resume(argv: list[str], command: str, config_cls, run_fn) -> int:
    from edp.config import from_json
    from edp.rundir import read_config

    parser = argparse.ArgumentParser(prog=f"edp {command} --resume")
    several = command == "pretrain"  # the seeds of one compiled maze group resume together
    parser.add_argument("--resume", type=Path, required=True, nargs="+" if several else None,
                        help="run directory to continue from its latest checkpoint" +
                        (" (several: the seeds of one multi-seed run)" if several else ""))
    args = parser.parse_args(argv)
    dirs = args.resume if several else [args.resume]
    configs = []
    for run_dir in dirs:
        try:
            configs.append(from_json(config_cls, read_config(run_dir)))
        except (FileNotFoundError, TypeError, KeyError, ValueError) as exc:
            return _fail(f"cannot resume {run_dir}: {exc}")
    if len(dirs) == 1:
        return _run(run_fn, configs[0], dirs[0])
    import dataclasses

    seeds = tuple(c.seed for c in configs)
    for run_dir, other in zip(dirs[1:], configs[1:], strict=True):
        if dataclasses.replace(other, seed=configs[0].seed) != configs[0]:
            return _fail(f"cannot resume {run_dir} with {dirs[0]}: their configs differ in more "
                         "than the seed")
    return _run(run_fn, dataclasses.replace(configs[0], seeds=seeds), list(dirs))


def finetune(argv: list[str]) -> int:
    from edp.finetune.config import FinetuneConfig, defaults
    from edp.finetune.run import finetune_run

    def default(chosen: dict[str, str]) -> FinetuneConfig:
        return defaults(chosen["preset"], chosen["method"], _snapshot_backbone(chosen["snapshot"]))

    base = FinetuneConfig()
    return _train_command(
        argv, "finetune", FinetuneConfig, finetune_run, default,
        {"preset": base.preset, "method": base.method, "snapshot": None},
        "Fine-tune on a downstream task (URLB protocol: 4,000 seed frames, evaluation every "
        "10,000 frames, frame 0 included). Writes a run directory like `edp pretrain`, with raw "
        "and expert-normalised returns in eval.csv. Resume with `edp finetune --resume <run "
        "dir>`.")


def _snapshot_backbone(path: str | None):
    """The DDPG config of a snapshot's agent (fine-tuning keeps its architecture)."""
    if path is None:
        return None
    from edp.checkpoint import CheckpointError
    from edp.snapshot import read_meta

    try:
        return read_meta(Path(path))[2].ddpg
    except CheckpointError as exc:
        raise ConfigError(str(exc)) from exc


def evaluate(argv: list[str]) -> int:
    import tyro

    from edp.checkpoint import CheckpointError
    from edp.evaluate import EvalConfig, evaluate_run
    from edp.loop import describe

    cfg = tyro.cli(EvalConfig, args=argv, prog="edp eval",
                   description="Re-evaluate a run's latest checkpoint with the deterministic "
                   "policy on fresh episodes; prints mean +- std (and the expert-normalised "
                   "mean on URLB tasks).")
    try:
        row, frame, video = evaluate_run(cfg)
    except (ConfigError, OSError, CheckpointError, ValueError) as exc:
        return _fail(str(exc))
    print(f"{cfg.run} at {frame:,} frames: {describe(row)} over {cfg.episodes} episodes")
    if video is not None:
        print(f"video: {video}")
    return 0


def bench(argv: list[str]) -> int:
    import tyro

    from edp.bench import BenchConfig, run

    cfg = tyro.cli(BenchConfig, args=argv, prog="edp bench",
                   description="Time per environment step split into act / env / learn, the "
                   "update's FLOP/s, and the machine's float32 GEMM throughput.")
    try:
        run(cfg)
    except ConfigError as exc:
        return _fail(str(exc))
    return 0


def report(argv: list[str]) -> int:
    import tyro

    from edp.report import ReportConfig, write_report

    cfg = tyro.cli(ReportConfig, args=argv, prog="edp report",
                   description="Collect run directories into results.csv, report.md and figures: "
                   "maze coverage (mean, std, bootstrap CI, curves) and fine-tuning studies "
                   "(expert-normalised IQM, mean, median, optimality gap with stratified "
                   "bootstrap CIs, probability of improvement, curves per method).")
    try:
        path = write_report(cfg)
    except FileNotFoundError as exc:
        return _fail(str(exc))
    print(f"report: {path}")
    return 0


COMMANDS = {"pretrain": pretrain, "finetune": finetune, "eval": evaluate, "bench": bench,
            "report": report, "sweep": sweep}


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(list(sys.argv[1:] if argv is None else argv))
    except BrokenPipeError:  # `edp ... --help | head`: the reader left; exit quietly
        # Point the stdout descriptor at /dev/null so the exit-time flush of what is still
        # buffered cannot fail again (the recipe of Python's `signal` documentation).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        return _fail(f"unknown command '{command}'; valid commands: {', '.join(COMMANDS)}")
    return COMMANDS[command](rest)


if __name__ == "__main__":
    sys.exit(main())

"""The `edp` command: `edp pretrain ...` (more subcommands arrive with their features).

Every subcommand's options come from a frozen dataclass (tyro turns field docstrings into
--help). Presets depend on the environment and agent, so `--preset`, `--env` and `--agent` are
read first and the preset's values become the defaults that other flags override.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edp.config import ConfigError

USAGE = """usage: edp <command> [options]

commands:
  pretrain   reward-free pre-training of an exploration agent (writes a run directory)
  report     aggregate run directories into results.csv, report.md and figures
  bench      time per env step (act / env / learn) against the machine's GEMM throughput

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


def pretrain(argv: list[str]) -> int:
    import tyro

    from edp import presets
    from edp.config import PretrainConfig

    if "--resume" in argv:
        return _resume(argv)
    base = PretrainConfig()
    chosen = _preparse(argv, {"preset": base.preset, "env": base.env, "agent": base.agent})
    try:
        default = presets.pretrain_defaults(**chosen)
    except ConfigError as exc:
        if "-h" not in argv and "--help" not in argv:
            return _fail(str(exc))
        default = base
    cfg = tyro.cli(PretrainConfig, default=default, args=argv, prog="edp pretrain",
                   description="Reward-free pre-training. Writes a run directory with "
                   "config.json, metrics.jsonl, eval.csv, TensorBoard events, checkpoints/, "
                   "snapshots/ and, on mazes, coverage.json and coverage.png. "
                   "Resume a stopped run with `edp pretrain --resume <run dir>`.")
    return _run_pretrain(cfg)


def _run_pretrain(cfg, resume_dir: Path | None = None) -> int:
    from edp.train import pretrain_run

    try:
        result = pretrain_run(cfg, resume_dir)
    except (ConfigError, OSError) as exc:
        return _fail(str(exc))
    except Exception as exc:
        from edp.checkpoint import CheckpointError
        from edp.loop import NonFiniteError

        if isinstance(exc, (CheckpointError, NonFiniteError)):
            return _fail(str(exc))
        raise
    summary = f"run directory: {result.run_dir}"
    if result.coverage is not None:
        summary += (f"\nfinal coverage: {result.coverage:.4f} "
                    f"(figure: {result.run_dir / 'coverage.png'})")
    print(summary)
    return 0


def _resume(argv: list[str]) -> int:
    from edp.config import PretrainConfig, from_json
    from edp.rundir import read_config

    parser = argparse.ArgumentParser(prog="edp pretrain --resume")
    parser.add_argument("--resume", type=Path, required=True,
                        help="run directory to continue from its latest checkpoint")
    args = parser.parse_args(argv)
    try:
        cfg = from_json(PretrainConfig, read_config(args.resume))
    except (FileNotFoundError, TypeError, KeyError, ValueError) as exc:
        return _fail(f"cannot resume {args.resume}: {exc}")
    return _run_pretrain(cfg, args.resume)


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
                   description="Collect run directories into results.csv, report.md and figures "
                   "(maze coverage: mean, std, bootstrap CI, curves).")
    try:
        path = write_report(cfg)
    except FileNotFoundError as exc:
        return _fail(str(exc))
    print(f"report: {path}")
    return 0


COMMANDS = {"pretrain": pretrain, "bench": bench, "report": report}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        return _fail(f"unknown command '{command}'; valid commands: {', '.join(COMMANDS)}")
    return COMMANDS[command](rest)


if __name__ == "__main__":
    sys.exit(main())

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


def _pretrain_parts():
    """(config class, preset defaults from the pre-parsed flags, the flags read first)."""
    from edp import presets
    from edp.config import PretrainConfig

    def default(chosen: dict[str, str]) -> PretrainConfig:
        frames = _int_or_none(chosen.pop("frames"))  # tyro reports a malformed value below
        return presets.pretrain_defaults(**chosen, frames=frames)

    base = PretrainConfig()
    return PretrainConfig, default, {"preset": base.preset, "env": base.env, "agent": base.agent,
                                     "frames": None}


def pretrain(argv: list[str]) -> int:
    from edp.devices import expose_cpu_cores

    expose_cpu_cores()  # before anything starts JAX: a group of maze seeds spans the cores
    from edp.train import pretrain_run

    return _train_command(
        argv, "pretrain", pretrain_run, *_pretrain_parts(),
        "Reward-free pre-training. Writes a run directory with config.json, metrics.jsonl, "
        "eval.csv, TensorBoard events, checkpoints/, snapshots/ and, on mazes, coverage.json "
        "and coverage.png. Resume a stopped run with `edp pretrain --resume <run dir>`.")


def parse_config(command: str, argv: list[str]):
    """The config an `edp pretrain|finetune` command line builds, printing nothing: a bad flag
    or value is a one-line ConfigError (tyro's message line). What `edp sweep` checks every
    run's arguments with."""
    import contextlib
    import io

    import tyro

    cls, default, preparsed = PARTS[command]()
    try:
        defaults = default(_preparse(argv, preparsed))
    except OSError as exc:
        raise ConfigError(str(exc)) from exc
    text = io.StringIO()
    try:
        with contextlib.redirect_stderr(text), contextlib.redirect_stdout(text):
            return tyro.cli(cls, default=defaults, args=argv, prog=f"edp {command}")
    except SystemExit:
        raise ConfigError(boxed_message(text.getvalue())) from None


def boxed_message(text: str) -> str:
    """The message of tyro's error box (title, rule, message, ...: the line after the first
    rule), or the last line of any other text; box drawing removed."""
    raw = text.splitlines()
    rows = [line.strip(" │╭╮╰╯─-") for line in raw]
    ruled = any(not row and ("─" in line or "---" in line)
                for row, line in zip(rows, raw, strict=True))
    content = [row for row in rows if row]
    if ruled and len(content) > 1:
        return content[1]
    return content[-1] if content else ""


def _train_command(argv: list[str], command: str, run_fn, config_cls, default,
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
    from edp.config import PretrainConfig
    from edp.envs import EnvId
    from edp.loop import NonFiniteError

    if cfg.wandb_project and importlib.util.find_spec("wandb") is None:
        return _fail("--wandb-project needs W&B: pip install 'edp[wandb]'")
    try:
        result = run_fn(cfg, resume_dir)
    except (ConfigError, OSError, CheckpointError, NonFiniteError) as exc:
        return _fail(str(exc))
    # reward-free maze pre-training keeps the maze's inherited goal reward only as a record
    note = " (maze goal reward, unused in pre-training)" \
        if isinstance(cfg, PretrainConfig) and EnvId.parse(cfg.env).is_maze else ""
    for one in result if isinstance(result, list) else [result]:
        print(_summary(one, note))
    return 0


def _summary(result, eval_note: str) -> str:
    from edp.loop import describe

    summary = f"run directory: {result.run_dir}"
    if result.final_eval:
        summary += f"\nfinal evaluation{eval_note}: {describe(result.final_eval)}"
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
    parser.add_argument("--repair-logs", action="store_true",
                        help="resume although metrics.jsonl / eval.csv lack records before the "
                        "checkpoint or hold lines that do not parse: those lines are dropped "
                        "and the gaps recorded in <run>/repairs.txt")
    args = parser.parse_args(argv)
    dirs = args.resume if several else [args.resume]
    configs = []
    for run_dir in dirs:
        try:
            data = read_config(run_dir)
            missing = [k for k in ("env", "seed", "frames") if k not in data]
            if missing:  # newer fields may be absent (defaults), never what identifies the run
                raise ConfigError(f"config.json has no '{missing[0]}'")
            if several:  # runs from before the compiled loop trained in the host loop
                data.setdefault("loop", "host")
            configs.append(from_json(config_cls, data))
            _check_logs(run_dir, configs[-1], args.repair_logs)
        except (OSError, TypeError, KeyError, ValueError) as exc:
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


def _check_logs(run_dir: Path, cfg, repair: bool) -> None:
    """The logs must hold everything up to the checkpoint (or be repaired, with a record)."""
    import time

    from edp.checkpoint import latest
    from edp.sinks import LogError, check_logs

    found = latest(run_dir / "checkpoints")
    if found is None:
        return  # the run reports that it has nothing to resume
    try:
        problems = check_logs(run_dir, int(found.name), cfg.log_every, cfg.num_envs,
                              getattr(cfg, "eval_every", 0), repair)
    except LogError as exc:
        raise LogError(f"{exc}; `--repair-logs` resumes with what can be trusted") from exc
    if problems:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        with open(run_dir / "repairs.txt", "a") as f:
            f.writelines(f"{stamp} resume from checkpoint {found.name}: {p}\n" for p in problems)
        print(f"edp: warning: {problems[0]}; resuming with the gap (recorded in "
              f"{run_dir / 'repairs.txt'})", file=sys.stderr)


def _finetune_parts():
    from edp.finetune.config import FinetuneConfig, defaults

    def default(chosen: dict[str, str]) -> FinetuneConfig:
        return defaults(chosen["preset"], chosen["method"], _snapshot_backbone(chosen["snapshot"]))

    base = FinetuneConfig()
    return FinetuneConfig, default, {"preset": base.preset, "method": base.method,
                                     "snapshot": None}


def finetune(argv: list[str]) -> int:
    from edp.finetune.run import finetune_run

    return _train_command(
        argv, "finetune", finetune_run, *_finetune_parts(),
        "Fine-tune on a downstream task (URLB protocol: 4,000 seed frames, evaluation every "
        "10,000 frames, frame 0 included). Writes a run directory like `edp pretrain`, with raw "
        "and expert-normalised returns in eval.csv. Resume with `edp finetune --resume <run "
        "dir>`.")


PARTS = {"pretrain": _pretrain_parts, "finetune": _finetune_parts}


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
    from edp.loop import NonFiniteError, describe

    cfg = tyro.cli(EvalConfig, args=argv, prog="edp eval",
                   description="Re-evaluate a run's latest checkpoint with the deterministic "
                   "policy on fresh episodes; prints mean +- std (and the expert-normalised "
                   "mean on URLB tasks).")
    try:
        row, frame, video = evaluate_run(cfg)
    except (ConfigError, OSError, CheckpointError, NonFiniteError, ValueError) as exc:
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
                   "bootstrap CIs, probability of improvement, curves per method). results.csv "
                   "names each run relative to the working directory when it lies under it.")
    try:
        path = write_report(cfg)
    except (ConfigError, OSError) as exc:
        return _fail(str(exc))
    print(f"report: {path}")
    return 0


COMMANDS = {"pretrain": pretrain, "finetune": finetune, "eval": evaluate, "bench": bench,
            "report": report, "sweep": sweep}
COMPILING = ("pretrain", "finetune", "eval", "bench")  # share compiled programs across runs


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
    if command in COMPILING:
        from edp.compile_cache import enable_compile_cache

        enable_compile_cache()
    return COMMANDS[command](rest)


if __name__ == "__main__":
    sys.exit(main())

"""`edp sweep`: a grid of runs (envs x agents x seeds, then x tasks x methods) as Ray tasks.

Each run is one `python -m edp.cli ...` subprocess inside a Ray task, so a crashing run cannot
take the driver down; maze pre-training runs of the compiled loop that differ only in their
seed share one such process (`edp pretrain --seeds ...`, docs/compiled_loop.md). The run root
is the sweep's only state: a run is done when its directory has result.json, so invoking the
same sweep again launches only what is missing, resumes incomplete runs from their last
checkpoint and restarts those that have none."""

from __future__ import annotations

import dataclasses
import math
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import threading
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from edp.config import PRESETS, ConfigError, Preset, check_seed, parse_env
from edp.envs import EnvId

SWEEP_SETS = ("--env", "--agent", "--method", "--seed", "--out", "--preset", "--frames",
              "--snapshot", "--resume")  # flags that the pass-through arguments may not set
PASSTHROUGH = ("--pretrain-args", "--finetune-args")
STDERR_TAIL = 20
CONNECT_TIMEOUT = 30.0  # seconds to reach and join a cluster given by --address
CONFIG_ERROR = 2  # a run's exit code for a bad configuration: retrying cannot help
JOIN_THREAD = "edp-ray-join"


@dataclass(frozen=True)
class SweepConfig:
    """A grid of pre-training (and fine-tuning) runs, run as Ray tasks into one run root."""

    envs: tuple[str, ...] = ("maze/square_a",)
    """Pre-training environments."""
    agents: tuple[str, ...] = ("edp",)
    """Pre-training agents."""
    seeds: tuple[int, ...] = (0,)
    """Seeds; fine-tuning seed s starts from the snapshot of pre-training seed s."""
    preset: Preset = "fast"
    """Preset of every run."""
    out: Path = Path("runs")
    """Shared run root (on a cluster: a path every node sees). One sweep per root at a time;
    runs are matched by env, agent/method, seed, preset and frames, not by extra flags, so
    sweep other settings into separate roots."""
    frames: int | None = None
    """Pre-training frames per run (default: the preset's)."""
    pretrain_args: str = ""
    """Further flags for every `edp pretrain`, one quoted string, e.g. "--seed-frames 1000"."""
    tasks: tuple[str, ...] = ()
    """Downstream tasks; each fine-tunes the snapshots pre-trained on its domain (urlb/walker_run
    <- urlb/walker, maze/square_a:far_end <- maze/square_a). Empty: pre-training only."""
    methods: tuple[str, ...] = ("ddpg",)
    """Fine-tuning methods: ddpg (every agent's snapshot) and the diffusion methods edp, idql,
    dql, qsm, dipo (edp snapshots only: they fine-tune its diffusion policy). Random agents'
    snapshots are not fine-tuned (no policy)."""
    scratch: bool = False
    """Also train ddpg from scratch (no snapshot) on every task and seed: the URLB baseline."""
    finetune_frames: int | None = None
    """Fine-tuning frames per run (default: the preset's)."""
    finetune_args: str = ""
    """Further flags for every `edp finetune`, one quoted string."""
    address: str | None = None
    """Ray cluster to join: `auto` or host:port. Default: start a local Ray instance."""
    num_cpus: int | None = None
    """CPUs of the local Ray instance (default: all of this machine's)."""
    cpus_per_run: float = 1.0
    """CPUs Ray reserves for each run (a process of several seeds: that many times, at most
    one node's CPUs)."""
    seeds_per_process: int = 8
    """Maze pre-training runs of the compiled loop that differ only in their seed share one
    process of up to this many seeds, split across the node's cores or GPUs (1: a process per
    run)."""
    max_retries: int = 2
    """Times a failed run is started again (resuming if it left a checkpoint) before it is
    reported failed."""
    dry_run: bool = False
    """List every run with what would happen to it (done / resume / fresh / waits) and exit."""


@dataclass(frozen=True)
class RunSpec:
    """One run of the grid: its CLI arguments and the config.json values that identify it."""

    kind: Literal["pretrain", "finetune"]
    env: str
    name: str  # the run's directory under <out>/<env>/: the agent, METHOD_from_AGENT or _scratch
    seed: int
    args: tuple[str, ...]  # `edp` arguments of a fresh start (a fine-tune's --snapshot added later)
    identity: tuple[tuple[str, object], ...]  # config.json values a run of this spec has
    after: RunSpec | None = None  # the pre-training run whose snapshot a fine-tune starts from
    group: tuple[str, ...] | None = None  # runs with the same group may share one process

    @property
    def label(self) -> str:
        return f"{self.kind} {self.env} {self.name} seed {self.seed}"


@dataclass(frozen=True)
class Decision:
    action: Literal["done", "resume", "fresh"]
    run_dir: Path | None  # the finished run, or the one to resume
    stale: tuple[Path, ...] = ()  # incomplete runs with nothing to resume: deleted before starting


def expand(cfg: SweepConfig) -> list[RunSpec]:
    """The grid in launch order: pre-training runs, then the fine-tunes that wait for them."""
    out = str(Path(cfg.out).absolute())
    unique = lambda values: tuple(dict.fromkeys(values))  # --seeds 0 0 is one run
    cfg = dataclasses.replace(cfg, envs=unique(cfg.envs), agents=unique(cfg.agents),
                              seeds=unique(cfg.seeds), tasks=unique(cfg.tasks),
                              methods=unique(cfg.methods))
    specs = []
    for env in cfg.envs:
        for agent in cfg.agents:
            frames = () if cfg.frames is None else ("--frames", str(cfg.frames))
            rest = ("--out", out, "--preset", cfg.preset, *frames,
                    *shlex.split(cfg.pretrain_args))
            group = _seed_group(("pretrain", "--env", env, "--agent", agent, *rest))
            for seed in cfg.seeds:
                args = ("pretrain", "--env", env, "--agent", agent, "--seed", str(seed), *rest)
                specs.append(RunSpec("pretrain", env, agent, seed, args,
                                     _identity(seed, cfg.preset, cfg.frames, agent=agent),
                                     group=group))
    from edp.agents.registry import AGENTS
    from edp.finetune.methods import NEEDS

    finetunes = []
    pretrain_env = {task: EnvId.parse(task).pretrain_env for task in cfg.tasks}
    for pre in specs:
        for task in (t for t in cfg.tasks if pretrain_env[t] == pre.env):
            for method in cfg.methods:  # what the method needs from what the agent hands over
                if NEEDS[method] in AGENTS[pre.name].handoff:
                    finetunes.append(_finetune(cfg, out, task, method, pre.seed, pre))
    if cfg.scratch:
        finetunes += [_finetune(cfg, out, task, "ddpg", seed, None)
                      for task in cfg.tasks for seed in cfg.seeds]
    return specs + finetunes


def _seed_group(args: tuple[str, ...]) -> tuple[str, ...] | None:
    """The arguments (without a seed) if they make a compiled-loop maze run, whose seeds can
    share a process; None otherwise (or if they do not parse: validate() says why)."""
    from edp.cli import parse_config
    from edp.config import uses_device_loop

    try:
        return args if uses_device_loop(parse_config("pretrain", list(args[1:]))) else None
    except ConfigError:
        return None


def _finetune(cfg: SweepConfig, out: str, task: str, method: str, seed: int,
              pre: RunSpec | None) -> RunSpec:
    frames = () if cfg.finetune_frames is None else ("--frames", str(cfg.finetune_frames))
    args = ("finetune", "--env", task, "--method", method, "--seed", str(seed), "--out", out,
            "--preset", cfg.preset, *frames, *shlex.split(cfg.finetune_args))
    name = f"{method}_from_{pre.name}" if pre else f"{method}_scratch"
    return RunSpec("finetune", task, name, seed, args,
                   _identity(seed, cfg.preset, cfg.finetune_frames, method=method), pre)


def _identity(seed: int, preset: str, frames: int | None, **name: str) -> tuple:
    values = {"seed": seed, "preset": preset, **name}
    if frames is not None:
        values["frames"] = frames
    return tuple(values.items())


def decide(spec: RunSpec, root: Path, snapshot: Path | None = None) -> Decision:
    """Done if a matching run finished; else resume the furthest checkpoint; else fresh.

    A fine-tune matches only if it started from `snapshot`, the finished pre-training run."""
    from edp.checkpoint import latest

    pattern = re.compile(rf"{spec.seed}-[0-9a-f]+")
    parent = Path(root) / spec.env / spec.name
    found = sorted(p for p in parent.glob(f"{spec.seed}-*") if pattern.fullmatch(p.name))
    mine = [p for p in found if _matches(p, spec, snapshot)]
    finished = [p for p in mine if (p / "result.json").is_file()]
    if finished:
        return Decision("done", finished[0])
    progress = {p: latest(p / "checkpoints") for p in mine}
    resumable = [p for p in mine if progress[p] is not None]
    stale = tuple(p for p in mine if progress[p] is None)
    if resumable:
        return Decision("resume", max(resumable, key=lambda p: int(progress[p].name)), stale)
    return Decision("fresh", None, stale)


def _matches(run_dir: Path, spec: RunSpec, snapshot: Path | None) -> bool:
    from edp.rundir import read_config

    try:
        config = read_config(run_dir)
    except (OSError, ValueError, KeyError):
        return False  # not (yet) a run directory: never ours to touch
    if any(config.get(key) != value for key, value in spec.identity):
        return False
    if spec.kind == "pretrain":
        return True
    theirs = config.get("snapshot")
    if snapshot is None or theirs is None:
        return snapshot is None and theirs is None
    theirs, snapshot = Path(theirs).resolve(), Path(snapshot).resolve()
    return theirs == snapshot or snapshot in theirs.parents  # the run or one of its snapshots


def launch_args(spec: RunSpec, decision: Decision, snapshot: Path | None) -> list[str]:
    if decision.action == "resume":
        return [spec.kind, "--resume", str(decision.run_dir)]
    return [*spec.args, *(("--snapshot", str(snapshot)) if snapshot else ())]


def group_args(batch: list[tuple[RunSpec, Decision]], snapshot: Path | None) -> list[str]:
    """One process for a batch of runs: one run, or seeds of one group all fresh (`--seeds`)
    or all resuming from the same checkpoint frame (`--resume` of every directory)."""
    spec, decision = batch[0]
    if len(batch) == 1:
        return launch_args(spec, decision, snapshot)
    if decision.action == "resume":
        return [spec.kind, "--resume", *(str(d.run_dir) for _, d in batch)]
    at = spec.args.index("--seed")
    return [*spec.args[:at], "--seeds", *(str(s.seed) for s, _ in batch), *spec.args[at + 2:]]


def _joinable(a: Decision, b: Decision) -> bool:
    """Two decisions one process can carry out together."""
    from edp.checkpoint import latest

    if a.action != b.action or a.action == "done":
        return False
    return a.action == "fresh" or latest(a.run_dir / "checkpoints").name == \
        latest(b.run_dir / "checkpoints").name


def validate(cfg: SweepConfig) -> None:
    """One-line errors for unknown names and impossible settings, before anything runs."""
    from edp.agents.registry import AGENT_NAMES
    from edp.finetune.methods import FINETUNE_METHODS

    if cfg.preset not in PRESETS:
        raise ConfigError(f"unknown preset '{cfg.preset}'; valid presets: {', '.join(PRESETS)}")
    for what in ("envs", "agents", "seeds"):
        if not getattr(cfg, what):
            raise ConfigError(f"--{what} is empty")
    env_ids = {name: parse_env(name) for name in (*cfg.envs, *cfg.tasks)}
    for agent in cfg.agents:
        if agent not in AGENT_NAMES:
            raise ConfigError(f"unknown agent '{agent}'; valid agents: {', '.join(AGENT_NAMES)}")
    for method in cfg.methods:
        if method not in FINETUNE_METHODS:
            raise ConfigError(f"unknown method '{method}'; valid methods: "
                              f"{', '.join(FINETUNE_METHODS)}")
    for task in cfg.tasks:
        pretrain_env = env_ids[task].pretrain_env
        if pretrain_env not in cfg.envs:
            raise ConfigError(f"task '{task}' has no pre-training env '{pretrain_env}' in --envs")
    for name, value in (("frames", cfg.frames), ("finetune-frames", cfg.finetune_frames),
                        ("cpus-per-run", cfg.cpus_per_run), ("num-cpus", cfg.num_cpus)):
        if value is not None and not (value > 0 and math.isfinite(value)):
            raise ConfigError(f"{name}={value} must be > 0 and finite")
    for seed in cfg.seeds:
        check_seed(seed)
    local_cpus = cfg.num_cpus or os.cpu_count() or 1
    if cfg.address is None and cfg.cpus_per_run > local_cpus:
        raise ConfigError(f"cpus-per-run={cfg.cpus_per_run:g} exceeds the {local_cpus} CPUs of "
                          "the local Ray instance: no run could ever start")
    if cfg.max_retries < 0:
        raise ConfigError(f"max-retries={cfg.max_retries} must be >= 0")
    if cfg.seeds_per_process < 1:
        raise ConfigError(f"seeds-per-process={cfg.seeds_per_process} must be >= 1")
    if cfg.address is not None and cfg.num_cpus is not None:
        raise ConfigError("--num-cpus sizes a local Ray instance; with --address the cluster's "
                          "CPUs are used")
    for name, value in (("pretrain-args", cfg.pretrain_args),
                        ("finetune-args", cfg.finetune_args)):
        try:
            flags = shlex.split(value)
        except ValueError as exc:
            raise ConfigError(f"--{name}: {exc}") from exc
        taken = [f for f in flags if f.split("=", 1)[0] in SWEEP_SETS]
        if taken:
            raise ConfigError(f"--{name} may not set {taken[0].split('=', 1)[0]}: the sweep "
                              "sets it")
    check_runs(expand(cfg))


def check_runs(specs: list[RunSpec]) -> None:
    """Every run's arguments through the run's own validation, without starting it (runs
    that differ only in their seed, already checked, are checked once)."""
    from edp.preflight import check_args

    checked = set()
    for spec in specs:
        key = tuple(a for i, a in enumerate(spec.args) if i == 0 or spec.args[i - 1] != "--seed")
        if key in checked:
            continue
        checked.add(key)
        try:
            check_args(spec.args, snapshot_pending=spec.after is not None)
        except ConfigError as exc:
            raise ConfigError(f"{spec.label}: {exc}") from exc


def _execute(args: list[str]) -> tuple[int, str]:
    """The Ray task: one `edp` run as a subprocess; its exit code and the tail of its stderr."""
    proc = subprocess.Popen([sys.executable, "-m", "edp.cli", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, preexec_fn=_die_with_parent)
    try:
        tail = deque(proc.stderr, maxlen=STDERR_TAIL)
        return proc.wait(), "".join(tail)
    finally:  # cancelled (KeyboardInterrupt in the task): stop the run, keep its checkpoints
        if proc.poll() is None:
            proc.terminate()
            proc.wait()


def _die_with_parent() -> None:
    """Linux: the run gets SIGTERM if its Ray worker dies, so no orphan writes to the root."""
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class Outcome:
    status: Literal["done", "failed"]
    run_dir: Path | None = None
    attempts: int = 0
    error: str = ""


class Driver:
    """Launches ready runs as CPUs free up, retries failures, then releases dependents.

    Runs are handed to Ray only when the cluster has CPUs for them, so `running` means running
    and the done / resume / fresh decision is taken just before each start."""

    def __init__(self, cfg: SweepConfig, specs: list[RunSpec], stream=None):
        import ray

        self.ray, self.cfg, self.specs, self.stream = ray, cfg, specs, stream or sys.stderr
        self.root = Path(cfg.out).absolute()
        self.task = ray.remote(max_retries=0)(_execute)
        self.node_cpus = largest_node(ray.nodes())
        self.outcomes: dict[RunSpec, Outcome] = {}
        self.attempts: dict[RunSpec, int] = {}
        self.ready: deque[RunSpec] = deque(s for s in specs if s.after is None)
        self.running: dict[object, tuple[tuple[RunSpec, ...], float]] = {}  # ref: runs, CPUs

    def run(self) -> dict[RunSpec, Outcome]:
        try:
            self._fill()
            self._progress()
            while self.running:
                [ref], _ = self.ray.wait(list(self.running), num_returns=1)
                self._finish(self.running.pop(ref)[0], ref)
                self._fill()
                self._progress()
        except KeyboardInterrupt:
            self._cancel()
            raise
        return self.outcomes

    def _fill(self) -> None:
        """Start the ready runs, several seeds of a group at once, while CPUs are free (at
        least one process always runs)."""
        while self.ready:
            first = self.ready[0]
            decision = decide(first, self.root, self._snapshot(first))
            if decision.action == "done":
                self.ready.popleft()
                self._settle(first, Outcome("done", decision.run_dir, self.attempts.get(first, 0)))
                continue
            batch = [(first, decision), *self._mates(first, decision)]
            cpus = min(len(batch) * self.cfg.cpus_per_run, self.node_cpus)
            total = self.ray.cluster_resources().get("CPU", 0)  # grows as workers join
            busy = sum(reserved for _, reserved in self.running.values())
            if self.running and busy + cpus > total:
                return
            for spec, _ in batch:
                self.ready.remove(spec)
            self._start(batch, cpus)

    def _mates(self, first: RunSpec, decision: Decision) -> list[tuple[RunSpec, Decision]]:
        """Other ready seeds of first's group that can share its process."""
        mates = []
        for spec in list(self.ready)[1:]:
            if len(mates) + 1 >= self.cfg.seeds_per_process or first.group is None:
                break
            if spec.group == first.group:
                theirs = decide(spec, self.root)
                if _joinable(theirs, decision):
                    mates.append((spec, theirs))
        return mates

    def _snapshot(self, spec: RunSpec) -> Path | None:
        return self.outcomes[spec.after].run_dir if spec.after else None

    def _start(self, batch: list[tuple[RunSpec, Decision]], cpus: float) -> None:
        for _, decision in batch:
            for path in decision.stale:
                shutil.rmtree(path, ignore_errors=True)
        ref = self.task.options(num_cpus=cpus).remote(
            group_args(batch, self._snapshot(batch[0][0])))
        self.running[ref] = (tuple(s for s, _ in batch), cpus)

    def _finish(self, specs: tuple[RunSpec, ...], ref) -> None:
        try:
            code, stderr = self.ray.get(ref)
        except self.ray.exceptions.RayError as exc:  # the worker or its node died
            code, stderr = -1, f"Ray task failed: {exc}"
        for spec in specs:
            self._conclude(spec, code, stderr)

    def _conclude(self, spec: RunSpec, code: int, stderr: str) -> None:
        decision = decide(spec, self.root, self._snapshot(spec))
        attempts = self.attempts[spec] = self.attempts.get(spec, 0) + 1
        if code == 0 and decision.action == "done":
            self._settle(spec, Outcome("done", decision.run_dir, attempts))
        elif attempts <= self.cfg.max_retries and code != CONFIG_ERROR:
            self.ready.append(spec)
        else:
            error = error_line(stderr) or f"exit code {code} and no result.json"
            left = decision.run_dir or max(decision.stale, key=lambda p: p.stat().st_mtime,
                                           default=None)
            self._settle(spec, Outcome("failed", left, attempts, error))

    def _settle(self, spec: RunSpec, outcome: Outcome) -> None:
        """Record the outcome; a finished pre-training run releases its fine-tunes."""
        self.outcomes[spec] = outcome
        for child in (s for s in self.specs if s.after == spec):
            if outcome.status == "done":
                self.ready.append(child)
            else:
                self._settle(child, Outcome("failed", error=f"its {spec.label} failed"))

    def _cancel(self) -> None:
        """Stop the running runs (they keep their checkpoints for the next invocation)."""
        if not self.running:
            return
        for ref in self.running:
            self.ray.cancel(ref)
        self.ray.wait(list(self.running), num_returns=len(self.running), timeout=30)

    def _progress(self) -> None:
        done = sum(o.status == "done" for o in self.outcomes.values())
        failed = len(self.outcomes) - done
        running = sum(len(specs) for specs, _ in self.running.values())
        left = len(self.specs) - len(self.outcomes) - running  # queued or waiting
        end = "\r" if self.stream.isatty() and self.running else "\n"
        print(f"sweep: {done} done, {running} running, {failed} failed, {left} left",
              end=end, file=self.stream, flush=True)


def run(cfg: SweepConfig, stream=None) -> dict[RunSpec, Outcome]:
    """Run the grid on the Ray instance in use, or on one started for it (and shut down)."""
    import ray

    started = not ray.is_initialized()
    if started:
        connect(cfg)
    try:
        check_cpus(cfg, ray.nodes())
        return Driver(cfg, expand(cfg), stream).run()
    finally:
        if started:
            ray.shutdown()


def error_line(stderr: str) -> str:
    """A failed run's own message: its `edp: error:` line, tyro's message (not the box
    border), or the last line (a traceback's exception)."""
    from edp.cli import boxed_message

    ours = [line.strip() for line in stderr.splitlines() if line.startswith("edp: error:")]
    return ours[-1] if ours else boxed_message(stderr)


def connect(cfg: SweepConfig, timeout: float = CONNECT_TIMEOUT) -> None:
    """Start a local Ray instance, or join --address within `timeout` seconds; a cluster that
    cannot be joined is one ConfigError naming the address and the likely cause."""
    import ray

    options = dict(include_dashboard=False, logging_level="WARNING")
    if cfg.address is None:
        ray.init(address="local", num_cpus=cfg.num_cpus, **options)
        return
    address = cfg.address
    if address != "auto":
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit():
            raise ConfigError(f"--address {address} is not host:port or auto")
        try:
            socket.create_connection((host, int(port)), timeout=timeout).close()
        except socket.gaierror:
            raise ConfigError(f"cannot join Ray at {address}: host '{host}' does not "
                              "resolve") from None
        except OSError as exc:
            raise ConfigError(f"cannot join Ray at {address}: nothing answers on port {port} "
                              f"({exc.strerror or 'timed out'}); start the head there with "
                              f"`ray start --head --port {port}`") from None
    result: list = []
    joiner = threading.Thread(target=_join, args=(address, options, result), daemon=True,
                              name=JOIN_THREAD)
    joiner.start()
    joiner.join(timeout)
    if not result:
        raise ConfigError(f"cannot join Ray at {address} within {timeout:g} s: the port "
                          f"answers but no Ray head accepted this client; {_token_hint()}")
    if isinstance(result[0], BaseException):
        lines = str(result[0]).strip().splitlines() or [type(result[0]).__name__]
        raise ConfigError(f"cannot join Ray at {address}: {lines[0]}; {_token_hint()}")


def _join(address: str, options: dict, result: list) -> None:
    import ray

    try:
        ray.init(address=address, **options)
        result.append(None)
    except BaseException as exc:  # reported by the waiting thread
        result.append(exc)


def _token_hint() -> str:
    """Ray >= 2.52 clusters may require a token, and say so only in raw log lines."""
    if os.environ.get("RAY_AUTH_MODE") == "token":
        return ("check that RAY_AUTH_TOKEN is the head's token (`ray get-auth-token` on the "
                "head)")
    return ("if the head uses token authentication, set RAY_AUTH_MODE=token and "
            "RAY_AUTH_TOKEN to its token (`ray get-auth-token` on the head)")


def largest_node(nodes: list[dict]) -> float:
    """CPUs of the largest live node of `ray.nodes()`."""
    return max((n["Resources"].get("CPU", 0) for n in nodes if n.get("Alive")), default=0)


def check_cpus(cfg: SweepConfig, nodes: list[dict]) -> None:
    """A run must fit on one node: refused before any is submitted, not left pending."""
    largest = largest_node(nodes)
    if cfg.cpus_per_run > largest:
        raise ConfigError(f"cpus-per-run={cfg.cpus_per_run:g} exceeds the largest node of the "
                          f"Ray cluster ({largest:g} CPUs): no run could ever start")


def describe(specs: list[RunSpec], root: Path) -> list[str]:
    """The dry-run listing: what an invocation would do with each run, and its command."""
    root = Path(root).absolute()
    finished: dict[RunSpec, Path] = {}
    lines = []
    for spec in specs:
        if spec.after is not None and spec.after not in finished:
            lines.append(f"waits   {spec.label} (after {spec.after.label})")
            continue
        snapshot = finished.get(spec.after) if spec.after else None
        decision = decide(spec, root, snapshot)
        if decision.action == "done":
            finished[spec] = decision.run_dir
            lines.append(f"done    {spec.label}: {decision.run_dir}")
        else:
            command = shlex.join(["edp", *launch_args(spec, decision, snapshot)])
            lines.append(f"{decision.action:<7} {spec.label}: {command}")
    return lines


def main(argv: list[str]) -> int:
    import tyro

    argv = _join_passthrough(argv)
    cfg = tyro.cli(SweepConfig, args=argv, prog="edp sweep",
                   description="Run envs x agents x seeds pre-training runs (and x tasks x "
                   "methods fine-tunes, each after its snapshot) as Ray tasks into one run root. "
                   "Invoke again after an interruption: only missing or incomplete runs run, "
                   "incomplete ones resume from their last checkpoint.")
    try:
        validate(cfg)
    except ConfigError as exc:
        print(f"edp: error: {exc}", file=sys.stderr)
        return 2
    if cfg.dry_run:
        specs = expand(cfg)
        print("\n".join(describe(specs, cfg.out)))
        if cfg.seeds_per_process > 1 and any(spec.group for spec in specs):
            print(f"(maze pre-training seeds of one env and agent share a process, up to "
                  f"{cfg.seeds_per_process} per process: --seeds-per-process)")
        return 0
    try:
        outcomes = run(cfg)
    except ConfigError as exc:
        print(f"edp: error: {exc}", file=sys.stderr, flush=True)
        if any(t.name == JOIN_THREAD and t.is_alive() for t in threading.enumerate()):
            os._exit(2)  # a join still hangs in Ray's core, which would log on past this line
        return 2
    except KeyboardInterrupt:
        print("\nsweep: interrupted; run the same command again to finish (incomplete runs "
              "resume from their last checkpoint)", file=sys.stderr)
        return 130
    failed = {s: o for s, o in outcomes.items() if o.status == "failed"}
    for spec, outcome in failed.items():
        where = f" (in {outcome.run_dir})" if outcome.run_dir else ""
        print(f"failed: {spec.label} after {outcome.attempts} attempt(s){where}: "
              f"{outcome.error}", file=sys.stderr)
    print(f"sweep: {len(outcomes) - len(failed)} of {len(outcomes)} runs done in "
          f"{Path(cfg.out).absolute()}")
    return 1 if failed else 0


def _join_passthrough(argv: list[str]) -> list[str]:
    """`--pretrain-args "--seed-frames 1000"` -> `--pretrain-args=--seed-frames 1000`: the
    value starts with -- and would otherwise be read as a flag."""
    out, i = [], 0
    while i < len(argv):
        if argv[i] in PASSTHROUGH and i + 1 < len(argv):
            out.append(f"{argv[i]}={argv[i + 1]}")
            i += 2
        else:
            out.append(argv[i])
            i += 1
    return out


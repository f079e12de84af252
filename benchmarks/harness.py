"""What the benchmark scripts share: run `edp` in a child process and time it, describe the
machine, keep results as JSON lines that a re-invoked script skips (resumable runs), and copy
finished runs' small files into a committed record tree (machines do not outlive a session)."""

from __future__ import annotations

import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def edp(command: str, args: list[str], out: Path | None) -> tuple[float, float]:
    """`edp command args --out out --quiet` in its own process, run from the repository with
    `out` relative to it (so the config.json files it writes hold no machine's paths):
    (wall seconds, CPU seconds). out=None for `--resume`, which takes both from the run."""
    where = [] if out is None else ["--out", os.path.relpath(out, REPO), "--quiet"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    cmd = [sys.executable, "-m", "edp.cli", command, *args, *where]
    code = subprocess.run(cmd, cwd=REPO).returncode
    if code:  # its one-line error is printed above; what finished before stays recorded
        raise SystemExit(f"stopped: `edp {' '.join(cmd[3:])}` exited with {code}")
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def pretrain_group(parent: Path, seeds: list[int], args: list[str], out: Path
                   ) -> tuple[float, float, bool]:
    """Train the seeds as one `edp pretrain --seeds` process into `out` (the compiled maze loop),
    or resume them if each seed has one run directory under `parent` (out/maze/<maze>/<agent>)
    with a checkpoint; a group stopped before its first checkpoint starts again.
    (wall seconds, CPU seconds, resumed)."""
    dirs = [sorted(parent.glob(f"{seed}-*")) for seed in seeds]
    resumed = all(len(found) == 1 and any((found[0] / "checkpoints").glob("*")) for found in dirs)
    if resumed:
        wall, cpu = edp("pretrain", ["--resume", *(str(found[0]) for found in dirs)], None)
    else:
        shutil.rmtree(parent, ignore_errors=True)
        wall, cpu = edp("pretrain", [*args, "--seeds", *map(str, seeds)], out)
    return wall, cpu, resumed


def record(run: Path, root: Path, records: Path, names: tuple[str, ...],
           final: tuple[str, ...] = ()) -> Path:
    """Copy a finished run's small text files (`names`, and `final` of its last checkpoint) into
    the record tree at its path relative to `root`, result.json last since it marks the record
    complete; the replay and the weights stay behind. Paths into the repository (a sweep's
    configs name its root absolutely) become relative to it. Returns the record's directory."""
    from edp import checkpoint

    target = records / run.relative_to(root)
    check_committable(target)
    if final:
        last = checkpoint.latest(run / "checkpoints")
        (target / "checkpoints" / last.name).mkdir(parents=True, exist_ok=True)
        for name in final:
            shutil.copy2(last / name, target / "checkpoints" / last.name / name)
    target.mkdir(parents=True, exist_ok=True)
    for name in sorted(names, key=lambda name: name == "result.json"):
        (target / name).write_text((run / name).read_text().replace(f"{REPO}/", ""))
    return target


def check_committable(path: Path) -> None:
    """Stop before writing a record that git would not commit: a record tree under an ignored
    folder (a preset's `runs/`, say) is lost with its machine, as the first `cpu` records were."""
    if git_ignores(path) is True:
        raise SystemExit(f"refusing to record into {repo_relative(path)}: git ignores it, so "
                         "the record would not be committed; choose another record tree")


def check_ignored(path: Path) -> None:
    """Stop before writing runs (replays, weights) where git would offer to commit them."""
    if git_ignores(path) is False:
        raise SystemExit(f"refusing to write runs into {repo_relative(path)}: git does not "
                         "ignore it, so their replays and weights could be committed; choose a "
                         "folder under a `runs/`")


def git_ignores(path: Path) -> bool | None:
    """Whether git ignores what is written in `path` (None outside the repository: the caller's
    business). Asked of an entry inside it, since a pattern for folders (`runs/`) does not match
    a folder that does not exist yet."""
    path = Path(path).resolve()
    if not path.is_relative_to(REPO):
        return None
    return subprocess.run(["git", "check-ignore", "-q", "--no-index", str(path / "entry")],
                          cwd=REPO, capture_output=True).returncode == 0


def repo_relative(path: Path) -> Path:
    return Path(path).resolve().relative_to(REPO)


CEP_KEYS = ("cep_label_max", "negative_q_std", "teacher_q", "negative_q")


def cep_records(run: Path) -> list[dict]:
    """An EDP fine-tuning run's training log lines that hold its CEP statistics (metrics.jsonl;
    a line still being written is left out)."""
    lines = (run / "metrics.jsonl").read_text().splitlines(keepends=True)
    records = [json.loads(line) for line in lines if line.endswith("\n")]
    return [r for r in records if r["phase"] == "train" and all(k in r for k in CEP_KEYS)]


def cep_statistics(records: list[dict]) -> dict[str, float]:
    """Means over log lines of how sharp the CEP labels are (label_max), how much Q varies over
    a state's negatives (q_std) and how far the teachers move in Q over them (teacher_gain);
    nan without lines."""
    def mean(key: str) -> float:
        return sum(r[key] for r in records) / len(records) if records else float("nan")

    return {"label_max": mean("cep_label_max"), "q_std": mean("negative_q_std"),
            "teacher_gain": mean("teacher_q") - mean("negative_q")}


def machine() -> str:
    """One line for a benchmark's output. It names the CPU model: the same 2-core machine kind
    has come with processors whose wall times differ by 2x, so timings are read against it."""
    import jax

    return (f"{platform.node()}: {cpu_model()}, {len(os.sched_getaffinity(0))} cores, "
            f"{jax.default_backend()}, jax {jax.__version__}, Python {platform.python_version()}")


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return f"{platform.machine()} {line.split(':', 1)[1].strip()}"
    except OSError:  # not Linux
        pass
    return platform.processor() or platform.machine()


def replay_episodes(arrays):
    """The observations (episodes, steps, dim) of a loaded run's replay, its filled episodes
    only (the slots past them are empty)."""
    replay = arrays["replay"]
    return replay["observation"][:int(replay["num_episodes"])]


def visit_grid(maze, visited, width: float):
    """Visit counts on a grid of bins `width` wide over the maze's bounding box, and a function
    that gives any points' bin indices on it (clamped to the grid), for the probes that rank
    places by how often the agent went there (edp.coverage keeps the metric's own grid)."""
    import numpy as np

    x_min, x_max, y_min, y_max = maze.bounds
    shape = (round((x_max - x_min) / width), round((y_max - y_min) / width))

    def index(points):
        points = np.asarray(points).reshape(-1, 2)
        return (np.clip(((points[:, 0] - x_min) / width).astype(int), 0, shape[0] - 1),
                np.clip(((points[:, 1] - y_min) / width).astype(int), 0, shape[1] - 1))

    counts = np.zeros(shape, np.int64)
    np.add.at(counts, index(visited), 1)
    return counts, index


def maze_bins(maze, width: float, shape: tuple[int, int]):
    """The centres (N, 2) of a grid of `shape` bins of `width` over the maze's bounding box, in
    the row-major order of `counts.ravel()`, and which of them lie in a maze cell."""
    import numpy as np

    from edp.envs.maze import inside_maze

    x_min, _, y_min, _ = maze.bounds
    gx, gy = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
    centres = np.stack([x_min + (gx.ravel() + 0.5) * width, y_min + (gy.ravel() + 0.5) * width], 1)
    return centres, inside_maze(maze, centres)


def load_maze_run(run: Path):
    """A maze run's trained agent from its last checkpoint, for the probes that query its
    networks: (config, maze, agent, agent state, checkpoint meta, checkpoint arrays with the
    replay). Stops with one line when the run has no loadable checkpoint or its last checkpoint
    keeps no replay (every probe reads the visited states)."""
    import jax

    from edp import checkpoint
    from edp.agents.registry import make_agent
    from edp.config import PretrainConfig, from_json, resolve
    from edp.envs import EnvId
    from edp.envs.maze import get_maze
    from edp.rundir import read_config

    try:
        cfg = resolve(from_json(PretrainConfig, read_config(run)))
    except FileNotFoundError as exc:  # a typo in the path, or not a run directory
        raise SystemExit(str(exc)) from None
    last = checkpoint.latest(run / "checkpoints")
    if last is None:
        raise SystemExit(f"{run} has no checkpoint")
    agent = make_agent(cfg, 2, 2)
    try:
        state, meta, arrays = checkpoint.load(last, agent.init(jax.random.PRNGKey(0)))
    except checkpoint.CheckpointError as exc:  # a record keeps no weights, say
        raise SystemExit(f"{run}: {exc}") from None
    if "replay" not in arrays:
        raise SystemExit(f"{run}'s last checkpoint has no replay")
    return cfg, get_maze(EnvId.parse(cfg.env).maze), agent, state, meta, arrays


class Results:
    """A results.jsonl: one JSON object per finished measurement, appended as it finishes."""

    def __init__(self, path: Path):
        self.path = path

    def rows(self) -> list[dict]:
        if not self.path.is_file():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]

    def append(self, row: dict) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps(row) + "\n")
        print(json.dumps(row), flush=True)

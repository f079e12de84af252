"""`edp sweep`: grid expansion, the done / resume / fresh decision, and real sweeps on local Ray."""

import dataclasses
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edp.config import ConfigError
from edp.sweep import (
    Driver,
    SweepConfig,
    _execute,
    check_cpus,
    decide,
    error_line,
    expand,
    main,
    run,
)

TINY = "--seed-frames 1000 --eval-episodes 1 --quiet"


def fabricate(root: Path, env: str, name: str, run: str, finished: bool = False,
              checkpoints: tuple[int, ...] = (), **config) -> Path:
    """A run directory as `edp` leaves it: config.json, maybe checkpoints and result.json."""
    path = root / env / name / run
    path.mkdir(parents=True)
    config = {"env": env, "seed": int(run.split("-")[0]), "preset": "fast", **config}
    (path / "config.json").write_text(json.dumps({"config": config, "edp_version": "0"}))
    for frame in checkpoints:
        (path / "checkpoints" / str(frame)).mkdir(parents=True)
    if finished:
        (path / "result.json").write_text("{}")
    return path


def test_grid_expands_pretraining_then_finetunes_that_wait_for_their_snapshot(tmp_path):
    cfg = SweepConfig(envs=("urlb/walker", "urlb/quadruped"), agents=("edp", "icm"),
                      seeds=(0, 1), tasks=("urlb/walker_run", "urlb/walker_flip~mass~0.4",
                                           "urlb/quadruped_run"),
                      methods=("ddpg", "edp"), scratch=True, frames=5000, finetune_frames=300,
                      pretrain_args="--seed-frames 100 --quiet", out=tmp_path)
    specs = expand(cfg)
    pre = [s for s in specs if s.kind == "pretrain"]
    fine = [s for s in specs if s.kind == "finetune"]
    assert specs == pre + fine and len(pre) == 2 * 2 * 2
    # walker: edp x (ddpg, edp) + icm x ddpg on 2 tasks; quadruped: the same on 1; 2 seeds each
    assert len([s for s in fine if s.after]) == (2 * 3 + 1 * 3) * 2
    assert len([s for s in fine if s.after is None]) == 3 * 2  # ddpg from scratch
    assert {s.name for s in fine} == {"ddpg_from_edp", "edp_from_edp", "ddpg_from_icm",
                                      "ddpg_scratch"}
    for spec in fine:
        if spec.after:
            assert spec.after in pre and spec.after.seed == spec.seed
            assert spec.env.startswith(spec.after.env + "_")
            assert spec.name.endswith(f"_from_{spec.after.name}")
    first = pre[0]
    assert first.args == ("pretrain", "--env", "urlb/walker", "--agent", "edp", "--seed", "0",
                          "--out", str(tmp_path.absolute()), "--preset", "fast", "--frames",
                          "5000", "--seed-frames", "100", "--quiet")
    assert dict(first.identity) == {"seed": 0, "preset": "fast", "agent": "edp", "frames": 5000}
    run = next(s for s in fine if s.name == "edp_from_edp")
    assert run.args[:6] == ("finetune", "--env", "urlb/walker_run", "--method", "edp", "--seed")
    assert "--snapshot" not in run.args and run.args[-2:] == ("--frames", "300")
    assert len({s.label for s in specs}) == len(specs)
    maze = expand(SweepConfig(envs=("maze/square_a",), tasks=("maze/square_a:far_end",)))
    assert [(s.env, s.name, s.after) for s in maze] == [
        ("maze/square_a", "edp", None), ("maze/square_a:far_end", "ddpg_from_edp", maze[0])]
    # seeds may share a process only in the compiled maze loop
    assert maze[0].group and maze[1].group is None and all(s.group is None for s in specs)
    host = expand(SweepConfig(envs=("maze/square_a",), pretrain_args="--loop host"))
    assert host[0].group is None


@pytest.mark.parametrize("args, message", [
    (["--envs", "maze/nowhere"], "unknown env 'maze/nowhere'; valid envs: maze/square_a"),
    (["--agents", "nobody"], "unknown agent 'nobody'; valid agents: edp"),
    (["--tasks", "urlb/walker_run"], "task 'urlb/walker_run' has no pre-training env "
     "'urlb/walker' in --envs"),
    (["--tasks", "maze/square_a:far_end", "--methods", "sgd"], "unknown method 'sgd'; valid "
     "methods"),
    (["--tasks", "maze/square_b:far_end"], "task 'maze/square_b:far_end' has no pre-training "
     "env 'maze/square_b' in --envs"),
    (["--pretrain-args", "--seed 3 --quiet"], "--pretrain-args may not set --seed"),
    (["--finetune-args=--out=x"], "--finetune-args may not set --out"),
    (["--max-retries", "-1"], "max-retries=-1 must be >= 0"),
    (["--cpus-per-run", "0"], "cpus-per-run=0.0 must be > 0"),
    (["--address", "auto", "--num-cpus", "2"], "--num-cpus sizes a local Ray instance"),
])
def test_bad_sweep_is_a_one_line_error(tmp_path, capsys, args, message):
    assert main(["--out", str(tmp_path), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("edp: error: ") and "\n" not in err and message in err
    assert not any(tmp_path.iterdir())


def test_decision_done_resume_fresh_on_fabricated_run_dirs(tmp_path):
    cfg = SweepConfig(envs=("maze/square_a",), agents=("edp",), seeds=(1,), frames=2000,
                      tasks=("maze/square_a:far_end",), methods=("edp",), finetune_frames=500,
                      out=tmp_path)
    pre, fine = expand(cfg)
    assert decide(pre, tmp_path) == decide(pre, tmp_path / "nowhere")
    assert decide(pre, tmp_path).action == "fresh" and decide(pre, tmp_path).stale == ()
    env = "maze/square_a"
    # not this spec: another seed (10 is not 1), preset or frame budget, or not a run at all
    fabricate(tmp_path, env, "edp", "10-aaaaaa", True, agent="edp", frames=2000)
    fabricate(tmp_path, env, "edp", "1-bbbbbb", True, agent="edp", frames=2000, preset="paper")
    fabricate(tmp_path, env, "edp", "1-cccccc", True, agent="edp", frames=9000)
    (tmp_path / env / "edp" / "1-dddddd").mkdir()
    assert decide(pre, tmp_path).action == "fresh"
    empty = fabricate(tmp_path, env, "edp", "1-eeeeee", agent="edp", frames=2000)
    decision = decide(pre, tmp_path)
    assert decision.action == "fresh" and decision.stale == (empty,)
    early = fabricate(tmp_path, env, "edp", "1-ffffff", checkpoints=(500,), agent="edp",
                      frames=2000)
    late = fabricate(tmp_path, env, "edp", "1-abcdef", checkpoints=(500, 1500), agent="edp",
                     frames=2000)
    decision = decide(pre, tmp_path)
    assert decision.action == "resume" and decision.run_dir == late
    assert decision.stale == (empty,) and early.is_dir()
    done = fabricate(tmp_path, env, "edp", "1-000000", True, agent="edp", frames=2000)
    assert decide(pre, tmp_path).action == "done" and decide(pre, tmp_path).run_dir == done

    # a fine-tune is this spec's only if it started from this pre-training run
    fields = {"method": "edp", "frames": 500}
    task = "maze/square_a:far_end"
    other = fabricate(tmp_path, task, "edp_from_edp", "1-111111", True,
                      snapshot=str(early / "snapshots" / "500"), **fields)
    assert decide(fine, tmp_path, done).action == "fresh"
    assert decide(fine, tmp_path, early).run_dir == other  # a snapshot inside the run matches
    mine = fabricate(tmp_path, task, "edp_from_edp", "1-222222", checkpoints=(100,),
                     snapshot=str(done), **fields)
    assert decide(fine, tmp_path, done) == decide(fine, tmp_path, done)
    assert decide(fine, tmp_path, done).run_dir == mine
    assert decide(fine, tmp_path, done).action == "resume"


def test_dry_run_lists_what_would_happen(tmp_path, capsys):
    env = "maze/square_a"
    fabricate(tmp_path, env, "edp", "0-aaaaaa", True, agent="edp", frames=2000)
    fabricate(tmp_path, env, "edp", "1-bbbbbb", checkpoints=(1000,), agent="edp", frames=2000)
    code = main(["--envs", env, "--seeds", "0", "1", "2", "--frames", "2000", "--tasks",
                 "maze/square_a:far_end",
                 "--out", str(tmp_path), "--pretrain-args", "--seed-frames 10", "--dry-run"])
    lines = capsys.readouterr().out.splitlines()
    assert code == 0 and len(lines) == 7
    assert lines[6] == ("(maze pre-training seeds of one env and agent share a process, up to 8 "
                        "per process: --seeds-per-process)")
    assert lines[0].startswith("done    pretrain maze/square_a edp seed 0:")
    assert lines[1].endswith(f"edp pretrain --resume {tmp_path / env / 'edp' / '1-bbbbbb'}")
    assert lines[2].startswith("fresh   pretrain maze/square_a edp seed 2: edp pretrain --env")
    assert lines[2].endswith("--frames 2000 --seed-frames 10")
    assert lines[3].startswith("fresh   finetune maze/square_a:far_end ddpg_from_edp seed 0: ")
    assert f"--snapshot {tmp_path / env / 'edp' / '0-aaaaaa'}" in lines[3]
    assert lines[4].startswith("waits   finetune maze/square_a:far_end ddpg_from_edp seed 1 "
                               "(after pretrain maze/square_a edp seed 1)")


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    yield ray
    ray.shutdown()


def test_sweep_runs_the_grid_once_then_only_what_is_missing(local_ray, tmp_path):
    cfg = SweepConfig(envs=("maze/square_a", "maze/square_b"), agents=("random",), seeds=(0, 1),
                      frames=2000, pretrain_args=TINY, out=tmp_path)
    progress = io.StringIO()
    outcomes = run(cfg, progress)
    assert len(outcomes) == 4 and all(o.status == "done" for o in outcomes.values())
    assert all(o.attempts == 1 and (o.run_dir / "result.json").is_file()
               for o in outcomes.values())
    assert progress.getvalue().splitlines()[-1] == "sweep: 4 done, 0 running, 0 failed, 0 left"
    assert "sweep: 0 done, 2 running, 0 failed, 2 left" in progress.getvalue()
    dirs = sorted(p for p in tmp_path.glob("maze/*/random/*"))
    assert len(dirs) == 4

    again = run(cfg, io.StringIO())
    assert all(o.status == "done" and o.attempts == 0 for o in again.values())
    assert sorted(p for p in tmp_path.glob("maze/*/random/*")) == dirs

    # interrupted runs: one after its last checkpoint (resumed), one before any (restarted)
    resumed, restarted = dirs[0], dirs[1]
    (resumed / "result.json").unlink()
    (restarted / "result.json").unlink()
    shutil.rmtree(restarted / "checkpoints")
    third = run(cfg, io.StringIO())
    ran = {o.run_dir: o.attempts for o in third.values() if o.attempts}
    assert len(ran) == 2 and ran[resumed] == 1 and not restarted.exists()
    assert all((o.run_dir / "result.json").is_file() for o in third.values())
    assert len(list(tmp_path.glob("maze/*/random/*"))) == 4


def test_seeds_of_a_maze_grid_share_processes(local_ray, tmp_path):
    """Three seeds, two per process: `--seeds 0 1` on two CPUs, then `--seed 2` on one; each
    seed still gets its own finished run directory. Then a resume of two killed seeds that
    stopped at the same checkpoint is one `--resume` process."""
    cfg = SweepConfig(envs=("maze/square_a",), agents=("random",), seeds=(0, 1, 2),
                      seeds_per_process=2, frames=1000, pretrain_args=TINY, out=tmp_path)
    launched = []

    class Task:  # runs each launch at once, recording its arguments and CPUs
        def options(self, num_cpus):
            self.cpus = num_cpus
            return self

        def remote(self, args):
            launched.append((args, self.cpus))
            return local_ray.put(_execute(args))

    def sweep():
        launched.clear()
        driver = Driver(cfg, expand(cfg), io.StringIO())
        driver.task = Task()
        return driver.run()

    outcomes = sweep()
    assert [(a[a.index("--seeds") + 1:a.index("--seeds") + 3] if "--seeds" in a else
             a[a.index("--seed") + 1], cpus) for a, cpus in launched] == [(["0", "1"], 2), ("2", 1)]
    assert sorted(o.run_dir.name[0] for o in outcomes.values()) == ["0", "1", "2"]
    for outcome in outcomes.values():
        config = json.loads((outcome.run_dir / "config.json").read_text())["config"]
        assert config["seed"] == int(outcome.run_dir.name[0]) and config["seeds"] == []
        assert (outcome.run_dir / "result.json").is_file() and outcome.status == "done"
    killed = sorted(o.run_dir for o in outcomes.values())[:2]
    for run_dir in killed:
        (run_dir / "result.json").unlink()
    again = sweep()
    assert launched == [(["pretrain", "--resume", *map(str, killed)], 2)]
    assert all(o.status == "done" for o in again.values())


def test_run_failing_with_exit_2_is_not_retried_and_its_error_line_shown(local_ray, tmp_path,
                                                                          capsys):
    (tmp_path / "maze/square_a").mkdir(parents=True)
    (tmp_path / "maze/square_a/edp").write_text("in the way")  # edp's run root cannot exist
    code = main(["--envs", "maze/square_a", "--agents", "random", "edp", "--frames", "1000",
                 "--pretrain-args", TINY, "--max-retries", "3", "--out", str(tmp_path)])
    out, err = capsys.readouterr()
    assert code == 1
    assert "sweep: 1 of 2 runs done" in out
    failed = [line for line in err.splitlines() if line.startswith("failed:")]
    assert len(failed) == 1
    assert failed[0].startswith("failed: pretrain maze/square_a edp seed 0 after 1 attempt(s)")
    assert failed[0].endswith("edp: error: cannot create run root "
                              f"{tmp_path / 'maze/square_a/edp'}: File exists")
    assert "sweep: 1 done, 0 running, 1 failed, 0 left" in err


# Kills the first `edp pretrain` run started under it (a crash, exit -9), once.
KILL_ONCE = """
import os, signal, sys
marker = os.environ.get("EDP_TEST_KILL_ONCE")
if marker and "edp.cli" in sys.orig_argv and "pretrain" in sys.orig_argv:
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL))
    except FileExistsError:
        pass
    else:
        os.kill(os.getpid(), signal.SIGKILL)
"""


def test_crashed_run_is_retried_and_finishes(tmp_path):
    """A real sweep (its own Ray instance) whose one run is killed on its first attempt."""
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(KILL_ONCE)
    src = Path(__file__).parents[1] / "src"
    env = {**os.environ, "PYTHONPATH": f"{hooks}{os.pathsep}{src}",
           "EDP_TEST_KILL_ONCE": str(tmp_path / "killed")}
    proc = subprocess.run([sys.executable, "-m", "edp.cli", "sweep", "--agents", "random",
                           "--frames", "1000", "--pretrain-args", TINY, "--num-cpus", "1",
                           "--max-retries", "1", "--out", str(tmp_path / "runs")],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "killed").exists()  # the first attempt did crash
    assert "sweep: 1 of 1 runs done" in proc.stdout
    (run,) = (tmp_path / "runs/maze/square_a/random").iterdir()
    assert (run / "result.json").is_file()


def test_duplicate_seeds_and_grid_entries_are_one_run():
    cfg = SweepConfig(envs=("maze/square_a", "maze/square_a"), agents=("random", "random"),
                      seeds=(0, 0, 1), tasks=("maze/square_a:far_end",) * 2,
                      methods=("ddpg", "ddpg"))
    assert [(s.kind, s.seed) for s in expand(cfg)] == [
        ("pretrain", 0), ("pretrain", 1)]  # random snapshots are not fine-tuned
    cfg = dataclasses.replace(cfg, agents=("ddpg",))
    assert [(s.kind, s.seed) for s in expand(cfg)] == [
        ("pretrain", 0), ("pretrain", 1), ("finetune", 0), ("finetune", 1)]


def test_error_line_is_the_message_not_the_box():
    boxed = ("╭─ Unrecognized options ─────────╮\n│ Unrecognized options: --bogus  │\n"
             "│ ────────────────────────────── │\n│ For full helptext, run edp pretrain --help │\n"
             "╰────────────────────────────────╯\n")
    assert error_line(boxed) == "Unrecognized options: --bogus"
    plain = " Value error \n ---------- \n  Error parsing --frames: 'abc' \n ---------- \n"
    assert error_line(plain) == "Error parsing --frames: 'abc'"
    assert error_line("progress\nedp: error: frames=0 must be > 0\n") == \
        "edp: error: frames=0 must be > 0"
    assert error_line("Traceback (most recent call last):\n  x\nKeyError: 'step'\n") == \
        "KeyError: 'step'"


def test_cpus_per_run_must_fit_one_node():
    nodes = [{"Alive": True, "Resources": {"CPU": 4.0}}, {"Alive": False,
                                                          "Resources": {"CPU": 64.0}},
             {"Alive": True, "Resources": {"CPU": 8.0}}]
    check_cpus(SweepConfig(cpus_per_run=8), nodes)
    with pytest.raises(ConfigError, match=r"^cpus-per-run=9 exceeds the largest node of the "
                       r"Ray cluster \(8 CPUs\): no run could ever start$"):
        check_cpus(SweepConfig(cpus_per_run=9), nodes)


def test_joining_a_port_that_is_not_a_ray_head_gives_up_in_bounded_time(tmp_path):
    """Something listens but never speaks Ray: one line after the timeout, not a hang."""
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    code = ("from edp.sweep import SweepConfig, connect\n"
            f"connect(SweepConfig(address='127.0.0.1:{port}'), timeout=5)")
    try:
        start = time.monotonic()
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              timeout=120)
        took = time.monotonic() - start
    finally:
        server.close()
    assert proc.returncode != 0 and took < 60
    (line,) = [x for x in proc.stderr.splitlines() if x.startswith("edp.errors.ConfigError")]
    assert line.startswith(f"edp.errors.ConfigError: cannot join Ray at 127.0.0.1:{port} "
                           "within 5 s: the port answers but no Ray head accepted this client")
    assert "RAY_AUTH_TOKEN" in line


def test_finetune_starts_from_its_finished_pretraining_run(local_ray, tmp_path):
    net = "--ddpg.hidden-dim 32 --ddpg.batch-size 32"
    cfg = SweepConfig(envs=("maze/square_a",), agents=("ddpg",), seeds=(0,), frames=1000,
                      pretrain_args=f"{TINY} {net}", tasks=("maze/square_a:far_end",),
                      methods=("ddpg",), finetune_frames=1000,
                      finetune_args=f"{TINY} --eval-every 0", out=tmp_path)
    outcomes = run(cfg, io.StringIO())
    pre, fine = expand(cfg)
    assert outcomes[pre].status == outcomes[fine].status == "done"
    assert outcomes[fine].run_dir.parent == tmp_path / "maze/square_a:far_end/ddpg_from_ddpg"
    assert (outcomes[fine].run_dir / "result.json").is_file()
    snapshot = json.loads((outcomes[fine].run_dir / "config.json").read_text())["config"]
    assert outcomes[pre].run_dir in Path(snapshot["snapshot"]).parents
    again = run(cfg, io.StringIO())
    assert all(o.status == "done" and o.attempts == 0 for o in again.values())

"""The benchmarks' record trees are what outlives a machine: a record git would not commit is a
result lost with the machine, so `record()` refuses to write one (benchmarks/harness.py)."""

import json
import shutil
import subprocess
from pathlib import Path

import benchmark_scripts
import pytest

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.skipif(shutil.which("git") is None
                                or not (REPO / ".git").exists(), reason="needs a git checkout")


def _harness():
    return benchmark_scripts.load("harness.py")


def _ignored(path: str) -> bool:
    check = subprocess.run(["git", "check-ignore", "-q", "--no-index", path], cwd=REPO)
    return check.returncode == 0


@pytest.mark.parametrize("tree", ["benchmarks/coverage/runs", "benchmarks/coverage/cpu/records",
                                  "benchmarks/urlb/records", "benchmarks/finetune/records",
                                  "benchmarks/ablation/records"])
def test_the_default_record_trees_are_committed(tree):
    harness = _harness()
    path = REPO / tree / "maze" / "square_a" / "edp" / "0-abc" / "result.json"
    assert not _ignored(str(path))
    harness.check_committable(path)  # does not raise


def test_record_refuses_an_ignored_tree_and_writes_nothing(tmp_path):
    harness = _harness()
    run = tmp_path / "maze" / "square_a" / "edp" / "0-abc"
    run.mkdir(parents=True)
    (run / "result.json").write_text(json.dumps({"coverage": 0.5}))
    records = REPO / "benchmarks" / "coverage" / "cpu" / "runs"  # ignored, as `runs/` is anywhere
    assert _ignored(str(records / "x"))
    existed = records.exists()
    with pytest.raises(SystemExit, match="git ignores it"):
        harness.record(run, tmp_path, records, ("result.json",))
    assert records.exists() == existed
    # outside the repository the caller decides: the record is written
    target = harness.record(run, tmp_path, tmp_path / "records", ("result.json",))
    assert json.loads((target / "result.json").read_text()) == {"coverage": 0.5}


def test_run_roots_must_be_ignored_so_replays_and_weights_stay_out_of_commits(tmp_path):
    harness = _harness()
    harness.check_ignored(REPO / "benchmarks" / "urlb" / "runs" / "clip")  # under a `runs/`
    harness.check_ignored(REPO / "benchmarks" / "fresh" / "runs")  # a `runs/` not there yet
    harness.check_ignored(tmp_path / "runs_clip")  # outside the repository: the caller's
    with pytest.raises(SystemExit, match="git does not ignore it") as stop:
        harness.check_ignored(REPO / "benchmarks" / "urlb" / "runs_clip")
    assert "benchmarks/urlb/runs_clip" in str(stop.value) and "\n" not in str(stop.value)


def test_the_maze_probes_stop_with_one_line_on_a_path_that_is_no_run(tmp_path):
    harness = _harness()
    for path in (tmp_path / "typo", tmp_path):  # not there; there but no config.json
        with pytest.raises(SystemExit, match="not a run directory") as stop:
            harness.load_maze_run(path)
        assert "\n" not in str(stop.value)


def test_the_maze_probes_stop_with_one_line_on_a_checkpoint_without_a_replay(tmp_path):
    import jax

    from edp import checkpoint, rundir
    from edp.agents.registry import make_agent
    from edp.config import PretrainConfig, resolve

    cfg = resolve(PretrainConfig(env="maze/square_a", agent="edp"))
    rundir.write_config(tmp_path, cfg)
    state = make_agent(cfg, 2, 2).init(jax.random.PRNGKey(0))
    checkpoint.save(tmp_path / "checkpoints" / "1000", state, {"frame": 1000})  # weights only
    with pytest.raises(SystemExit, match="last checkpoint has no replay") as stop:
        _harness().load_maze_run(tmp_path)
    assert "\n" not in str(stop.value)


def test_the_urlb_runner_continues_the_most_advanced_of_a_seeds_run_directories(tmp_path):
    run = benchmark_scripts.load("urlb/run.py")
    parent = tmp_path / "urlb" / "walker_stand" / "edp_from_edp"

    def make(name, checkpoints=(), result=False):
        path = parent / name
        (path / "checkpoints").mkdir(parents=True)
        (path / "config.json").write_text("{}")
        for frame in checkpoints:
            (path / "checkpoints" / str(frame)).mkdir()
        if result:
            (path / "result.json").write_text("{}")
        return path

    stale = make("0-000aaa")  # stopped before its first checkpoint
    assert run.find_run(tmp_path, "urlb/walker_stand", "edp_from_edp", 0) == stale
    resumable = make("0-fff000", checkpoints=(50000,))
    assert run.find_run(tmp_path, "urlb/walker_stand", "edp_from_edp", 0) == resumable
    done = make("0-bbb111", checkpoints=(50000, 100000), result=True)
    assert run.find_run(tmp_path, "urlb/walker_stand", "edp_from_edp", 0) == done
    assert run.find_run(tmp_path, "urlb/walker_stand", "edp_from_edp", 1) is None

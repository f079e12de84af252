"""End-to-end runs of the real `edp` command on tiny budgets."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edp.cli import main

TINY_EDP = ["--ddpg.hidden-dim", "32", "--ddpg.batch-size", "32", "--edp.score-hidden-dim", "32",
            "--edp.score-blocks", "1", "--edp.reward-samples", "2", "--log-every", "100"]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edp.cli", *args], capture_output=True,
                          text=True, timeout=300)


def only_run_dir(root: Path) -> Path:
    runs = [p for p in root.glob("*/*/*/*") if (p / "config.json").exists()]
    assert len(runs) == 1, runs
    return runs[0]


def test_random_pretrain_writes_every_file(tmp_path):
    proc = run_cli("pretrain", "--env", "maze/square_a", "--agent", "random", "--frames", "2000",
                   "--seed-frames", "0", "--log-every", "500", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    run = only_run_dir(tmp_path)
    assert run.parent.parent.parent.name == "maze" and run.name.startswith("0-")
    for name in ["config.json", "metrics.jsonl", "eval.csv", "coverage.json", "coverage.png"]:
        assert (run / name).is_file(), name
    assert list(run.glob("events.out.tfevents.*"))
    assert (run / "checkpoints" / "2000" / "agent.msgpack").is_file()
    assert (run / "checkpoints" / "2000" / "replay.npz").is_file()
    assert (run / "snapshots" / "2000" / "agent.msgpack").is_file()
    snapshot = json.loads((run / "snapshots" / "2000" / "state.json").read_text())
    assert snapshot["agent"] == "random" and snapshot["env"] == "maze/square_a"
    assert snapshot["observation_dim"] == 2 and snapshot["config"]["frames"] == 2000
    config = json.loads((run / "config.json").read_text())
    assert config["config"]["frames"] == 2000 and config["config"]["agent"] == "random"
    coverage = json.loads((run / "coverage.json").read_text())
    assert len(coverage["curve"]) == 2000 // 50
    assert 0 < coverage["final"] == coverage["curve"][-1] <= 1
    assert np.all(np.diff(coverage["curve"]) >= 0)
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [x["frame"] for x in lines if x["phase"] == "train"] == [500, 1000, 1500, 2000]
    assert "final coverage" in proc.stdout
    assert "frames" in proc.stderr and "fps" in proc.stderr  # progress lines


def test_same_seed_same_metrics_and_runs_never_share_a_directory(tmp_path):
    args = ["pretrain", "--env", "maze/square_b", "--agent", "edp", "--frames", "400",
            "--seed-frames", "200", "--seed", "3", "--quiet", "--eval-episodes", "2",
            "--out", str(tmp_path), *TINY_EDP]
    assert main(args) == 0 and main(args) == 0
    runs = sorted(p for p in tmp_path.glob("*/*/*/*") if (p / "config.json").exists())
    assert len(runs) == 2 and runs[0] != runs[1]
    curves = [json.loads((r / "coverage.json").read_text())["curve"] for r in runs]
    assert curves[0] == curves[1]
    metrics = [(r / "metrics.jsonl").read_text().splitlines() for r in runs]
    strip = lambda line: {k: v for k, v in json.loads(line).items() if k != "fps"}
    assert [strip(x) for x in metrics[0]] == [strip(x) for x in metrics[1]]
    assert "critic_loss" in metrics[0][-2]  # learning happened and is logged
    evals = [(r / "eval.csv").read_text() for r in runs]
    assert evals[0] == evals[1]
    other = ["pretrain", "--env", "maze/square_b", "--agent", "edp", "--frames", "400",
             "--seed-frames", "200", "--seed", "4", "--quiet", "--out", str(tmp_path / "other"),
             *TINY_EDP]
    assert main(other) == 0
    run = only_run_dir(tmp_path / "other")
    assert json.loads((run / "coverage.json").read_text())["curve"] != curves[0]


@pytest.mark.parametrize("args, message", [
    (["--env", "maze/nowhere"], "unknown env 'maze/nowhere'; valid envs: maze/square_a"),
    (["--agent", "nobody"], "unknown agent 'nobody'; valid agents: edp, random, ddpg"),
    (["--ddpg.lr", "0"], "ddpg lr=0.0: must be > 0"),
    (["--edp.reward-samples", "0"], "edp reward_samples=0: must be >= 1"),
    (["--preset", "huge"], "unknown preset 'huge'; valid presets: paper, fast"),
    (["--frames", "0"], "frames=0 must be > 0"),
    (["--frames", "100", "--seed-frames", "200"], "frames=100 is less than seed-frames=200"),
    (["--discount", "1.5"], "discount=1.5 must be in (0, 1]"),
    (["--replay-capacity", "40", "--ddpg.batch-size", "32"],
     "replay-capacity=40 cannot hold one episode"),
    (["--replay-capacity", "100"], "batch size 256 exceeds replay-capacity 100"),
])
def test_bad_input_is_a_one_line_error_with_exit_code_2(tmp_path, capsys, args, message):
    code = main(["pretrain", "--out", str(tmp_path), "--quiet", *args])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith("edp: error: ") and "\n" not in err
    assert message in err
    assert not any(tmp_path.iterdir()), "nothing may be written for a bad config"


def test_unknown_command_and_help(capsys):
    assert main(["fly"]) == 2
    assert "unknown command 'fly'; valid commands: pretrain" in capsys.readouterr().err
    proc = run_cli("pretrain", "--help")
    assert proc.returncode == 0
    for flag in ["--env", "--agent", "--preset", "--frames", "--seed", "--out"]:
        assert flag in proc.stdout
    assert "Run root" in proc.stdout  # field docstrings become the help text


@pytest.mark.parametrize("args", [[], ["pretrain"]])
def test_help_into_a_closed_pipe_exits_quietly(args):
    """`edp --help | head -1`: the reader is gone before the help is written."""
    read, write = os.pipe()
    os.close(read)
    proc = subprocess.run([sys.executable, "-m", "edp.cli", *args, "--help"], stdout=write,
                          stderr=subprocess.PIPE, text=True, timeout=60)
    os.close(write)
    assert proc.returncode == 0
    assert proc.stderr == ""


@pytest.mark.parametrize("agent", ["edp", "aps", "cic", "random"])
def test_cpu_preset_is_fast_with_a_wider_busier_backbone_for_every_agent(agent):
    """The baselines get EDP's budget: only the shared DDPG's width and cadence differ."""
    import dataclasses

    from edp.presets import pretrain_defaults

    fast = pretrain_defaults("fast", "maze/square_a", agent)
    cpu = pretrain_defaults("cpu", "maze/square_a", agent)
    assert (cpu.preset, cpu.ddpg.hidden_dim, cpu.ddpg.update_every) == ("cpu", 256, 1)
    assert (fast.ddpg.hidden_dim, fast.ddpg.update_every) == (128, 2)
    assert cpu.ddpg.batch_size == fast.ddpg.batch_size == 256
    same_backbone = dataclasses.replace(cpu, preset="fast", ddpg=fast.ddpg)
    assert same_backbone == fast


def test_cpu_preset_runs_from_the_command_line(tmp_path):
    assert main(["pretrain", "--env", "maze/square_a", "--agent", "ddpg", "--preset", "cpu",
                 "--frames", "600", "--seed-frames", "200", "--log-every", "300",
                 "--out", str(tmp_path)]) == 0
    config = json.loads((only_run_dir(tmp_path) / "config.json").read_text())["config"]
    assert (config["preset"], config["ddpg"]["hidden_dim"], config["ddpg"]["update_every"]) == (
        "cpu", 256, 1)


def test_preset_snapshots_beyond_the_requested_frames_are_left_out():
    from edp.presets import pretrain_defaults

    assert pretrain_defaults("paper", "urlb/walker", "edp").snapshots == (
        100_000, 500_000, 1_000_000, 2_000_000)
    short = pretrain_defaults("paper", "urlb/walker", "edp", frames=600_000)
    assert short.snapshots == (100_000, 500_000) and short.frames == 600_000

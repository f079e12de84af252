"""A run killed with SIGKILL and resumed ends exactly like an uninterrupted run (CPU)."""

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from edp.cli import main

TINY = ["--agent", "edp", "--env", "maze/square_c", "--frames", "2000", "--seed-frames", "300",
        "--checkpoint-every", "500", "--log-every", "100", "--seed", "7", "--quiet",
        "--ddpg.hidden-dim", "32", "--ddpg.batch-size", "32", "--edp.score-hidden-dim", "32",
        "--edp.score-blocks", "1", "--edp.reward-samples", "2", "--eval-episodes", "2"]


def run_dir(root: Path) -> Path:
    (config,) = root.glob("*/*/*/*/config.json")
    return config.parent


def outputs(run: Path) -> dict:
    strip = lambda line: {k: v for k, v in json.loads(line).items() if k != "fps"}
    return {
        "metrics": [strip(x) for x in (run / "metrics.jsonl").read_text().splitlines()],
        "eval": (run / "eval.csv").read_text(),
        "coverage": json.loads((run / "coverage.json").read_text())["curve"],
        "agent": (run / "checkpoints" / "2000" / "agent.msgpack").read_bytes(),
        "replay": (run / "checkpoints" / "2000" / "replay.npz").read_bytes(),
    }


def test_sigkill_then_resume_matches_uninterrupted_run(tmp_path):
    assert main(["pretrain", *TINY, "--out", str(tmp_path / "whole")]) == 0
    expected = outputs(run_dir(tmp_path / "whole"))

    proc = subprocess.Popen([sys.executable, "-m", "edp.cli", "pretrain", *TINY, "--out",
                             str(tmp_path / "killed")])
    deadline = time.time() + 240
    while not list((tmp_path / "killed").glob("*/*/*/*/checkpoints/500")):
        assert proc.poll() is None and time.time() < deadline, "run ended before a checkpoint"
        time.sleep(0.05)
    time.sleep(random.uniform(0.0, 1.0))  # somewhere between checkpoints
    assert proc.poll() is None, "the run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    run = run_dir(tmp_path / "killed")
    assert not (run / "coverage.json").exists()
    assert main(["pretrain", "--resume", str(run)]) == 0
    got = outputs(run)
    for key in expected:
        assert got[key] == expected[key], key


def test_resume_without_checkpoint_or_run_is_a_clear_error(tmp_path, capsys):
    assert main(["pretrain", "--resume", str(tmp_path)]) == 2
    assert "no config.json" in capsys.readouterr().err

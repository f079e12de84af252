"""Bad input on every subcommand: exit code 2, one stderr line, no traceback, nothing written.

The table runs in-process against one real (tiny) run; every case first copies it into a fresh
root, may damage the copy, and then checks that the command left every file as it was.
"""

import hashlib
import itertools
import json
import re
import shutil
from pathlib import Path

import pytest

from edp.cli import main
from edp.sinks import logged_frames

RUN_ROOT = "runs"


@pytest.fixture(scope="module")
def real_run(tmp_path_factory) -> Path:
    """A finished 200-frame random-agent run with a checkpoint, snapshot and logs."""
    root = tmp_path_factory.mktemp("real") / RUN_ROOT
    assert main(["pretrain", "--env", "maze/square_a", "--agent", "random", "--frames", "200",
                 "--seed-frames", "0", "--log-every", "50", "--checkpoint-every", "100",
                 "--eval-episodes", "1", "--quiet", "--out", str(root)]) == 0
    (run,) = [p.parent for p in root.rglob("config.json")]
    return run


def _cut_metrics(run: Path) -> None:
    lines = (run / "metrics.jsonl").read_text().splitlines(keepends=True)
    (run / "metrics.jsonl").write_text("".join(lines[:1]))
    (run / "result.json").unlink()


def _garbage_line(run: Path) -> None:
    with open(run / "eval.csv", "a") as f:
        f.write("not,a,row\n")
    (run / "result.json").unlink()


def _drop_state_key(run: Path) -> None:
    state = run / "checkpoints" / "200" / "state.json"
    data = json.loads(state.read_text())
    del data["step"]
    state.write_text(json.dumps(data))
    (run / "result.json").unlink()


def _drop_config_seed(run: Path) -> None:
    data = json.loads((run / "config.json").read_text())
    del data["config"]["seed"]
    (run / "config.json").write_text(json.dumps(data))
    (run / "result.json").unlink()


def _drop_snapshot_weights(run: Path) -> None:
    (run / "snapshots" / "200" / "agent.msgpack").unlink()


def _make_file(run: Path) -> None:
    (run.parents[3] / "a-file").write_text("x")


RUN, ROOT, FILE = "{run}", "{root}", "{file}"
OUT = ["--out", ROOT]
CASES = [  # (argv, damage to the run copy or None, pattern of the one stderr line)
    (["pretrain", "--seed", "-1", *OUT], None, r"seed=-1 must be in \[0, 2147483647\]"),
    (["pretrain", "--seed", str(2**40), *OUT], None, r"seed=1099511627776 must be in"),
    (["pretrain", "--env", "maze/square_a:far_end", *OUT], None,
     r"pre-training env 'maze/square_a:far_end' is a goal task: pre-train on maze/square_a"),
    (["pretrain", "--env", "maze/nowhere", "--frames", "10", *OUT], None,
     r"unknown env 'maze/nowhere'"),
    (["pretrain", "--env", "maze/square_a", "--nstep", "51", *OUT], None,
     r"nstep=51 must be in \[1, 50\] \(the episode length\)"),
    (["pretrain", "--env", "maze/square_a", "--replay-capacity", str(10**12), *OUT], None,
     r"replay buffer \(replay-capacity=1,000,000,000,000, num-envs=1\) needs [\d.]+ GiB of "
     r"memory, this machine has"),
    (["pretrain", "--eval-episodes", str(10**9), *OUT], None,
     r"eval-episodes=1000000000 must be in \[0, 100,000\]"),
    (["pretrain", "--num-envs", "0", *OUT], None, r"num-envs=0 must be > 0"),
    (["pretrain", "--resume", f"{ROOT}/nowhere"], None, r"cannot resume .*nowhere"),
    (["pretrain", "--resume", RUN], _cut_metrics,
     r"cannot resume .*: metrics.jsonl lacks the train records of 2 frames \(100, 150\) "
     r"before the checkpoint at frame 200; `--repair-logs` resumes"),
    (["pretrain", "--resume", RUN], _garbage_line,
     r"cannot resume .*: eval.csv line 3 does not parse"),
    (["pretrain", "--resume", RUN], _drop_config_seed,
     r"cannot resume .*: config.json has no 'seed'$"),
    (["pretrain", "--resume", RUN], _drop_state_key,
     r"corrupt checkpoint .*checkpoints/200: no 'step'"),
    (["finetune", "--env", "maze/square_a:far_end", "--seed", "-5", *OUT], None,
     r"seed=-5 must be in"),
    (["finetune", "--env", "maze/nowhere", "--frames", "1", *OUT], None,
     r"unknown env 'maze/nowhere'"),
    (["finetune", "--env", "maze/square_a:far_end", "--eval-episodes", "0", *OUT], None,
     r"eval-episodes=0 must be in \[1, 100,000\]"),
    (["finetune", "--env", "maze/square_a:far_end", "--snapshot", RUN, *OUT],
     _drop_snapshot_weights, r"corrupt checkpoint .*snapshots/200: agent.msgpack is missing"),
    (["eval", RUN, "--episodes", str(10**12)], None, r"episodes=1000000000000 must be in"),
    (["eval", RUN, "--episodes", "0"], None, r"episodes=0 must be in \[1, 100,000\]"),
    (["eval", RUN, "--seed", "-1"], None, r"seed=-1 must be in"),
    (["eval", f"{ROOT}/nowhere"], None, r"nowhere is not a run directory"),
    (["eval", RUN], _drop_state_key, r"corrupt checkpoint .*checkpoints/200: state.json has "
     r"no 'step'"),
    (["report", ROOT, "--bootstrap", "0", "--out", f"{ROOT}/../rep"], None,
     r"bootstrap=0 must be in \[1, 100,000\]"),
    (["report", ROOT, "--out", FILE], _make_file, r"--out .*a-file is a file, not a directory"),
    (["report", ROOT, "--out", ROOT], None, r"--out .* holds run directories"),
    (["report", f"{ROOT}/nowhere", "--out", f"{ROOT}/../rep"], None,
     r"no such run directory or root"),
    (["bench", "--repeats", "0"], None, r"repeats=0 must be in \[1, 10,000\]"),
    (["bench", "--agent", "nobody"], None, r"unknown agent 'nobody'"),
    (["sweep", "--seeds", "-1", *OUT], None, r"seed=-1 must be in"),
    (["sweep", "--cpus-per-run", "inf", *OUT], None, r"cpus-per-run=inf must be > 0 and finite"),
    (["sweep", "--cpus-per-run", "4096", *OUT], None,
     r"cpus-per-run=4096 exceeds the \d+ CPUs of the local Ray instance"),
    (["sweep", "--frames", "2000", "--dry-run", *OUT], None,
     r"pretrain maze/square_a edp seed 0: frames=2000 is less than seed-frames=4000"),
    (["sweep", "--pretrain-args", "--bogus 1", "--dry-run", *OUT], None,
     r"pretrain maze/square_a edp seed 0: Unrecognized options: --bogus"),
    (["sweep", "--agents", "random", "--pretrain-args", "--nstep 99", *OUT], None,
     r"nstep=99 must be in \[1, 50\]"),
    (["sweep", "--tasks", "maze/square_a:far_end", "--finetune-args", "--eval-every -1",
      "--dry-run", *OUT], None, r"finetune maze/square_a:far_end ddpg_from_edp seed 0: "
     r"eval-every=-1 must be >= 0"),
    (["sweep", "--address", "nohost.invalid:6379", *OUT], None,
     r"cannot join Ray at nohost.invalid:6379: host 'nohost.invalid' does not resolve"),
    (["sweep", "--address", "127.0.0.1:1", *OUT], None,
     r"cannot join Ray at 127.0.0.1:1: nothing answers on port 1"),
]


def _digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("argv, damage, pattern", CASES, ids=[" ".join(c[0]) for c in CASES])
def test_bad_input_is_one_line_exit_2_and_changes_nothing(real_run, tmp_path, capsys, argv,
                                                          damage, pattern):
    root = tmp_path / RUN_ROOT
    shutil.copytree(real_run.parents[2], root)
    run = root / real_run.relative_to(real_run.parents[2])
    if damage is not None:
        damage(run)
    before = _digest(tmp_path)
    fill = {RUN: str(run), ROOT: str(root), FILE: str(tmp_path / "a-file")}
    args = [fill.get(a, a).replace(ROOT, str(root)) for a in argv]
    capsys.readouterr()
    assert main(args) == 2
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("edp: error: ") and re.search(pattern, lines[0]), lines[0]
    assert "Traceback" not in out + err
    assert _digest(tmp_path) == before, "a bad command changed or created files"


def test_repair_logs_resumes_and_records_the_gap(real_run, tmp_path, capsys):
    root = tmp_path / RUN_ROOT
    shutil.copytree(real_run.parents[2], root)
    run = root / real_run.relative_to(real_run.parents[2])
    _cut_metrics(run)
    assert main(["pretrain", "--resume", str(run), "--repair-logs"]) == 0
    err = capsys.readouterr().err
    assert "edp: warning: metrics.jsonl lacks the train records of 2 frames" in err
    assert "frames (100, 150) before" not in err  # the warning names the gap, not an error
    (note,) = (run / "repairs.txt").read_text().splitlines()
    assert note.endswith("resume from checkpoint 200: metrics.jsonl lacks the train records "
                         "of 2 frames (100, 150)")
    frames = [json.loads(line)["frame"] for line in (run / "metrics.jsonl").read_text()
              .splitlines() if json.loads(line)["phase"] == "train"]
    assert frames == [50]  # kept as it was: the gap is recorded, not invented
    assert (run / "result.json").is_file()


def test_logged_frames_follow_the_loops_schedule():
    """The records a resume expects are the ones the loop's `_due` writes, num_envs > 1 too."""
    for every, num_envs, below in itertools.product([1, 7, 50, 100], [1, 3, 8], [0, 1, 99, 350]):
        due = {step * num_envs for step in range(1, below + 1)
               if step * num_envs < below
               and (step * num_envs) // every != (step * num_envs - num_envs) // every}
        assert logged_frames(every, num_envs, below) == due
        assert logged_frames(every, num_envs, below, start=True) == due | {0}
    assert logged_frames(0, 1, 1000) == set()

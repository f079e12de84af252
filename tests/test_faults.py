"""Faults: a kill while a checkpoint is written, a full disk, an unwritable run root."""

import errno
import json
import random
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from edp import checkpoint
from edp.cli import main

# Saves checkpoints 1, 2, 3, ... forever, each ~24 MB so a write takes a while, pruning the
# previous one after each save like the trainer; every array holds its own frame number.
WRITER = textwrap.dedent("""
    import shutil, sys
    from pathlib import Path
    import numpy as np
    from edp import checkpoint
    root = Path(sys.argv[1])
    frame = 0
    while True:
        frame += 1
        big = {"x": np.full((3_000_000,), frame, np.float64)}
        path = checkpoint.save(root / str(frame), {"w": np.full((4,), frame, np.float32)},
                               {"frame": frame}, {"replay": big})
        for old in root.iterdir():
            if old != path and old.name.isdigit():
                shutil.rmtree(old)
        print(frame, flush=True)
""")


def test_kill_while_writing_a_checkpoint_keeps_a_loadable_one(tmp_path):
    template = {"w": np.zeros((4,), np.float32)}
    for attempt in range(4):
        root = tmp_path / str(attempt)
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(root)],
                                stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "1"  # one complete checkpoint exists
        time.sleep(random.uniform(0.0, 1.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        latest = checkpoint.latest(root)
        state, meta, arrays = checkpoint.load(latest, template)
        frame = int(latest.name)
        assert meta == {"frame": frame}
        assert np.all(state["w"] == frame) and np.all(arrays["replay"]["x"] == frame)
        # the next save (the resumed run's) cleans any half-written directory up
        checkpoint.save(root / str(frame + 1), state, {"frame": frame + 1})
        assert not (root / f".tmp-{frame + 1}").exists()


def test_interrupted_swap_of_a_resaved_frame_is_recovered(tmp_path):
    state = {"w": np.arange(3.0)}
    checkpoint.save(tmp_path / "5", state, {"frame": 5})
    (tmp_path / "5").rename(tmp_path / ".old-5")  # killed between the swap's two renames
    restored, meta, _ = checkpoint.load(checkpoint.latest(tmp_path), state)
    assert meta == {"frame": 5} and np.array_equal(restored["w"], state["w"])


def test_disk_full_while_checkpointing_is_one_line_and_keeps_the_last_checkpoint(
        tmp_path, monkeypatch, capsys):
    real_savez = np.savez

    def savez_until_full(f, **arrays):
        if ".tmp-200" in f.name:  # the checkpoint at 100 fits, the one at 200 does not
            raise OSError(errno.ENOSPC, "No space left on device")
        real_savez(f, **arrays)

    monkeypatch.setattr(checkpoint.np, "savez", savez_until_full)
    code = main(["pretrain", "--env", "maze/square_a", "--agent", "random", "--frames", "300",
                 "--seed-frames", "0", "--checkpoint-every", "100", "--quiet",
                 "--out", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("edp: error: cannot write checkpoint")
    assert "No space left on device" in err and "\n" not in err
    (run,) = [p.parent for p in tmp_path.rglob("config.json")]
    latest = checkpoint.latest(run / "checkpoints")
    assert latest.name == "100" and not list((run / "checkpoints").glob(".tmp-*"))
    meta = json.loads((latest / "state.json").read_text())
    assert meta["frame"] == 100
    monkeypatch.setattr(checkpoint.np, "savez", real_savez)
    assert main(["pretrain", "--resume", str(run)]) == 0  # space freed: the run completes
    assert (run / "result.json").is_file()


def test_unwritable_run_root_is_one_line(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    assert main(["pretrain", "--env", "maze/square_a", "--agent", "random", "--frames", "100",
                 "--seed-frames", "0", "--out", str(blocker / "runs")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("edp: error: cannot create run root") and "\n" not in err


@pytest.mark.parametrize("frames", ["0", "-5"])
def test_impossible_frames_write_nothing(tmp_path, capsys, frames):
    assert main(["pretrain", "--frames", frames, "--out", str(tmp_path / "r")]) == 2
    assert not (tmp_path / "r").exists()

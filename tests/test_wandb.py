"""`--wandb-project`: metrics.jsonl mirrored to a W&B run, checked offline by reading the records
W&B wrote (its .wandb file: a LevelDB-style log of protobuf records)."""

import json
import math
import struct
from pathlib import Path

import pytest

from edp.cli import main
from edp.sinks import Sinks


def wandb_records(run_dir: Path) -> list:
    """Every record of the run's offline W&B files, oldest run first."""
    import wandb
    from wandb.proto import wandb_internal_pb2

    wandb.teardown()  # stops W&B's service process, which writes the file behind the run

    records = []
    for path in sorted(run_dir.glob("wandb/offline-run-*/*.wandb")):
        raw, block = path.read_bytes(), 32768
        assert raw[:4] == b":W&B"
        pos, pending = 7, b""
        while pos + 7 <= len(raw):
            if block - pos % block < 7:  # a block's tail too short for a header is padding
                pos += block - pos % block
                continue
            _, length, kind = struct.unpack("<IHB", raw[pos:pos + 7])
            pending += raw[pos + 7:pos + 7 + length]
            pos += 7 + length
            if kind in (1, 4):  # a whole record, or the last piece of one
                records.append(wandb_internal_pb2.Record.FromString(pending))
                pending = b""
    return records


def history(records: list) -> list[dict]:
    """The logged rows, without W&B's own _step, _runtime and _timestamp."""
    rows = [{item.key or "/".join(item.nested_key): json.loads(item.value_json)
             for item in r.history.item}
            for r in records if r.WhichOneof("record_type") == "history"]
    return [{k: v for k, v in row.items() if not k.startswith("_")} for row in rows]


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """W&B offline and quiet, its settings and caches in the test's temp dir."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    for name in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR"):
        monkeypatch.setenv(name, str(tmp_path / name.lower()))


def test_sinks_mirror_every_record_to_an_offline_wandb_run(tmp_path, offline):
    run_dir = tmp_path / "runs" / "maze" / "square_a:far_end" / "ddpg_from_edp" / "0-abcdef"
    run_dir.mkdir(parents=True)
    config = {"env": "maze/square_a:far_end", "seed": 0, "wandb_project": "edp-test"}
    (run_dir / "config.json").write_text(json.dumps({"config": config}))
    sinks = Sinks(run_dir, ["episode_return"])
    sinks.log(1000, "train", {"critic_loss": 0.5, "actor_loss": float("nan")})
    sinks.log_eval(1000, {"episode_return": 3.0})
    sinks.log(2000, "train", {"critic_loss": 0.25, "actor_loss": -1.0})
    sinks.close()
    records = wandb_records(run_dir)
    [run] = [r.run for r in records if r.WhichOneof("record_type") == "run"]
    assert run.project == "edp-test"
    assert run.run_id == "maze-square_a_far_end-ddpg_from_edp-0-abcdef"
    logged = history(records)
    assert [row["frame"] for row in logged] == [1000, 1000, 2000]
    assert logged[0]["train/critic_loss"] == 0.5 and math.isnan(logged[0]["train/actor_loss"])
    assert logged[1] == {"frame": 1000, "eval/episode_return": 3.0}
    assert logged[2] == {"frame": 2000, "train/critic_loss": 0.25, "train/actor_loss": -1.0}
    jsonl = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["frame"] for r in jsonl] == [row["frame"] for row in logged]

    Sinks(run_dir, ["episode_return"], resume_frame=1000).close()  # a resumed run: same W&B id
    ids = [r.run.run_id for r in wandb_records(run_dir) if r.WhichOneof("record_type") == "run"]
    assert ids == [run.run_id] * 2


def test_without_wandb_the_flag_is_a_one_line_error_before_any_run(tmp_path, monkeypatch,
                                                                  capsys):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "wandb" else real(name, *a))
    assert main(["pretrain", "--env", "maze/square_a", "--agent", "random", "--frames", "100",
                 "--out", str(tmp_path / "runs"), "--wandb-project", "edp-test"]) == 2
    assert capsys.readouterr().err == "edp: error: --wandb-project needs W&B: pip install " \
                                      "'edp[wandb]'\n"
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("flag", [[], ["--wandb-project", "edp-test"]])
def test_pretrain_records_the_project_in_its_config(tmp_path, offline, flag):
    assert main(["pretrain", "--env", "maze/square_a", "--agent", "random", "--frames", "100",
                 "--seed-frames", "100", "--quiet", "--eval-episodes", "1",
                 "--out", str(tmp_path / "runs"), *flag]) == 0
    [run_dir] = (tmp_path / "runs" / "maze" / "square_a" / "random").iterdir()
    config = json.loads((run_dir / "config.json").read_text())["config"]
    assert config["wandb_project"] == (flag[1] if flag else None)
    assert [row["frame"] for row in history(wandb_records(run_dir))] == ([100] if flag else [])

"""A run killed with SIGKILL and resumed ends exactly like an uninterrupted run (CPU)."""

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from edp.cli import main

TINY_NETS = ["--ddpg.hidden-dim", "32", "--ddpg.batch-size", "32", "--edp.score-hidden-dim",
             "32", "--edp.score-blocks", "1", "--edp.reward-samples", "2"]
TINY = ["--agent", "edp", "--env", "maze/square_c", "--frames", "2000", "--seed-frames", "300",
        "--checkpoint-every", "500", "--log-every", "100", "--seed", "7", "--quiet", *TINY_NETS,
        "--eval-episodes", "2"]


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


def kill_then_resume(command: str, args: list[str], root, seeds: int = 1) -> list[Path]:
    """Start `edp <command> args`, SIGKILL it after its first checkpoint, resume it (every
    seed's run directory together); the run directories in seed order."""
    proc = subprocess.Popen([sys.executable, "-m", "edp.cli", command, *args, "--out",
                             str(root)])
    deadline = time.time() + 240
    while not list(root.glob("*/*/*/*/checkpoints/500")):
        assert proc.poll() is None and time.time() < deadline, "run ended before a checkpoint"
        time.sleep(0.05)
    time.sleep(random.uniform(0.0, 1.0))  # somewhere between checkpoints
    assert proc.poll() is None, "the run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    runs = run_dirs(root)
    assert len(runs) == seeds and not any((run / "result.json").exists() for run in runs)
    assert main([command, "--resume", *map(str, runs)]) == 0
    return runs


def run_dirs(root: Path) -> list[Path]:
    """Every run directory under root, in seed order."""
    seed = lambda path: json.loads((path / "config.json").read_text())["config"]["seed"]
    return sorted((c.parent for c in root.glob("*/*/*/*/config.json")), key=seed)


def test_sigkill_then_resume_matches_uninterrupted_run(tmp_path):
    assert main(["pretrain", *TINY, "--out", str(tmp_path / "whole")]) == 0
    expected = outputs(run_dir(tmp_path / "whole"))
    (run,) = kill_then_resume("pretrain", TINY, tmp_path / "killed")
    got = outputs(run)
    for key in expected:
        assert got[key] == expected[key], key


def test_multi_seed_run_killed_then_resumed_continues_every_seed_exactly(tmp_path):
    """Seeds trained side by side in the compiled loop resume together, each exactly."""
    args = [*TINY, "--seeds", "7", "8"]
    assert main(["pretrain", *args, "--out", str(tmp_path / "whole")]) == 0
    expected = [outputs(run) for run in run_dirs(tmp_path / "whole")]
    got = [outputs(run) for run in kill_then_resume("pretrain", args, tmp_path / "killed", 2)]
    assert expected[0]["coverage"] != expected[1]["coverage"]
    for seed_expected, seed_got in zip(expected, got, strict=True):
        for key in seed_expected:
            assert seed_got[key] == seed_expected[key], key


def test_finetune_sigkill_then_resume_matches_uninterrupted_run(tmp_path):
    """Fine-tuning evaluates at checkpoint frames: the resumed run redoes that evaluation."""
    assert main(["pretrain", "--agent", "edp", "--env", "maze/square_c", "--frames", "300",
                 "--seed-frames", "100", "--quiet", *TINY_NETS, "--out", str(tmp_path / "pre")]
                ) == 0
    args = ["--env", "maze/square_c:far_end", "--method", "ddpg", "--snapshot",
            str(run_dir(tmp_path / "pre")), "--frames", "2000", "--seed-frames", "300",
            "--checkpoint-every", "500", "--eval-every", "500", "--eval-episodes", "2",
            "--log-every", "100", "--seed", "3", "--quiet"]
    assert main(["finetune", *args, "--out", str(tmp_path / "whole")]) == 0
    expected = outputs(run_dir(tmp_path / "whole"))
    got = outputs(kill_then_resume("finetune", args, tmp_path / "killed")[0])
    assert expected["eval"].count("\n") == 1 + 5  # frames 0, 500, ..., 2000
    for key in expected:
        assert got[key] == expected[key], key


def test_resume_without_checkpoint_or_run_is_a_clear_error(tmp_path, capsys):
    assert main(["pretrain", "--resume", str(tmp_path)]) == 2
    assert "no config.json" in capsys.readouterr().err


def test_checkpoints_of_the_old_network_layout_load_into_train_states():
    """tests/fixtures/old_layout holds agent states written by the code before networks were
    TrainStates (DDPG actor/critic and IQL q/value as bare params plus `<name>_opt`), made by
    the same init and one update as here: they load, every stored array lands in the state
    unchanged, and each lands where the same update recomputed now puts a close value. Close,
    not equal: another CPU or jaxlib build rounds the update's sums differently, and gradients
    that cancel to almost nothing (Adam's second moments of 1e-10) keep no common digits, so the
    tolerance is 1e-5 of the largest number in the state; a misplaced leaf misses it."""
    import jax
    import numpy as np
    from flax import serialization

    from edp.agents.ddpg import DDPGAgent, DDPGConfig
    from edp.agents.edp import EDPAgent, EDPConfig
    from edp.checkpoint import restore_into
    from edp.finetune import methods
    from edp.finetune.idql import IDQLConfig
    from edp.finetune.iql import IQLConfig

    obs_dim = action_dim = 2
    ddpg_cfg = DDPGConfig(hidden_dim=4, batch_size=8, learning_starts=0, num_expl_steps=0)

    def batch(seed):
        rng = np.random.default_rng(seed)
        f = lambda *s: np.asarray(rng.uniform(-1, 1, (1, 8, *s)), np.float32)
        return {"observation": f(obs_dim), "action": f(action_dim), "reward": f(),
                "discount": np.full((1, 8), 0.97), "next_observation": f(obs_dim)}

    ddpg = DDPGAgent(ddpg_cfg, obs_dim, action_dim, intrinsic=False)
    edp = EDPAgent(EDPConfig(reward_samples=2, score_hidden_dim=4, score_blocks=1,
                             score_time_dim=4), ddpg_cfg, obs_dim, action_dim)
    key = jax.random.PRNGKey
    states = {"ddpg": ddpg.update(ddpg.init(key(0)), batch(1), key(1))[0],
              "edp": edp.update(edp.init(key(0)), batch(2), key(1))[0]}
    idql = methods.make_method("idql", states["edp"].policy, obs_dim, action_dim, IDQLConfig(
        batch_size=8, learning_starts=0, diffusion_steps=2, num_candidates=2,
        critic=IQLConfig(hidden_dim=4, num_layers=1)))
    states["idql"] = idql.update(idql.init(key(3)), batch(3), key(4))[0]
    for name, state in states.items():
        raw = serialization.msgpack_restore(
            (Path(__file__).parent / "fixtures" / "old_layout" / f"{name}.msgpack").read_bytes())
        assert "actor_opt" in raw.get("backbone", raw) or "q_opt" in raw["critic"]
        loaded = restore_into(state, raw, name)
        stored = sorted(np.asarray(x).tobytes() for x in jax.tree.leaves(raw))
        assert sorted(np.asarray(x).tobytes() for x in jax.tree.leaves(loaded)) == stored
        scale = max(np.abs(x).max() for x in jax.tree.leaves(state))
        for got, want in zip(jax.tree.leaves(loaded), jax.tree.leaves(state), strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * scale)

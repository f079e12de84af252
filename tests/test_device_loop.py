"""The compiled maze loop: seeds side by side, learning as a branch, files like a host run."""

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from edp.agents.registry import make_agent
from edp.cli import main
from edp.config import resolve
from edp.device_loop import _metrics_template, group_chunk, make_chunk, seed_keys, stack
from edp.device_replay import DeviceReplay
from edp.devices import SeedPlacement
from edp.envs import maze_jax
from edp.presets import pretrain_defaults

RANDOM = ["--env", "maze/square_a", "--agent", "random", "--frames", "500", "--seed-frames",
          "0", "--log-every", "250", "--eval-episodes", "1", "--quiet"]


def runs(root: Path) -> dict[int, Path]:
    """Run directories under root by seed."""
    found = {}
    for config in root.glob("*/*/*/*/config.json"):
        found[json.loads(config.read_text())["config"]["seed"]] = config.parent
    return found


def test_seeds_in_one_process_equal_separate_runs(tmp_path):
    """The random agent has no learned numbers, so a group of seeds must reproduce each seed's
    own run exactly: coverage curve, replay, and a config.json that names that seed alone.
    Three seeds on the two devices of the test session: one device also runs a padding seed."""
    assert len(jax.devices()) == 2  # tests/conftest.py
    assert main(["pretrain", *RANDOM, "--seeds", "0", "1", "2", "--out",
                 str(tmp_path / "group")]) == 0
    for seed in (0, 1, 2):
        assert main(["pretrain", *RANDOM, "--seed", str(seed), "--out",
                     str(tmp_path / f"alone{seed}")]) == 0
    group = runs(tmp_path / "group")
    assert sorted(group) == [0, 1, 2]
    for seed, run in group.items():
        (alone,) = runs(tmp_path / f"alone{seed}").values()
        config = json.loads((run / "config.json").read_text())["config"]
        assert config["seeds"] == [] and config["loop"] == "device"
        for name in ("coverage.json", "eval.csv", "result.json"):
            assert (run / name).read_text() == (alone / name).read_text(), name
        replay = np.load(run / "checkpoints" / "500" / "replay.npz")
        assert replay["observation"].shape == (10, 51, 2)
        np.testing.assert_array_equal(
            replay["observation"], np.load(alone / "checkpoints" / "500" / "replay.npz")
            ["observation"])
    curves = [json.loads((run / "coverage.json").read_text())["curve"] for run in group.values()]
    assert len(curves[0]) == 10 and curves[0] != curves[1]  # one value per episode; seeds differ


def test_an_odd_group_says_that_its_padding_seed_could_be_a_real_one(tmp_path, capsys):
    loud = [a for a in RANDOM if a != "--quiet"]
    assert main(["pretrain", *loud, "--seeds", "0", "1", "2", "--out", str(tmp_path / "a")]) == 0
    note = "note: 3 seeds fill 4 device slots; 1 more would take no longer"
    assert note in capsys.readouterr().out
    assert main(["pretrain", *loud, "--seeds", "0", "1", "--out", str(tmp_path / "b")]) == 0
    assert "device slots" not in capsys.readouterr().out


def test_a_group_is_padded_to_the_devices_and_split_evenly():
    placement = SeedPlacement(3, jax.devices()[:2])
    placed = placement.place({"x": jnp.arange(6.0).reshape(3, 2)})["x"]
    assert placed.shape == (4, 2) and placement.padded == 4
    np.testing.assert_array_equal(placed[:3], np.arange(6.0).reshape(3, 2))
    np.testing.assert_array_equal(placed[3], placed[2])  # the padding repeats the last seed
    shards = sorted((s.device.id, s.index[0].start, s.data.shape)
                    for s in placed.addressable_shards)
    assert shards == [(0, 0, (2, 2)), (1, 2, (2, 2))]
    alone = SeedPlacement(1, jax.devices()[:2])
    assert alone.padded == 1 and len(alone.sharding.device_set) == 1


def _branches_with_dots(jaxpr) -> int:
    """How many `cond` equations hold a matrix product in a branch, nested jaxprs included."""
    conds = 0
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "cond":
            conds += any("dot_general" in str(branch) for branch in eqn.params["branches"])
        for param in eqn.params.values():
            inner = getattr(param, "jaxpr", None)
            if inner is not None and eqn.primitive.name != "cond":
                conds += _branches_with_dots(inner)
    return conds


def ddpg_group(seeds: int):
    """A fast DDPG agent's chunk on square_a, and the stacked carry and keys of `seeds` seeds."""
    cfg = resolve(pretrain_defaults("fast", "maze/square_a", "ddpg"))
    agent = make_agent(cfg, 2, 2)
    replay = DeviceReplay.create(1000, 50, 2, 2, 3, 0.99)
    keys = stack([seed_keys(s) for s in range(seeds)])
    states = jax.vmap(agent.init)(keys["init"])
    metrics = _metrics_template(agent, jax.tree.map(lambda x: x[0], states), replay)
    carry = {"state": states, "replay": stack([replay] * seeds),
             "metrics": stack([metrics] * seeds), "finite": jnp.ones(seeds, bool)}
    return make_chunk(agent, maze_jax.maze_arrays("square_a"), False, 50), carry, keys


def test_learning_stays_a_branch_when_seeds_are_vmapped():
    """The update's predicate depends on the step alone, so under vmap it must stay a `cond`
    (a select would run the update at every env step)."""
    chunk, carry, keys = ddpg_group(3)
    jaxpr = jax.make_jaxpr(jax.vmap(chunk, in_axes=(0, 0, None, None)), static_argnums=3)(
        carry, keys, np.int32(0), 1)
    assert _branches_with_dots(jaxpr.jaxpr) == 1


def test_the_group_program_has_no_collective():
    """The seeds are independent, so no device may wait for another: a busy machine once
    starved one device long enough at the reset's all-reduce for XLA to abort the run
    (docs/compiled_loop.md). tests/test_devices.py shows that this check sees that one."""
    chunk, carry, keys = ddpg_group(3)
    placement = SeedPlacement(3, jax.devices()[:2])
    program = group_chunk(chunk, placement).lower(
        placement.place(carry), placement.place(keys), np.int32(0), 1).compile().as_text()
    for collective in ("all-reduce", "all-gather", "all-to-all", "collective-permute"):
        assert collective not in program


def test_runs_from_before_the_compiled_loop_resume_in_the_host_loop(tmp_path):
    """A config.json without `loop` was written by the host loop: --resume keeps using it."""
    assert main(["pretrain", *RANDOM, "--loop", "host", "--out", str(tmp_path)]) == 0
    (run,) = runs(tmp_path).values()
    data = json.loads((run / "config.json").read_text())
    del data["config"]["loop"], data["config"]["seeds"]
    (run / "config.json").write_text(json.dumps(data))
    (run / "result.json").unlink()  # stopped after its last checkpoint
    coverage = json.loads((run / "coverage.json").read_text())["curve"]
    assert main(["pretrain", "--resume", str(run)]) == 0
    assert json.loads((run / "coverage.json").read_text())["curve"] == coverage

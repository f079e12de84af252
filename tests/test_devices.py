"""Seeds across devices: one device per core in a fresh process, and a group program in which
the devices never wait for each other (tests/conftest.py gives this process two devices)."""

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from edp.devices import SeedPlacement
from edp.envs import maze_jax

PROBE = """
import json, os
import jax
from edp.devices import expose_cpu_cores
expose_cpu_cores()
print(json.dumps({"devices": len(jax.devices()), "flags": os.environ.get("XLA_FLAGS", "")}))
"""


def probe(xla_flags: str | None) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_NUM_CPU_DEVICES")}
    if xla_flags is not None:
        env["XLA_FLAGS"] = xla_flags
    done = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


cores = len(os.sched_getaffinity(0))


@pytest.mark.skipif(cores < 2, reason="needs two cores to expose two devices")
def test_each_core_is_a_device():
    assert probe(None) == {"devices": cores, "flags": ""}


def test_a_device_count_the_user_chose_is_left_alone():
    assert probe("--xla_force_host_platform_device_count=1")["devices"] == 1


def test_each_device_runs_its_seeds_without_waiting_for_the_others():
    """The maze reset's rejection sampling is a while loop; vmapped over seeds that the SPMD
    partitioner splits across devices, it ends on an all-reduce (the devices wait for each
    other at every iteration). Run per device, it has none, and draws the same starts."""
    placement = SeedPlacement(3, jax.devices()[:2])
    keys = placement.place(jax.random.split(jax.random.key(0), 3))
    maze = maze_jax.maze_arrays("square_a")
    seeds_reset = jax.vmap(lambda key: maze_jax.reset(maze, key, 1))

    def program(fn) -> str:
        return jax.jit(fn).lower(keys).compile().as_text()

    assert "all-reduce" in program(seeds_reset)  # what the test would catch
    alone = placement.per_device(seeds_reset)
    assert "all-reduce" not in program(alone)
    for ours, spmd in zip(jax.jit(alone)(keys), jax.jit(seeds_reset)(keys), strict=True):
        assert ours.shape == (4, 1, 2)
        assert ours.sharding.is_equivalent_to(placement.sharding, ours.ndim)
        np.testing.assert_array_equal(ours, spmd)

"""expose_cpu_cores in a fresh process: one device per core, and collective timeouts that a busy
machine cannot hit (tests/conftest.py has already started JAX in this one)."""

import json
import os
import subprocess
import sys

import pytest

from edp.devices import COLLECTIVE_TIMEOUT_FLAGS

PROBE = """
import json, os
import jax
from edp.devices import SeedPlacement, expose_cpu_cores
from edp.envs import maze_jax
expose_cpu_cores()
# the maze reset's while loop over sharded seeds is the collective that timed out
placement = SeedPlacement(len(jax.devices()))
keys = placement.place(jax.random.split(jax.random.key(0), placement.seeds))
maze = maze_jax.maze_arrays("square_a")
starts, _ = jax.jit(jax.vmap(lambda k: maze_jax.reset(maze, k, 1)))(keys)
print(json.dumps({"devices": len(jax.devices()), "flags": os.environ.get("XLA_FLAGS", ""),
                  "finite": bool(jax.numpy.isfinite(starts).all())}))
"""


def probe(xla_flags: str | None) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_NUM_CPU_DEVICES")}
    if xla_flags is not None:
        env["XLA_FLAGS"] = xla_flags
    done = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]  # XLA dies on a flag it does not know
    return json.loads(done.stdout.strip().splitlines()[-1])


cores = len(os.sched_getaffinity(0))


@pytest.mark.skipif(cores < 2, reason="needs two cores to expose two devices")
def test_each_core_is_a_device_and_the_collective_timeouts_are_long():
    seen = probe(None)
    assert seen["devices"] == cores and seen["finite"]
    assert seen["flags"].split() == list(COLLECTIVE_TIMEOUT_FLAGS)


@pytest.mark.skipif(cores < 2, reason="needs two cores to expose two devices")
def test_a_timeout_the_user_set_is_kept():
    mine = "--xla_cpu_collective_call_terminate_timeout_seconds=120"
    seen = probe(mine)
    assert seen["devices"] == cores
    assert seen["flags"].split() == [mine, COLLECTIVE_TIMEOUT_FLAGS[0]]


def test_a_device_count_the_user_chose_is_left_alone():
    seen = probe("--xla_force_host_platform_device_count=1")
    assert seen["devices"] == 1
    assert seen["flags"] == "--xla_force_host_platform_device_count=1"

"""Where the seeds of a compiled maze run go: an equal share on each device.

On a CPU, XLA presents one device however many cores there are, and a vmapped group of seeds
then runs mostly on one core. Presenting each core as a device (before JAX starts its backends)
lets one SPMD program split the group across the cores: on the 2-core machine of
benchmarks/throughput, 4 DDPG seeds take 1.3x the time of one instead of 2.4x. On a GPU machine
the GPUs are the devices and the same code splits the seeds across them.
"""

from __future__ import annotations

import math
import os

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

# XLA aborts a CPU program whose devices wait over 40 s for each other at a collective, which a
# busy machine can cause (docs/compiled_loop.md, "Seeds across devices"). The seeds are
# independent, so the wait always ends; an hour still ends a true deadlock.
COLLECTIVE_TIMEOUT_FLAGS = ("--xla_cpu_collective_call_warn_stuck_timeout_seconds=600",
                            "--xla_cpu_collective_call_terminate_timeout_seconds=3600")


def expose_cpu_cores() -> None:
    """One CPU device per core this process may use, unless the user chose a count (XLA_FLAGS
    or JAX_NUM_CPU_DEVICES) or JAX has already started (a library user's process: keep theirs).
    With more than one, lengthen XLA's collective timeouts (above) unless the user set them."""
    flags = os.environ.get("XLA_FLAGS", "")
    if "JAX_NUM_CPU_DEVICES" in os.environ or "xla_force_host_platform_device_count" in flags:
        return
    cores = len(os.sched_getaffinity(0))
    try:
        jax.config.update("jax_num_cpu_devices", cores)
    except RuntimeError:
        return
    if cores > 1:
        extra = [f for f in COLLECTIVE_TIMEOUT_FLAGS if f.split("=")[0] not in flags]
        os.environ["XLA_FLAGS"] = " ".join([flags, *extra]).strip()


class SeedPlacement:
    """A group of `seeds` padded to a multiple of the devices it spans, and the sharding that
    puts each device's share of the leading (seed) axis on it. The padding repeats the last
    seed; its results are never read. One seed stays on one device (no padding)."""

    def __init__(self, seeds: int, devices: list | None = None):
        devices = list(devices if devices is not None else jax.devices())
        used = min(len(devices), seeds)
        self.seeds = seeds
        self.padded = math.ceil(seeds / used) * used
        self.sharding = NamedSharding(Mesh(np.array(devices[:used]), ("seed",)),
                                      PartitionSpec("seed"))

    def place(self, tree):
        """The stacked tree (leading axis: the real seeds) padded and split across devices."""
        extra = self.padded - self.seeds

        def pad(x):
            if extra == 0:
                return x
            return jnp.concatenate([x, jnp.repeat(x[-1:], extra, axis=0)])

        return jax.device_put(jax.tree.map(pad, tree), self.sharding)

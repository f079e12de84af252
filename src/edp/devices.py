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


def expose_cpu_cores() -> None:
    """One CPU device per core this process may use, unless the user chose a count (XLA_FLAGS
    or JAX_NUM_CPU_DEVICES) or JAX has already started (a library user's process: keep theirs)."""
    if "JAX_NUM_CPU_DEVICES" in os.environ or \
            "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", ""):
        return
    try:
        jax.config.update("jax_num_cpu_devices", len(os.sched_getaffinity(0)))
    except RuntimeError:
        pass


class SeedPlacement:
    """A group of `seeds` padded to a multiple of the devices it spans, and the sharding that
    puts each device's share of the leading (seed) axis on it. The padding repeats the last
    seed; its results are never read. One seed stays on one device (no padding)."""

    def __init__(self, seeds: int, devices: list | None = None):
        devices = list(devices if devices is not None else jax.devices())
        used = min(len(devices), seeds)
        self.seeds = seeds
        self.padded = math.ceil(seeds / used) * used
        self.mesh = Mesh(np.array(devices[:used]), ("seed",))
        self.sharding = NamedSharding(self.mesh, PartitionSpec("seed"))

    def per_device(self, fn, shared: int = 0):
        """`fn` of stacked seeds, run by each device on its own share alone. Left to the SPMD
        partitioner, a vmapped while loop would end on an `any` over all seeds, a collective
        that makes the devices wait for each other (docs/compiled_loop.md); here each device
        runs its seeds to the end without one. The last `shared` arguments are the same for
        every seed; every result has the seed axis first."""

        def run(*args):
            in_specs = ((PartitionSpec("seed"),) * (len(args) - shared)
                        + (PartitionSpec(),) * shared)
            # fn never communicates, so JAX need not track which values vary across devices
            return jax.shard_map(fn, mesh=self.mesh, in_specs=in_specs,
                                 out_specs=PartitionSpec("seed"), check_vma=False)(*args)

        return run

    def place(self, tree):
        """The stacked tree (leading axis: the real seeds) padded and split across devices."""
        extra = self.padded - self.seeds

        def pad(x):
            if extra == 0:
                return x
            return jnp.concatenate([x, jnp.repeat(x[-1:], extra, axis=0)])

        return jax.device_put(jax.tree.map(pad, tree), self.sharding)

"""Probe: one compiled chunk (1,000 maze steps past the seed phase) for a group of seeds, on one
CPU device or split across one device per core (`edp.devices`); wall and CPU seconds.

    python benchmarks/throughput/devices_probe.py DEVICES SEEDS AGENT   # e.g. 2 4 ddpg

Chunks 6-10 (frames 5,000-10,000) are timed; the figures are their mean.
"""

from __future__ import annotations

import sys
import time

import jax

devices, seeds, agent_name = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
jax.config.update("jax_num_cpu_devices", devices)  # before JAX starts

import numpy as np  # noqa: E402

from edp.agents.registry import make_agent  # noqa: E402
from edp.config import resolve  # noqa: E402
from edp.coverage import CoverageTracker  # noqa: E402
from edp.device_loop import DeviceTrainer, SeedRun  # noqa: E402
from edp.device_replay import DeviceReplay  # noqa: E402
from edp.loop import LoopSettings  # noqa: E402
from edp.presets import pretrain_defaults  # noqa: E402

cfg = resolve(pretrain_defaults("fast", "maze/square_a", agent_name))
agent = make_agent(cfg, 2, 2)
replay = DeviceReplay.create(cfg.replay_capacity, 50, 2, 2, cfg.nstep, cfg.discount)
runs = [SeedRun(s, None, CoverageTracker("square_a"), None) for s in range(seeds)]
settings = LoopSettings(frames=10_000, seed=0, log_every=1000, checkpoint_every=0, snapshots=(),
                        eval_episodes=0, quiet=True)
trainer = DeviceTrainer(agent, "square_a", False, 50, replay, runs, settings, None)
times = []
for chunk in range(10):
    wall, cpu = time.perf_counter(), time.process_time()
    trainer.carry, _, returns = trainer._chunk(trainer.carry, trainer.keys, np.int32(20 * chunk),
                                               20)
    jax.block_until_ready(returns)
    times.append((time.perf_counter() - wall, time.process_time() - cpu))
wall, cpu = np.mean(times[5:], axis=0)
print(f"{agent_name}, {seeds} seed(s) on {len(trainer.placement.sharding.device_set)} of "
      f"{len(jax.devices())} device(s): {wall:.2f} s wall, {cpu:.2f} s CPU per 1,000 steps")

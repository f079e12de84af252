"""`edp bench`: where the time of one environment step goes, next to the machine's GEMM speed.

For each preset and problem size it times, per env step: acting (one jitted call), the
environment step, and learning (replay sampling + the jitted update of all iterations). The
update's floating-point operations come from XLA's own cost analysis of the compiled program, so
the achieved FLOP/s can be compared with the measured float32 matrix-multiply throughput: on a
CPU the update is GEMM-bound and that ratio says how much is left on the table.
"""

from __future__ import annotations

import dataclasses
import platform
import time
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from edp.agents.registry import make_agent
from edp.config import resolve
from edp.presets import pretrain_defaults
from edp.replay import ReplayBuffer

PROBLEMS = {  # name -> (env name used for preset defaults, obs dim, action dim)
    "maze": ("maze/square_a", 2, 2),
    "urlb-size": ("urlb/walker", 24, 6),
}


@dataclass(frozen=True)
class BenchConfig:
    """Time per environment step (act / env / learn) of an agent under each preset."""

    agent: str = "edp"
    """Agent to measure."""
    presets: tuple[str, ...] = ("paper", "fast")
    """Presets to measure."""
    problems: tuple[str, ...] = ("maze", "urlb-size")
    """Problem sizes: maze (2-d obs/actions, real maze env) and urlb-size (24-d obs, 6-d actions,
    synthetic data; env time not measured)."""
    repeats: int = 20
    """Timed learning calls per measurement (after one warm-up call)."""


def gemm_gflops(n: int = 1024, repeats: int = 20) -> float:
    """Best-of float32 (n x n) @ (n x n) throughput of this machine, in GFLOP/s."""
    a = jax.random.normal(jax.random.PRNGKey(0), (n, n), jnp.float32)
    f = jax.jit(lambda x, y: x @ y)
    f(a, a).block_until_ready()
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        f(a, a).block_until_ready()
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


def _time(fn, repeats: int) -> float:
    """Median seconds of fn() over `repeats` calls."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def measure(agent_name: str, preset: str, problem: str, repeats: int) -> dict:
    env_name, obs_dim, act_dim = PROBLEMS[problem]
    cfg = resolve(dataclasses.replace(pretrain_defaults(preset, env_name, agent_name),
                                      seed_frames=0))
    agent = make_agent(cfg, obs_dim, act_dim)
    state = agent.init(jax.random.PRNGKey(0))
    rng = np.random.default_rng(0)
    skill_dim = agent.meta_dim  # skill agents: random skills stored and acted on
    replay = ReplayBuffer(20_000, 50, 1, obs_dim, act_dim, cfg.nstep, cfg.discount,
                          extras={"meta": skill_dim} if skill_dim else None)
    skill = {"meta": rng.uniform(size=(1, skill_dim)).astype(np.float32)} if skill_dim else {}
    for _ in range(20):
        replay.start_episodes(rng.normal(size=(1, obs_dim)).astype(np.float32))
        for t in range(50):
            replay.add(rng.uniform(-1, 1, (1, act_dim)), np.zeros(1), 1.0,
                       rng.normal(size=(1, obs_dim)).astype(np.float32), t == 49, **skill)
    key = jax.random.PRNGKey(1)
    obs = rng.normal(size=(1, obs_dim + skill_dim)).astype(np.float32)

    def act():
        np.asarray(agent.act(state, obs, key, 10**6, False))

    def learn():
        batch = replay.sample(rng, agent.batch_size, agent.updates_per_step)
        jax.block_until_ready(agent.update(state, batch, key))

    act()
    learn()
    flops = update_flops(agent, state, replay.sample(rng, agent.batch_size,
                                                     agent.updates_per_step))
    env_time = float("nan")
    if problem == "maze":
        from edp.envs.maze import MazeEnv

        env = MazeEnv("square_a")
        env.reset()
        action = np.zeros((1, 2), np.float32)
        env_time = _time(lambda: env.step(action) if env._t < 50 else env.reset(), 2000)
    learn_time = _time(learn, repeats) / agent.update_every
    return {"agent": agent_name, "preset": preset, "problem": problem,
            "batch": agent.batch_size, "iters": agent.updates_per_step,
            "act_ms": _time(act, 200) * 1e3, "env_ms": env_time * 1e3,
            "learn_ms": learn_time * 1e3, "update_gflop": flops / 1e9,
            "update_gflops_per_s": flops / (learn_time * agent.update_every) / 1e9}


def update_flops(agent, state, batch) -> float:
    """XLA's FLOP count of one learning call with all its iterations."""
    compiled = jax.jit(agent.update).lower(state, batch, jax.random.PRNGKey(0)).compile()
    return _flops(compiled) * agent.updates_per_step  # XLA counts a scan body once


def _flops(compiled) -> float:
    """XLA's FLOP count of a compiled program; a loop body (lax.scan) is counted once."""
    analysis = compiled.cost_analysis()
    if isinstance(analysis, list):
        analysis = analysis[0]
    return float(analysis.get("flops", float("nan")))


def check(cfg: BenchConfig) -> None:
    """One-line ConfigError before any measurement starts."""
    from edp.agents.registry import AGENT_NAMES
    from edp.config import PRESETS, ConfigError

    for what, values, valid in (("agent", (cfg.agent,), AGENT_NAMES),
                                ("preset", cfg.presets, PRESETS),
                                ("problem", cfg.problems, tuple(PROBLEMS))):
        for value in values:
            if value not in valid:
                raise ConfigError(f"unknown {what} '{value}'; valid: {', '.join(valid)}")
    if not 1 <= cfg.repeats <= 10_000:
        raise ConfigError(f"repeats={cfg.repeats} must be in [1, 10,000]")


def run(cfg: BenchConfig) -> list[dict]:
    check(cfg)
    gemm = gemm_gflops()
    print(f"machine: {platform.node()} {platform.machine()} {platform.processor() or ''}, "
          f"{jax.device_count()} {jax.default_backend()} device(s), jax {jax.__version__}")
    print(f"float32 GEMM (1024^3): {gemm:.1f} GFLOP/s")
    header = (f"{'preset':6} {'problem':9} {'batch':>5} {'iters':>5} {'act ms':>7} {'env ms':>7} "
              f"{'learn ms':>9} {'step ms':>8} {'100k-frame min':>14} {'GFLOP/update':>12} "
              f"{'GFLOP/s':>8} {'% GEMM':>6}")
    print(f"agent: {cfg.agent}\n{header}")
    rows = []
    for preset in cfg.presets:
        for problem in cfg.problems:
            r = measure(cfg.agent, preset, problem, cfg.repeats)
            env_ms = 0.0 if np.isnan(r["env_ms"]) else r["env_ms"]
            step_ms = r["act_ms"] + env_ms + r["learn_ms"]
            r.update(step_ms=step_ms, minutes_100k=step_ms * 100_000 / 1e3 / 60,
                     gemm_fraction=r["update_gflops_per_s"] / gemm, gemm_gflops=gemm)
            rows.append(r)
            print(f"{preset:6} {problem:9} {r['batch']:>5} {r['iters']:>5} {r['act_ms']:7.3f} "
                  f"{r['env_ms']:7.3f} {r['learn_ms']:9.2f} {step_ms:8.2f} "
                  f"{r['minutes_100k']:14.1f} {r['update_gflop']:12.3f} "
                  f"{r['update_gflops_per_s']:8.1f} {100 * r['gemm_fraction']:5.0f}%", flush=True)
    return rows

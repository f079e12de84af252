"""Cost of fine-tuning: per-update and per-action time of every method, `paper` and `fast`.

    python benchmarks/finetune/cost.py [--methods ddpg edp idql dql qsm dipo] [--repeats 5]

Diffusion methods start from an EDP agent's diffusion policy of the same preset (its size is
what the method inherits); updates use synthetic replay data of the problem's dimensions.
Prints the command, the machine, and per method: batch, update cadence, act ms, update ms,
update GFLOP (XLA's count), achieved GFLOP/s, and the learning ms per env step.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import jax
import numpy as np

from edp.agents.ddpg import DDPGAgent
from edp.agents.registry import make_agent
from edp.bench import PROBLEMS, _flops, _time, gemm_gflops
from edp.config import resolve as resolve_pretrain
from edp.finetune.config import defaults, resolve
from edp.finetune.methods import FINETUNE_METHODS, make_method
from edp.presets import pretrain_defaults
from edp.replay import ReplayBuffer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from harness import machine  # noqa: E402


def build(method: str, preset: str, env_name: str, obs_dim: int, act_dim: int):
    pre_cfg = resolve_pretrain(pretrain_defaults(preset, env_name, "edp"))
    pre = make_agent(pre_cfg, obs_dim, act_dim)
    pre_state = pre.init(jax.random.PRNGKey(0))
    cfg = resolve(dataclasses.replace(defaults(preset, method, pre_cfg.ddpg), seed_frames=0))
    if method == "ddpg":
        agent = DDPGAgent(cfg.ddpg, obs_dim, act_dim, intrinsic=False)
        return agent, agent.init(jax.random.PRNGKey(1))
    agent = make_method(method, pre_state.policy, obs_dim, act_dim, cfg.method_config())
    return agent, agent.init(jax.random.PRNGKey(1))


def measure(method: str, preset: str, problem: str, repeats: int) -> dict:
    env_name, obs_dim, act_dim = PROBLEMS[problem]
    agent, state = build(method, preset, env_name, obs_dim, act_dim)
    rng = np.random.default_rng(0)
    replay = ReplayBuffer(20_000, 50, 1, obs_dim, act_dim)
    for _ in range(20):
        replay.start_episodes(rng.normal(size=(1, obs_dim)).astype(np.float32))
        for t in range(50):
            replay.add(rng.uniform(-1, 1, (1, act_dim)), rng.normal(size=1), 1.0,
                       rng.normal(size=(1, obs_dim)).astype(np.float32), t == 49)
    key = jax.random.PRNGKey(2)
    obs = rng.normal(size=(1, obs_dim)).astype(np.float32)
    act = lambda: np.asarray(agent.act(state, obs, key, 10**6, False))
    batch = replay.sample(rng, agent.batch_size, agent.updates_per_step)
    learn = lambda: jax.block_until_ready(agent.update(state, batch, key))
    act(), learn()
    compiled = jax.jit(agent.update).lower(state, batch, key).compile()
    flops = _flops(compiled) * agent.updates_per_step  # XLA counts a scan body once
    update_s = _time(learn, repeats)
    return {"method": method, "preset": preset, "problem": problem, "batch": agent.batch_size,
            "every": agent.update_every, "act_ms": _time(act, 20) * 1e3,
            "update_ms": update_s * 1e3, "gflop": flops / 1e9,
            "gflops": flops / update_s / 1e9,
            "learn_ms_per_step": update_s * 1e3 / agent.update_every}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", default=list(FINETUNE_METHODS))
    parser.add_argument("--presets", nargs="+", default=["paper", "fast"])
    parser.add_argument("--problems", nargs="+", default=["maze", "urlb-size"])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print("command:", " ".join(["python", *sys.argv]))
    print(f"machine: {machine()}; float32 GEMM {gemm_gflops():.0f} GFLOP/s")
    print(f"{'method':6} {'preset':6} {'problem':9} {'batch':>5} {'every':>5} {'act ms':>8} "
          f"{'update ms':>10} {'GFLOP':>8} {'GFLOP/s':>8} {'learn ms/step':>13}")
    for preset in args.presets:
        for problem in args.problems:
            for method in args.methods:
                r = measure(method, preset, problem, args.repeats)
                print(f"{method:6} {preset:6} {problem:9} {r['batch']:5d} {r['every']:5d} "
                      f"{r['act_ms']:8.2f} {r['update_ms']:10.1f} {r['gflop']:8.2f} "
                      f"{r['gflops']:8.1f} {r['learn_ms_per_step']:13.1f}", flush=True)


if __name__ == "__main__":
    main()

"""Skill agents (SMM, DIAYN, APS, CIC): the documented property of each intrinsic reward on tiny
hand-made data, one compiled update each, their skill schedules in pre-training and
fine-tuning, and CLI runs on a maze (pre-training with skills in the replay, exact resume,
DDPG fine-tuning from a snapshot with APS's task regression)."""

from __future__ import annotations

import dataclasses
import functools
import json
from pathlib import Path

import agent_flags
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import serialization

from edp.agents import ddpg
from edp.agents.aps import APSAgent, APSConfig, regress_task
from edp.agents.cic import CICAgent, CICConfig, cpc_loss
from edp.agents.ddpg import DDPGConfig
from edp.agents.diayn import DIAYNAgent, DIAYNConfig
from edp.agents.skills import SkillSchedule
from edp.agents.smm import SMMAgent, SMMConfig
from edp.cli import main
from edp.device_loop import DeviceTrainer
from edp.envs import make_env
from edp.finetune.config import defaults, resolve
from edp.finetune.run import builder
from edp.snapshot import load

B = 64
BACKBONE = DDPGConfig(hidden_dim=32, batch_size=B, num_expl_steps=0, learning_starts=0)
CONFIGS = {
    "smm": SMMConfig(hidden_dim=32, vae_hidden_dim=32, code_dim=8, sp_lr=3e-3),
    "diayn": DIAYNConfig(skill_dim=4, hidden_dim=32, lr=3e-3),
    "aps": APSConfig(sf_dim=4, hidden_dim=32, lr=3e-3),
    "cic": CICConfig(skill_dim=8, hidden_dim=32, lr=3e-3),
}
CLASSES = {"smm": SMMAgent, "diayn": DIAYNAgent, "aps": APSAgent, "cic": CICAgent}
KEY = jax.random.PRNGKey


@functools.cache
def agent(name: str):
    """One agent per name for the whole module, so each jitted update compiles once."""
    return CLASSES[name](CONFIGS[name], BACKBONE, 2, 2)


def batch_of(obs, meta, next_obs=None, rng=None):
    """One-iteration batch (leading iters axis 1) around the given arrays."""
    rng = rng or np.random.default_rng(0)
    obs = np.asarray(obs, np.float32)
    next_obs = obs + 0.05 if next_obs is None else next_obs
    n = obs.shape[0]
    return {"observation": obs[None], "action": rng.uniform(-1, 1, (1, n, 2)).astype(np.float32),
            "reward": np.zeros((1, n), np.float32), "discount": np.full((1, n), 0.97, np.float32),
            "next_observation": np.asarray(next_obs, np.float32)[None],
            "meta": np.asarray(meta, np.float32)[None]}


def same(a, b) -> bool:
    return all(jax.tree.leaves(jax.tree.map(np.array_equal, a, b)))


AUX = {"smm": lambda s: s.vae.params, "diayn": lambda s: s.discriminator.params,
       "aps": lambda s: s.phi.params, "cic": lambda s: s.cic.params}


def training_reward(name, before, after, batch, key):
    """The reward the critic was given, recomputed with the agent's public functions."""
    a, b = agent(name), {k: jnp.asarray(v[0]) for k, v in batch.items()}
    if name == "smm":  # pre-update networks, the update's own VAE noise
        k_eps = jax.random.split(jax.random.split(key, 1)[0])[0]
        return a.reward_terms(before, b["observation"], b["meta"], k_eps)[0]
    if name == "diayn":
        return a.skill_reward(after, b["next_observation"], b["meta"])
    if name == "aps":
        return a.reward_terms(after, b[a.rewarded], b["meta"])[0]
    return a.intrinsic_reward(after, b[a.rewarded], KEY(0))


# --- one compiled update per agent ---------------------------------------------------------------


@pytest.mark.parametrize("name", list(CLASSES))
def test_update_compiles_once_and_the_backbone_sees_the_skill(name):
    a = agent(name)
    rng = np.random.default_rng(1)
    state0 = a.init(KEY(0))
    batches = [batch_of(rng.normal(size=(B, 2)), a.skills.sample(KEY(10 + i), B), rng=rng)
               for i in range(2)]
    state1, _ = a.update(state0, batches[0], KEY(1))
    state2, metrics = a.update(state1, batches[1], KEY(2))
    assert a._update._cache_size() == 1
    assert all(np.isfinite(float(v)) for v in metrics.values())
    # actor on [s, z], critic trunk on [s, z, a] (docs/baselines.md §0.3)
    d = 2 + a.meta_dim
    assert state0.backbone.actor.params["trunk"]["Dense_0"]["kernel"].shape == (d, 32)
    assert state0.backbone.critic.params["trunk"]["Dense_0"]["kernel"].shape == (d + 2, 32)
    assert not same(state0.backbone.actor.params, state1.backbone.actor.params)
    assert not same(AUX[name](state0), AUX[name](state1))
    reward = training_reward(name, state1, state2, batches[1], KEY(2))
    assert float(metrics["intr_reward"]) == pytest.approx(float(reward.mean()), rel=1e-4,
                                                          abs=1e-6)
    assert float(metrics["batch_reward"]) == pytest.approx(float(metrics["intr_reward"]))


# --- skill priors and schedules ------------------------------------------------------------------


def test_priors_and_resampling_period():
    one_hot = SkillSchedule(5, "one_hot", every=50).sample(KEY(0), 200)
    assert np.all(one_hot.sum(1) == 1) and set(np.unique(one_hot)) == {0.0, 1.0}
    assert len(np.unique(one_hot.argmax(1))) == 5
    uniform = SkillSchedule(64, "uniform").sample(KEY(0), 100)
    assert uniform.min() >= 0 and uniform.max() <= 1 and abs(uniform.mean() - 0.5) < 0.02
    sphere = SkillSchedule(10, "sphere").sample(KEY(0), 100)
    np.testing.assert_allclose(np.linalg.norm(sphere, axis=1), 1, rtol=1e-5)
    schedule = SkillSchedule(16, "one_hot", every=50)
    meta = schedule.init_meta({}, KEY(0), 32)
    for step in (1, 49, 51):
        assert schedule.update_meta({}, meta, step, KEY(step), None)[1] is meta
    assert not np.array_equal(schedule.update_meta({}, meta, 100, KEY(3), None)[1], meta)


def test_finetuning_skills_follow_the_spec():
    # CIC: the constant 0.5; DIAYN: random one-hot resampled every 50; SMM: one per episode
    cic = agent("cic").finetune_agent(BACKBONE)
    state = cic.init(KEY(0))
    assert np.all(cic.init_meta(state, KEY(1), 3) == 0.5)
    assert np.all(cic.update_meta(state, cic.init_meta(state, KEY(1), 3), 50, KEY(2),
                                  None)[1] == 0.5)
    diayn = agent("diayn").finetune_agent(BACKBONE)
    state = diayn.init(KEY(0))
    meta = diayn.init_meta(state, KEY(1), 32)
    assert np.all(meta.sum(1) == 1)
    assert not np.array_equal(diayn.update_meta(state, meta, 50, KEY(2), None)[1], meta)
    assert diayn.update_meta(state, meta, 51, KEY(2), None)[1] is meta
    smm = agent("smm").finetune_agent(BACKBONE)
    meta = smm.init_meta(smm.init(KEY(0)), KEY(1), 32)
    for step in (0, 50, 1000):
        assert smm.update_meta(smm.init(KEY(0)), meta, step, KEY(2), None)[1] is meta


# --- DIAYN ---------------------------------------------------------------------------------------

CORNERS = 0.8 * np.array([[-1.0, -1.0], [-1.0, 1.0], [1.0, -1.0], [1.0, 1.0]])


def test_diayn_reward_is_highest_for_the_skill_that_reached_the_state():
    a = agent("diayn")
    rng = np.random.default_rng(0)
    eye = np.eye(4, dtype=np.float32)
    state = a.init(KEY(0))
    for i in range(150):  # skill i always reaches corner i
        labels = rng.integers(0, 4, B)
        next_obs = CORNERS[labels] + 0.1 * rng.normal(size=(B, 2))
        state, metrics = a.update(state, batch_of(rng.normal(size=(B, 2)), eye[labels],
                                                  next_obs=next_obs, rng=rng), KEY(i))
    labels = np.repeat(np.arange(4), 8)
    states = (CORNERS[labels] + 0.1 * rng.normal(size=(32, 2))).astype(np.float32)
    reward = np.stack([np.asarray(a.skill_reward(state, states, np.tile(eye[j], (32, 1))))
                       for j in range(4)], axis=1)  # (32 states, 4 skills)
    assert np.all(reward.argmax(1) == labels)
    assert np.all(reward.max(1) > 0) and np.all(reward <= np.log(4) + 1e-6)
    # independently: log softmax(logits)[z] + log 4, logits = Lin -> ReLU -> Lin -> ReLU -> Lin
    p = jax.tree.map(np.asarray, state.discriminator.params)
    h = states
    for layer in ("Dense_0", "Dense_1"):
        h = np.maximum(h @ p[layer]["kernel"] + p[layer]["bias"], 0)
    logits = (h @ p["Dense_2"]["kernel"] + p["Dense_2"]["bias"]).astype(np.float64)
    log_q = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    np.testing.assert_allclose(reward, log_q + np.log(4), rtol=1e-4, atol=1e-4)
    # a discriminator at chance gives exactly 0
    chance = jax.tree.map(np.zeros_like, p["Dense_2"])
    at_chance = state.replace(discriminator=state.discriminator.replace(
        params={**state.discriminator.params, "Dense_2": chance}))
    np.testing.assert_allclose(a.skill_reward(at_chance, states, np.tile(eye[0], (32, 1))), 0,
                               atol=1e-6)


# --- SMM -----------------------------------------------------------------------------------------


def test_smm_rewards_unsure_discriminators_and_poorly_modelled_states():
    """Skill 0 visits A, skill 1 visits B, skills 2 and 3 share C: h(z|s) is low on A, about
    log 2 on C; h(s|z) is low on visited (s, z) and high on a state skill 0 never visits."""
    a = agent("smm")
    rng = np.random.default_rng(0)
    eye = np.eye(4, dtype=np.float32)
    region = np.array([CORNERS[0], CORNERS[3], CORNERS[2], CORNERS[2]])  # skill -> centre
    state = a.init(KEY(0))
    for i in range(200):
        labels = rng.integers(0, 4, B)
        obs = region[labels] + 0.05 * rng.normal(size=(B, 2))
        state, _ = a.update(state, batch_of(obs, eye[labels], rng=rng), KEY(i))

    def terms(centre, skill):
        obs = (centre + 0.05 * rng.normal(size=(32, 2))).astype(np.float32)
        return [np.asarray(x) for x in a.reward_terms(state, obs, np.tile(eye[skill], (32, 1)),
                                                      KEY(7))]

    r_a, h_sz_a, h_zs_a = terms(CORNERS[0], 0)
    _, _, h_zs_c = terms(CORNERS[2], 2)
    _, h_sz_novel, _ = terms(CORNERS[1], 0)
    _, h_sz_far, _ = terms(np.array([3.0, 3.0]), 0)
    assert h_zs_a.mean() < 0.2 and 0.45 < h_zs_c.mean() < 1.0  # log 2 = 0.69
    # the reference's VAE is strongly regularised (KL summed, error averaged): its error grows
    # with the distance from the visited states rather than singling out each cluster
    assert h_sz_a.mean() + 0.5 < h_sz_novel.mean() < 0.5 * h_sz_far.mean()
    # r = 1 * h(s|z) + 1 * log 4 + 1 * h(z|s): the cross-entropy is *added* (reference)
    np.testing.assert_allclose(r_a, h_sz_a + np.log(4) + h_zs_a, rtol=1e-5)


# --- APS -----------------------------------------------------------------------------------------


def cluster_and_isolated(rng):
    return np.concatenate([0.05 * rng.normal(size=(30, 2)), [[3.0, -3.0]],
                           rng.uniform(-1, 1, (9, 2))]).astype(np.float32)


def brute_force_knn_reward(e, k, scale, clip):
    """log(1 + mean over the k nearest (self included) of max(d / scale - clip, 0))."""
    d = np.sort(np.linalg.norm(e[:, None] - e[None], axis=-1), axis=1)[:, :k]
    return np.log1p(np.maximum(d / scale - clip, 0).mean(1))


def updated_once(name: str, seed: int):
    """The agent, a generator and its state after one update on a random batch (so its running
    moments are set)."""
    a, rng = agent(name), np.random.default_rng(seed)
    state, _ = a.update(a.init(KEY(0)), batch_of(rng.normal(size=(B, 2)),
                                                 a.skills.sample(KEY(1), B), rng=rng), KEY(1))
    return a, rng, state


def test_aps_reward_is_task_cosine_plus_particle_entropy():
    a, rng, state = updated_once("aps", 0)
    x = cluster_and_isolated(rng)
    e = np.asarray(a.phi.apply({"params": state.phi.params}, x), np.float64)
    unit = e / np.linalg.norm(e, axis=1, keepdims=True)
    task = np.tile(unit[35], (40, 1)).astype(np.float32)
    reward, r_sf, r_ent = (np.asarray(v) for v in a.reward_terms(state, x, task))
    # r_sf = <w, normalize(phi(s+))>: 1 where phi(s+) points along w, -1 against it
    assert r_sf[35] == pytest.approx(1, abs=1e-5) and np.all(np.abs(r_sf) <= 1 + 1e-5)
    np.testing.assert_allclose(r_sf, unit @ unit[35], atol=1e-5)
    np.testing.assert_allclose(a.reward_terms(state, x, -task)[1], -r_sf, atol=1e-6)
    # r_ent = PBE on phi(s+): 12 nearest, divided by the running mean, clip 1e-4
    expected = brute_force_knn_reward(e, 12, float(state.knn_rms.mean), 1e-4)
    np.testing.assert_allclose(r_ent, expected, rtol=1e-3, atol=1e-4)
    assert r_ent[30] > r_ent[:30].max()  # the isolated state vs the cluster
    np.testing.assert_allclose(reward, r_sf + r_ent, rtol=1e-6)
    # training phi on one task aligns the features of visited states with it
    w = np.tile(unit[0], (B, 1)).astype(np.float32)
    before = float(a.reward_terms(state, rng.normal(size=(B, 2)).astype(np.float32), w)[1].mean())
    for i in range(60):
        state, metrics = a.update(state, batch_of(rng.normal(size=(B, 2)), w, rng=rng),
                                  KEY(100 + i))
    assert float(metrics["aps_reward_sf"]) > max(0.9, before)


def test_aps_map_reward_is_its_training_reward_averaged_over_tasks():
    a, rng, state = updated_once("aps", 3)
    x = cluster_and_isolated(rng)  # 40 states <= the batch size: one exact batch
    mapped = np.asarray(a.intrinsic_reward(state, x, KEY(0)))
    # w and -w are equally likely, and r_sf(-w) = -r_sf(w): the pair's mean is the task average
    for w in np.asarray(a.skills.sample(KEY(2), 5)):
        task = np.tile(w, (len(x), 1))
        pair = (np.asarray(a.reward_terms(state, x, task)[0])
                + np.asarray(a.reward_terms(state, x, -task)[0])) / 2
        np.testing.assert_allclose(mapped, pair, rtol=1e-5, atol=1e-6)
    assert mapped[30] > mapped[:30].max()
    # more states than a batch: each is scored among batch_size - 1 drawn others, so the
    # cluster's states keep a low reward and the isolated one a high one
    many = np.concatenate([x, 0.05 * rng.normal(size=(200, 2)).astype(np.float32)])
    scored = np.asarray(a.intrinsic_reward(state, many, KEY(4)))
    assert scored.shape == (240,) and np.all(np.isfinite(scored))
    assert scored[30] > np.quantile(scored[:30], 0.9)


def test_aps_critic_is_the_task_times_the_successor_features():
    a = agent("aps")
    rng = np.random.default_rng(0)
    critic = a.init(KEY(0)).backbone.critic
    s, action = rng.normal(size=(8, 2)), rng.uniform(-1, 1, (8, 2))
    w = a.skills.sample(KEY(1), 8)
    obs = np.concatenate([s, w], 1).astype(np.float32)
    q1, q2 = critic.apply(obs, action)
    h = ddpg.Trunk(32).apply({"params": critic.params["trunk"]},
                             np.concatenate([obs, action], 1))
    for q, head in ((q1, "q1"), (q2, "q2")):
        psi = ddpg.Head(32, 4).apply({"params": critic.params[head]}, h)
        np.testing.assert_allclose(q, np.sum(w * np.asarray(psi), 1), rtol=1e-5, atol=1e-6)


def test_aps_task_regression_reference_proper_and_degenerate():
    a = agent("aps")
    rng = np.random.default_rng(0)
    phi = a.init(KEY(0)).phi.params
    obs = rng.normal(size=(256, 2)).astype(np.float32)
    e = np.asarray(a.phi.apply({"params": phi}, obs), np.float64)
    features = e / np.linalg.norm(e, axis=1, keepdims=True)
    w_star = np.array([0.5, -0.5, 0.5, 0.5])
    reward = (features @ w_star).astype(np.float32)
    regress = jax.jit(regress_task, static_argnums=(0, 1))
    w, ok = regress(a.phi, False, phi, obs, reward)  # reference: w = F^T R / ||F^T R||
    expected = features.T @ reward
    np.testing.assert_allclose(w, expected / np.linalg.norm(expected), rtol=1e-4, atol=1e-5)
    assert bool(ok)
    w, ok = regress(a.phi, True, phi, obs, reward)  # --aps.finetune-lstsq: argmin ||F w - R||
    np.testing.assert_allclose(w, w_star, atol=1e-3)
    assert not bool(regress(a.phi, False, phi, obs, np.zeros(256, np.float32))[1])


def test_aps_finetuning_tasks_random_then_regressed_then_kept_for_resets():
    cfg = dataclasses.replace(CONFIGS["aps"], num_init_steps=20, lstsq_batch_size=64)
    pretrained = APSAgent(cfg, BACKBONE, 2, 2)
    ft = pretrained.finetune_agent(BACKBONE)
    state = ft.init(KEY(0))
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(64, 2)).astype(np.float32)
    reward = rng.normal(size=64).astype(np.float32)
    calls = []

    def sample(n, rewards=reward):
        calls.append(n)
        return {"observation": obs[:n], "reward": rewards[:n]}

    meta = ft.init_meta(state, KEY(1), 3)  # random unit tasks before anything is solved
    np.testing.assert_allclose(np.linalg.norm(meta, axis=1), 1, rtol=1e-5)
    assert ft.update_meta(state, meta, 7, KEY(2), sample)[1] is meta  # not a 5th step
    state, meta10 = ft.update_meta(state, meta, 10, KEY(3), sample)
    state, meta20 = ft.update_meta(state, meta10, 20, KEY(4), sample)  # 20 is not > 20
    assert not np.allclose(meta10, meta) and not np.allclose(meta20, meta10) and calls == []
    state, meta25 = ft.update_meta(state, meta20, 25, KEY(5), sample)
    w = np.asarray(regress_task(pretrained.phi, False, state.skills["phi"], obs, reward)[0])
    assert calls == [64]
    np.testing.assert_allclose(meta25, np.tile(w, (3, 1)), rtol=1e-5)
    # resets and evaluation use the solved task; all-zero rewards keep it
    np.testing.assert_allclose(ft.init_meta(state, KEY(6), 1)[0], w, rtol=1e-5)
    state, meta30 = ft.update_meta(state, meta25, 30, KEY(7),
                                   functools.partial(sample, rewards=0 * reward))
    np.testing.assert_allclose(meta30, meta25)
    # the fresh phi is the fine-tuning agent's own (reference); the flag copies the snapshot's
    trained = pretrained.init(KEY(9))
    assert same(pretrained.finetune_agent(BACKBONE, trained).init(KEY(0)).skills["phi"],
                ft.init(KEY(0)).skills["phi"])
    copy = APSAgent(dataclasses.replace(cfg, finetune_copy_phi=True), BACKBONE, 2, 2)
    assert same(copy.finetune_agent(BACKBONE, trained).init(KEY(0)).skills["phi"],
                trained.phi.params)


# --- CIC -----------------------------------------------------------------------------------------


def test_cic_cpc_loss_matches_the_reference_and_prefers_matching_pairs():
    rng = np.random.default_rng(0)
    query = rng.normal(size=(16, 8))
    key = query + 0.1 * rng.normal(size=(16, 8))
    loss = np.asarray(jax.jit(cpc_loss, static_argnums=2)(query, key, 0.5))
    q = query / np.linalg.norm(query, axis=1, keepdims=True)
    k = key / np.linalg.norm(key, axis=1, keepdims=True)
    logits = q @ k.T / 0.5
    negatives = np.maximum(np.exp(logits).sum(1) - np.e**2, 1e-6)  # minus e^(1/T), not diag
    expected = -np.log(np.exp(np.diag(logits)) / (negatives + 1e-6))
    np.testing.assert_allclose(loss, expected, rtol=1e-4, atol=1e-5)
    shuffled = np.asarray(cpc_loss(query, key[rng.permutation(16)], 0.5))
    assert loss.mean() < shuffled.mean()


def test_cic_reward_is_a_variance_normalised_knn_on_embedded_next_states():
    a, rng, state = updated_once("cic", 0)
    x = cluster_and_isolated(rng)
    reward = np.asarray(a.intrinsic_reward(state, x, KEY(0)))
    e = np.asarray(a.embed(state.cic.params, x), np.float64)
    expected = brute_force_knn_reward(e, 16, float(state.knn_rms.var), 5e-4)
    np.testing.assert_allclose(reward, expected, rtol=1e-3, atol=1e-4)
    assert reward[30] > reward[:30].max()


# --- the real command ----------------------------------------------------------------------------

PRETRAIN = ["pretrain", "--env", "maze/square_a", "--seed-frames", "100", "--quiet",
            "--ddpg.hidden-dim", "32", "--ddpg.batch-size", "32", "--eval-episodes", "1",
            "--log-every", "100"]
TINY = agent_flags.SKILLS
PERIOD = {"smm": 0, "diayn": 50, "aps": 5, "cic": 50}  # skill resampling (0: per episode)


def run_dir(root: Path) -> Path:
    (config,) = root.glob("*/*/*/*/config.json")
    return config.parent


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory) -> dict[str, Path]:
    """300-frame pre-training runs (6 maze episodes of 50 steps) of every skill agent."""
    runs = {}
    for name, flags in TINY.items():
        root = tmp_path_factory.mktemp(name)
        assert main([*PRETRAIN, "--agent", name, "--frames", "300", "--out", str(root),
                     *flags]) == 0
        runs[name] = run_dir(root)
    return runs


@pytest.mark.parametrize("name", list(TINY))
def test_cli_pretrain_stores_skills_with_the_reference_schedule(pretrained, name):
    run = pretrained[name]
    config = json.loads((run / "config.json").read_text())["config"]
    assert config["agent"] == name
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert any("intr_reward" in x for x in lines)
    # agents whose reward needs no skill (CIC) or averages over it (APS) draw a reward map
    assert (run / "reward_map.png").exists() == (name in ("aps", "cic"))
    with np.load(run / "checkpoints" / "300" / "replay.npz") as replay:
        meta = replay["steps/meta"]
    dim = {"smm": 4, "diayn": 16, "aps": 10, "cic": 64}[name]
    assert meta.shape == (6, 50, dim)
    if name in ("smm", "diayn"):
        assert np.all(meta.sum(-1) == 1)
    elif name == "aps":
        np.testing.assert_allclose(np.linalg.norm(meta, axis=-1), 1, rtol=1e-5)
    else:
        assert meta.min() >= 0 and meta.max() <= 1
    # slot 0 holds the reset draw; slot t the skill that acted at step t - 1: it changes only
    # after a resampling step (episodes start on multiples of the period)
    changed = np.any(meta[:, 1:] != meta[:, :-1], axis=-1)  # slot t + 1 vs slot t
    allowed = np.zeros(49, bool)
    if PERIOD[name]:
        allowed[::PERIOD[name]] = True
    assert not np.any(changed[:, ~allowed]) and np.any(changed[:, allowed] if PERIOD[name]
                                                       else meta[1:, 0] != meta[:-1, 0])
    env = make_env("maze/square_a")
    snap = load(run, env)
    assert snap.state.backbone.actor.params["trunk"]["Dense_0"]["kernel"].shape == (2 + dim, 32)


class Killed(Exception):
    """Stands for a SIGKILL right after a checkpoint."""


def test_resumed_skill_run_matches_the_uninterrupted_one(pretrained, tmp_path, monkeypatch):
    """DIAYN stopped right after its checkpoint at 150 frames, then resumed to 300."""
    save = DeviceTrainer.save_checkpoints  # maze pre-training runs in the compiled loop

    def save_then_die(self):
        save(self)
        raise Killed

    monkeypatch.setattr(DeviceTrainer, "save_checkpoints", save_then_die)
    with pytest.raises(Killed):
        main([*PRETRAIN, "--agent", "diayn", "--frames", "300", "--checkpoint-every", "150",
              "--out", str(tmp_path), *TINY["diayn"]])
    monkeypatch.undo()
    run = run_dir(tmp_path)
    assert main(["pretrain", "--resume", str(run)]) == 0
    whole = pretrained["diayn"]
    for name in ("agent.msgpack", "replay.npz"):
        assert (run / "checkpoints" / "300" / name).read_bytes() == \
            (whole / "checkpoints" / "300" / name).read_bytes(), name
    strip = lambda r: [{k: v for k, v in json.loads(x).items() if k != "fps"}
                       for x in (r / "metrics.jsonl").read_text().splitlines()]
    assert strip(run) == strip(whole)


def test_finetune_from_aps_regresses_its_task_and_starts_from_the_snapshot(pretrained,
                                                                           tmp_path):
    assert main(["finetune", "--env", "maze/square_a", "--method", "ddpg", "--snapshot",
                 str(pretrained["aps"]), "--out", str(tmp_path), "--frames", "300",
                 "--seed-frames", "100", "--eval-every", "100", "--eval-episodes", "2",
                 "--log-every", "100", "--quiet"]) == 0
    run = run_dir(tmp_path)
    assert run.parent.name == "ddpg_from_aps"
    rows = (run / "eval.csv").read_text().splitlines()
    assert [int(r.split(",")[0]) for r in rows[1:]] == [0, 100, 200, 300]
    raw = serialization.msgpack_restore((run / "checkpoints" / "300" / "agent.msgpack")
                                        .read_bytes())
    assert int(raw["skills"]["solved"]) == 1  # regressed after --aps.num-init-steps 150
    with np.load(run / "checkpoints" / "300" / "replay.npz") as replay:
        meta = replay["steps/meta"]
    np.testing.assert_allclose(np.linalg.norm(meta, axis=-1), 1, rtol=1e-5)
    # after solving, a reset draws the solved task: the last one acted on
    np.testing.assert_allclose(meta[5, 0], meta[4, 49], rtol=1e-6)
    # the fine-tuning start: pre-trained actor and critic trunk, fresh heads and target
    env = make_env("maze/square_a")
    snap = load(pretrained["aps"], env)
    cfg = resolve(defaults("fast", "ddpg", snap.agent.backbone_cfg))
    ft = builder(cfg, snap)(env)
    state, fresh = ft.init(KEY(1)), snap.agent.finetune_agent(cfg.ddpg).init(KEY(1))
    assert same(state.backbone.actor.params, snap.state.backbone.actor.params)
    assert same(state.backbone.critic.params["trunk"], snap.state.backbone.critic.params["trunk"])
    assert same(state.backbone.critic.params["q1"], fresh.backbone.critic.params["q1"])
    assert same(state.backbone.critic_target, fresh.backbone.critic_target)
    assert ft.meta_dim == 10 and not int(state.skills["solved"])

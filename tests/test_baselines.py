"""URL baselines (ICM, RND, Disagreement, APT, ProtoRL): the documented property of each
intrinsic reward on tiny hand-made data, one compiled update each, and a CLI run on a maze."""

from __future__ import annotations

import functools
import json

import agent_flags
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from edp.agents import knn
from edp.agents.aps import APSAgent, APSConfig
from edp.agents.apt import APTAgent, APTConfig
from edp.agents.cic import CICAgent, CICConfig
from edp.agents.ddpg import DDPGConfig
from edp.agents.disagreement import DisagreementAgent, DisagreementConfig
from edp.agents.icm import ICMAgent, ICMConfig
from edp.agents.proto import ProtoAgent, ProtoConfig, sinkhorn
from edp.agents.rnd import RNDAgent, RNDConfig
from edp.cli import main
from edp.rms import RunningMoments

B = 64
BACKBONE = DDPGConfig(hidden_dim=32, batch_size=B, num_expl_steps=0, learning_starts=0)
CONFIGS = {  # widths shared with the CLI runs below: their eager inits reuse compiled kernels
    "icm": ICMConfig(hidden_dim=32, lr=3e-3),
    "rnd": RNDConfig(hidden_dim=32, rep_dim=16, lr=3e-3),
    "disagreement": DisagreementConfig(hidden_dim=32),
    "apt": APTConfig(rep_dim=16, hidden_dim=32),
    "proto": ProtoConfig(pred_dim=16, proj_dim=32, num_protos=16, queue_size=64, lr=3e-3),
}
CLASSES = {"icm": ICMAgent, "rnd": RNDAgent, "disagreement": DisagreementAgent, "apt": APTAgent,
           "proto": ProtoAgent}


@functools.cache
def agent(name: str):
    """One agent per name for the whole module, so each jitted update compiles once."""
    return CLASSES[name](CONFIGS[name], BACKBONE, 2, 2)


def batch_of(obs, action=None, next_obs=None, rng=None):
    """One-iteration batch (leading iters axis 1) around the given arrays."""
    rng = rng or np.random.default_rng(0)
    obs = np.asarray(obs, np.float32)
    action = rng.uniform(-1, 1, obs.shape).astype(np.float32) if action is None else action
    next_obs = obs + 0.05 if next_obs is None else next_obs
    n = obs.shape[0]
    return {"observation": obs[None], "action": np.asarray(action, np.float32)[None],
            "reward": np.zeros((1, n), np.float32), "discount": np.full((1, n), 0.97, np.float32),
            "next_observation": np.asarray(next_obs, np.float32)[None]}


def public_reward(name, state, batch):
    """The agent's public reward on the batch's only slice."""
    a, b = agent(name), {k: jnp.asarray(v[0]) for k, v in batch.items()}
    if name == "icm":
        return a.transition_reward(state, b["observation"], b["action"], b["next_observation"])
    if name == "disagreement":
        return a.transition_reward(state, b["observation"], b["action"])
    if name == "rnd":  # training normalises with the batch's own statistics
        obs_hat = a.normalise(b["observation"], b["observation"].mean(0), b["observation"].var(0))
        e = a.prediction_error(state.predictor.params, a.target_out(state, obs_hat), obs_hat)
        return e / (jnp.sqrt(state.reward_rms.var) + 1e-8)
    return a.intrinsic_reward(state, b[a.rewarded], jax.random.PRNGKey(0))


# --- one compiled update per agent ---------------------------------------------------------------


@pytest.mark.parametrize("name", list(CLASSES))
def test_update_compiles_once_and_rewards_use_the_updated_parameters(name):
    a = agent(name)
    rng = np.random.default_rng(1)
    state0 = a.init(jax.random.PRNGKey(0))
    batches = [batch_of(rng.normal(size=(B, 2)), rng=rng) for _ in range(2)]
    state1, _ = a.update(state0, batches[0], jax.random.PRNGKey(1))
    state2, metrics = a.update(state1, batches[1], jax.random.PRNGKey(2))
    assert a._update._cache_size() == 1
    assert all(np.isfinite(float(v)) for v in metrics.values())
    kernel = lambda s: s.backbone.actor.params["policy"]["Dense_1"]["kernel"]
    assert not jnp.array_equal(kernel(state0), kernel(state1))
    # the critic learned from the reward of the just-updated auxiliary networks
    reward = public_reward(name, state2, batches[1])
    assert float(metrics["intr_reward"]) == pytest.approx(float(reward.mean()), rel=1e-4)
    assert float(metrics["batch_reward"]) == pytest.approx(float(metrics["intr_reward"]))


# --- ICM -----------------------------------------------------------------------------------------


def linear_transitions(rng, n):
    obs = rng.uniform(-1, 1, (n, 2))
    action = rng.uniform(-1, 1, (n, 2))
    return obs, action, obs + 0.5 * action  # deterministic, linear


def test_icm_reward_is_log1p_forward_error_and_vanishes_on_learned_transitions():
    a = agent("icm")
    state = a.init(jax.random.PRNGKey(0))
    rng = np.random.default_rng(0)
    for i in range(120):
        state, _ = a.update(state, batch_of(*linear_transitions(rng, B)), jax.random.PRNGKey(i))
    obs, action, next_obs = linear_transitions(rng, 256)
    seen = np.asarray(a.transition_reward(state, obs, action, next_obs))
    novel = np.asarray(a.transition_reward(state, obs, action, next_obs + [1.0, -1.0]))
    assert seen.mean() < 0.1 * novel.mean()
    # independently: log(1 + ||s+ - f(s, a)||) with f = Lin -> ReLU -> Lin
    p = jax.tree.map(np.asarray, state.icm.params["forward_net"])
    hidden = np.maximum(np.concatenate([obs, action], 1) @ p["Dense_0"]["kernel"]
                        + p["Dense_0"]["bias"], 0)
    prediction = hidden @ p["Dense_1"]["kernel"] + p["Dense_1"]["bias"]
    np.testing.assert_allclose(seen, np.log1p(np.linalg.norm(next_obs - prediction, axis=1)),
                               rtol=1e-4, atol=1e-6)


# --- RND -----------------------------------------------------------------------------------------


def test_rnd_error_shrinks_on_a_state_seen_many_times():
    a = agent("rnd")
    state = a.init(jax.random.PRNGKey(0))
    rng = np.random.default_rng(0)
    seen, unseen = np.array([[0.5, 0.5]], np.float32), np.array([[-2.0, 2.0]], np.float32)
    reward = lambda s, x: float(a.intrinsic_reward(s, x, jax.random.PRNGKey(0))[0])
    for i in range(100):  # half of every batch is the same state, the rest N(0, I)
        obs = np.concatenate([np.repeat(seen, B // 2, 0), rng.normal(size=(B // 2, 2))])
        state, metrics = a.update(state, batch_of(obs, rng=rng), jax.random.PRNGKey(i))
    assert reward(state, seen) < 0.1 * reward(state, unseen)
    # divided by the running std of the raw error, not mean-centred
    assert float(metrics["intr_reward"]) == pytest.approx(
        float(metrics["intr_reward_raw"]) / float(metrics["intr_reward_std"]), rel=1e-4)
    assert float(state.reward_rms.count) == pytest.approx(100 * B + 1e-4)


# --- Disagreement --------------------------------------------------------------------------------


def test_disagreement_is_zero_when_members_agree_and_the_unbiased_variance_otherwise():
    a = agent("disagreement")
    state = a.init(jax.random.PRNGKey(0))
    rng = np.random.default_rng(0)
    obs, action = rng.normal(size=(32, 2)), rng.uniform(-1, 1, (32, 2))
    members = state.ensemble.params
    agree = jax.tree.map(lambda x: jnp.broadcast_to(x[:1], x.shape), members)
    same = state.replace(ensemble=state.ensemble.replace(params=agree))
    np.testing.assert_allclose(a.transition_reward(same, obs, action), 0.0, atol=1e-10)
    reward = np.asarray(a.transition_reward(state, obs, action))
    predictions = np.asarray(jax.jit(a.net.apply)({"params": members}, obs, action))  # (5,32,2)
    assert predictions.shape == (5, 32, 2) and np.all(reward > 0)
    np.testing.assert_allclose(reward, predictions.var(axis=0, ddof=1).mean(-1), rtol=1e-5)
    # torch-default init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and biases
    first = members["members"]["TorchDense_0"]
    assert np.abs(first["kernel"]).max() <= 0.5 and np.abs(first["bias"]).max() <= 0.5
    assert not np.allclose(first["bias"], 0)


# --- APT -----------------------------------------------------------------------------------------


def numpy_pbe(x, k, rms_stats=None, clip=0.0):
    """docs/baselines.md §0.7 by brute force: all pairwise distances, k smallest (self
    included), optional division by the running mean after merging all B*k values, clip, mean,
    log(1 + .)."""
    d = np.sort(np.linalg.norm(x[:, None] - x[None], axis=-1), axis=1)[:, :k]
    if rms_stats is not None:
        mean, var, count = rms_stats
        v, m = d.reshape(-1), d.size
        delta, total = v.mean() - mean, count + m
        mean = mean + delta * m / total
        d = d / mean
    d = np.maximum(d - clip, 0) if clip >= 0 else d
    return np.log(1 + d.mean(1))


def cluster_and_isolated(rng):
    return np.concatenate([0.05 * rng.normal(size=(30, 2)), [[3.0, -3.0]],
                           rng.uniform(-1, 1, (9, 2))]).astype(np.float32)


def test_knn_particle_reward_matches_brute_force_with_running_mean_and_clip():
    rng = np.random.default_rng(0)
    x = cluster_and_isolated(rng)
    dists = jax.jit(knn.knn_distances, static_argnums=(2, 3))(x, x, 12, True)
    assert np.all(np.asarray(dists[:, 0]) == 0)  # the self-distance is exactly zero
    pbe = jax.jit(functools.partial(knn.particle_reward, normaliser="mean", clip=1e-4))
    reward, rms = pbe(dists, RunningMoments.create())
    expected = numpy_pbe(x.astype(np.float64), 12, (0.0, 1.0, 1e-4), clip=1e-4)
    np.testing.assert_allclose(reward, expected, rtol=1e-4, atol=1e-5)
    assert float(rms.count) == pytest.approx(40 * 12 + 1e-4)
    # kNN among a random sub-batch: self first, never closer than among all the points
    sub = jax.jit(knn.batch_knn_distances, static_argnums=(1, 2))(x, 4, 16, jax.random.PRNGKey(0))
    assert sub.shape == (40, 4) and np.all(np.asarray(sub[:, 0]) == 0)
    assert np.all(np.asarray(sub) >= np.asarray(dists[:, :4]) - 1e-5)


def test_apt_reward_is_larger_for_an_isolated_state_and_matches_brute_force():
    a = agent("apt")
    rng = np.random.default_rng(0)
    x = cluster_and_isolated(rng)
    state = a.init(jax.random.PRNGKey(0))
    for i in range(3):
        state, _ = a.update(state, batch_of(rng.normal(size=(B, 2)), rng=rng),
                            jax.random.PRNGKey(i))
    reward = np.asarray(a.intrinsic_reward(state, x, jax.random.PRNGKey(0)))
    assert reward[30] > reward[:30].max()  # the isolated state vs the cluster
    phi = np.asarray(a.rep(state.icm, x), np.float64)  # ICM-APT: kNN on phi(s)
    np.testing.assert_allclose(reward, numpy_pbe(phi, 12), rtol=1e-3, atol=1e-4)
    # reconstructed state-APT (raw states, running mean, clip 1e-4): no auxiliary network; its
    # reward is `knn.particle_reward` (checked above) and it runs end to end in the CLI test
    assert APTAgent(APTConfig(representation="state"), BACKBONE, 2, 2).init(
        jax.random.PRNGKey(0)).icm is None


@pytest.mark.parametrize("cls, cfg", [(APTAgent, APTConfig), (APSAgent, APSConfig),
                                      (CICAgent, CICConfig)])
def test_knn_agents_reject_k_not_below_the_batch_size(cls, cfg):
    """Training batches and reward-map batches hold batch_size states, the scored one included."""
    with pytest.raises(ValueError, match=f"{cls.name} knn_k=64: must be < ddpg batch_size=64"):
        cls(cfg(knn_k=64), BACKBONE, 2, 2)
    assert cls(cfg(knn_k=63), BACKBONE, 2, 2).cfg.knn_k == 63


def test_apt_knn_on_next_rewards_the_next_states_it_declares():
    """With knn_on_next the critic's reward is the particle reward of the batch's s+ (its
    `rewarded` field, which the probes read), not of s."""
    a = APTAgent(APTConfig(rep_dim=16, hidden_dim=32, knn_on_next=True), BACKBONE, 2, 2)
    assert a.rewarded == "next_observation" and agent("apt").rewarded == "observation"
    rng = np.random.default_rng(3)
    obs = rng.normal(size=(B, 2))
    next_obs = obs.copy()
    next_obs[: B // 2] = 0.0  # half the s+ in one point: their kNN distances vanish
    batch = batch_of(obs, next_obs=next_obs, rng=rng)
    state, metrics = a.update(a.init(jax.random.PRNGKey(0)), batch, jax.random.PRNGKey(1))
    scored = {f: float(a.intrinsic_reward(state, jnp.asarray(batch[f][0]), jax.random.PRNGKey(0)
                                          ).mean()) for f in ("observation", "next_observation")}
    assert float(metrics["intr_reward"]) == pytest.approx(scored["next_observation"], rel=1e-4)
    assert scored["observation"] != pytest.approx(scored["next_observation"], rel=1e-2)


def test_apt_rejects_an_unknown_representation():
    with pytest.raises(ValueError, match="apt representation='pixels': must be icm or state"):
        APTAgent(APTConfig(representation="pixels"), BACKBONE, 2, 2)


# --- ProtoRL -------------------------------------------------------------------------------------


def test_sinkhorn_matches_the_spec_and_balances_prototypes():
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(32, 8)) / 0.1
    q = np.exp(scores - scores.max()).T
    q /= q.sum()
    for _ in range(3):
        q /= q.sum(1, keepdims=True) * 8
        q /= q.sum(0, keepdims=True) * 32
    expected = (q / q.sum(0, keepdims=True)).T
    out = np.asarray(jax.jit(sinkhorn, static_argnums=1)(jnp.asarray(scores, jnp.float32), 3))
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(out.sum(1), 1, rtol=1e-5)


def test_proto_queue_and_reward_ordering_for_a_far_state():
    a = agent("proto")
    state = a.init(jax.random.PRNGKey(0))
    x = jnp.asarray(np.random.default_rng(0).normal(size=(8, 2)), jnp.float32)
    # the queue starts at zero: every unit embedding is at distance 1 from it
    np.testing.assert_allclose(a.intrinsic_reward(state, x, jax.random.PRNGKey(0)), 1, rtol=1e-5)
    rng = np.random.default_rng(0)
    centre = np.array([1.0, 1.0])
    for i in range(6):  # every state near (1, 1)
        obs = centre + 0.1 * rng.normal(size=(B, 2))
        state, _ = a.update(state, batch_of(obs, next_obs=obs + 0.01, rng=rng),
                            jax.random.PRNGKey(i))
    assert int(state.queue_ptr) == 6 * 16 % 64
    assert np.all(np.linalg.norm(np.asarray(state.queue), axis=1) == pytest.approx(1, rel=1e-5))
    np.testing.assert_allclose(np.linalg.norm(state.proto.params["protos"], axis=0), 1,
                               rtol=1e-5)
    near = centre + 0.1 * rng.normal(size=(32, 2))
    far = np.array([[-2.0, 0.5]])
    reward = np.asarray(a.intrinsic_reward(state, np.concatenate([near, far]).astype(np.float32),
                                           jax.random.PRNGKey(0)))
    assert reward[-1] > 3 * reward[:-1].max()


def test_proto_fine_tuning_copies_the_whole_critic():
    a = agent("proto")
    rng = np.random.default_rng(0)
    pretrained, _ = a.update(a.init(jax.random.PRNGKey(1)),
                             batch_of(rng.normal(size=(B, 2)), rng=rng), jax.random.PRNGKey(2))
    fresh = a.finetune_agent(a.backbone_cfg).init(jax.random.PRNGKey(3))
    state = a.finetune_agent(a.backbone_cfg, pretrained).init(jax.random.PRNGKey(3))
    same = lambda x, y: jax.tree.map(np.testing.assert_array_equal, x, y)
    same(state.actor.params, pretrained.backbone.actor.params)
    same(state.critic.params, pretrained.backbone.critic.params)  # trunk and both heads
    same(state.critic_target, fresh.critic_target)  # not re-synced
    same(state.actor.opt_state, fresh.actor.opt_state)  # fresh optimisers


# --- the real command ----------------------------------------------------------------------------

TINY = agent_flags.BASELINES


@pytest.mark.parametrize("name", list(TINY))
def test_cli_pretrain_on_a_maze(tmp_path, name):
    args = ["pretrain", "--env", "maze/square_a", "--agent", name, "--frames", "300",
            "--seed-frames", "150", "--quiet", "--out", str(tmp_path), "--ddpg.hidden-dim", "32",
            "--ddpg.batch-size", "32", "--eval-episodes", "1", "--log-every", "150", *TINY[name]]
    assert main(args) == 0
    (run,) = [p for p in tmp_path.glob("*/*/*/*") if (p / "config.json").exists()]
    coverage = json.loads((run / "coverage.json").read_text())
    assert 0 < coverage["final"] <= 1
    config = json.loads((run / "config.json").read_text())["config"]
    assert config["agent"] == name
    flags = iter(TINY[name])
    for flag in flags:
        field = flag.split(".")[1].replace("-", "_")
        expected = True if field == "knn_rms" else type(config[name][field])(next(flags))
        assert config[name][field] == expected
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert any("intr_reward" in x for x in lines)
    assert (run / "reward_map.png").exists() == (name in ("rnd", "apt", "proto"))

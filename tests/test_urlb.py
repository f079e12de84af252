"""URLB environments: task table, wrapper behaviour, custom rewards, variants, seeding.

Expected numbers come from docs/urlb.md §7 (the original URLB/ExDM task code). Full-episode
returns are the "NEW" ones (dm_control 1.0.50, mujoco 3.17), the versions pyproject pins.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from edp.envs import EnvId, env_names, make_env
from edp.envs.urlb import DOMAINS, EXPERT_SCORES, PRETRAIN_TASK, Perturbation
from edp.envs.urlb.dmc import URLBEnv  # before any dm_control import: it picks the GL backend

DIMS = {  # obs dim, action dim, steps per episode
    "walker": (24, 6, 1000),
    "quadruped": (78, 12, 1000),
    "jaco": (55, 9, 250),
    "cheetah": (17, 6, 1000),
    "hopper": (15, 4, 1000),
}
JACO_TEST_ACTION = (0, -0.5, 0, 0, 0, -0.5, 0, 0, 0)  # docs/urlb.md §7.5 sequence J


def sine_actions(step: int, dim: int) -> np.ndarray:
    """docs/urlb.md §7.5 sequence S: a_k[j] = sin(0.1 k + 0.5 j)."""
    return np.sin(0.1 * step + 0.5 * np.arange(dim)).astype(np.float32)


def rollout(env: URLBEnv, sequence: str) -> np.ndarray:
    """Rewards of one full episode of copy 0 under a docs/urlb.md §7.5 action sequence."""
    env.reset()
    rewards = []
    for k in range(env.episode_length):
        if sequence == "S":
            action = sine_actions(k, env.action_dim)
        else:
            action = np.asarray(JACO_TEST_ACTION if sequence == "J" else 0.0, np.float32)
        step = env.step(np.broadcast_to(action, (1, env.action_dim)))
        assert step.done == (k == env.episode_length - 1)
        rewards.append(float(step.reward[0]))
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros((1, env.action_dim), np.float32))
    return np.array(rewards)


# --- names and the task table ----------------------------------------------------------------


def test_env_names_list_every_task_and_domain():
    names = env_names()
    for domain, tasks in DOMAINS.items():
        assert f"urlb/{domain}" in names
        assert all(f"urlb/{domain}_{task}" in names for task in tasks)
    assert sum(name.startswith("urlb/") for name in names) == 25
    assert not any("~" in name for name in names)
    assert "maze/square_a" in names


def test_pretraining_tasks_and_expert_scores():
    assert PRETRAIN_TASK == {"walker": "stand", "quadruped": "stand", "jaco": "reach_top_left",
                             "cheetah": "run", "hopper": "hop"}
    assert len(EXPERT_SCORES) == 12
    assert {name.split("_")[0] for name in EXPERT_SCORES} == {"walker", "quadruped", "jaco"}
    assert EXPERT_SCORES["walker_flip"] == 799 and EXPERT_SCORES["jaco_reach_top_right"] == 223


@pytest.mark.parametrize("name, match", [
    ("urlb/walker_fly", "unknown env 'urlb/walker_fly'; valid envs: .*urlb/walker_flip"),
    ("urlb/walker_fly~mass~0.4", "unknown env .*~damping~<factor>"),
    ("urlb/walker_stand~size~0.4", "bad perturbed env name"),
    ("urlb/walker_stand~mass", "bad perturbed env name"),
    ("urlb/walker_stand~mass~heavy", "bad factor 'heavy'"),
    ("urlb/walker_stand~mass~-1", "bad factor '-1'"),
    ("maze/square_a~mass~0.4", "unknown env"),
])
def test_bad_names_give_one_line_errors(name, match):
    with pytest.raises(ValueError, match=match) as error:
        make_env(name)
    assert "\n" not in str(error.value)


def test_env_ids_give_the_parts_and_the_name_back():
    task = EnvId.parse("urlb/walker_run~mass~0.4")
    assert (task.family, task.domain, task.task, task.perturbation, task.maze) == (
        "urlb", "walker", "run", Perturbation("mass", 0.4), None)
    assert (task.pretrain_env, str(task)) == ("urlb/walker", "urlb/walker_run~mass~0.4")
    domain = EnvId.parse("urlb/jaco~damping~2")
    assert (domain.task, domain.pretrain_env, str(domain)) == (None, "urlb/jaco",
                                                               "urlb/jaco~damping~2.0")
    assert EnvId.parse("maze/square_a:far_end").pretrain_env == "maze/square_a"
    for name in env_names():
        assert str(EnvId.parse(name)) == name
    with pytest.raises(ValueError, match="'maze/square_a' is not a URLB env"):
        URLBEnv("maze/square_a")


def test_importing_edp_envs_does_not_import_dm_control():
    code = ("import sys, edp.envs; edp.envs.env_names(); edp.envs.EnvId.parse("
            "'urlb/walker_stand~mass~0.4'); "
            "assert not {'dm_control', 'mujoco'} & set(sys.modules), 'imported'")
    env = os.environ | {"PYTHONPATH": os.pathsep.join(sys.path)}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)


# --- dims, dtypes, lengths, full episodes ------------------------------------------------------


@pytest.mark.parametrize("domain", list(DIMS))
def test_dims_and_default_episode_length(domain):
    env = make_env(f"urlb/{domain}", num_envs=2, seed=3)
    assert (env.observation_dim, env.action_dim, env.episode_length) == DIMS[domain]
    obs = env.reset()
    assert obs.shape == (2, DIMS[domain][0]) and obs.dtype == np.float32
    step = env.step(np.zeros((2, env.action_dim), np.float32))
    assert step.observation.dtype == np.float32 and step.reward.dtype == np.float32
    assert step.reward.shape == (2,) and not step.done
    with pytest.raises(ValueError, match="actions must be"):
        env.step(np.zeros((1, env.action_dim), np.float32))


@pytest.mark.parametrize("name, seed, sequence, expected", [
    ("walker_flip", 1, "S", 66.3595),
    ("quadruped_stand", 1, "S", 157.2022),
    ("quadruped_jump", 1, "Z", 734.1276),
    ("jaco_reach_top_left", 1, "J", 155.0595),
    ("cheetah_flip_backward", 1, "S", 377.5174),
    ("cheetah_run_backward", 2, "S", 27.9197),
    ("hopper_flip_backward", 14, "S", 2.8285),
])
def test_full_episode_returns_match_reference(name, seed, sequence, expected):
    """Whole wrapper stack: seeding, reset, action scaling, reward and length (docs/urlb.md
    §7.5)."""
    rewards = rollout(URLBEnv(f"urlb/{name}", seed=seed), sequence)
    assert len(rewards) == DIMS[name.split("_")[0]][2]
    assert rewards.sum() == pytest.approx(expected, abs=1e-4)


def test_jaco_rollout_rewards_along_the_swing():
    rewards = rollout(URLBEnv("urlb/jaco_reach_top_left", seed=1, episode_length=200), "J")
    np.testing.assert_allclose(rewards[[49, 99, 199]], [0.559540, 0.426710, 0.983850], atol=2e-6)


def test_episode_length_override_and_reset():
    env = URLBEnv("urlb/cheetah_run", episode_length=3)
    for _ in range(2):
        env.reset()
        dones = [env.step(np.zeros((1, 6), np.float32)).done for _ in range(3)]
        assert dones == [False, False, True]


def test_domain_name_runs_the_pretraining_task():
    pretrain, task = URLBEnv("urlb/walker", seed=2), URLBEnv("urlb/walker_stand", seed=2)
    np.testing.assert_array_equal(pretrain.reset(), task.reset())
    for k in range(5):
        action = sine_actions(k, 6)[None]
        np.testing.assert_array_equal(pretrain.step(action).reward, task.step(action).reward)


def test_jaco_observation_order():
    keys = list(URLBEnv("urlb/jaco").dm_envs[0].observation_spec())
    assert keys == ["jaco_arm/joints_pos", "jaco_arm/joints_torque", "jaco_arm/joints_vel",
                    "jaco_arm/jaco_hand/joints_pos", "jaco_arm/jaco_hand/joints_vel",
                    "jaco_arm/jaco_hand/pinch_site_pos", "jaco_arm/jaco_hand/pinch_site_rmat",
                    "duplo2x4/angular_velocity", "duplo2x4/linear_velocity",
                    "duplo2x4/orientation", "duplo2x4/position"]


# --- actions -------------------------------------------------------------------------------------


def test_quadruped_actions_map_to_actuator_ranges():
    env = URLBEnv("urlb/quadruped_walk", num_envs=3)
    env.reset()
    env.step(np.repeat(np.array([[-1.0], [0.0], [1.0]], np.float32), 12, axis=1))
    controls = np.stack([dm.physics.data.ctrl for dm in env.dm_envs])
    yaw_lift_extend_low = np.tile([-1.0, -1.0, -0.8], 4)
    yaw_lift_extend_high = np.tile([1.0, 1.1, 0.8], 4)
    np.testing.assert_allclose(controls[0], yaw_lift_extend_low, rtol=1e-6)
    np.testing.assert_allclose(controls[1], np.tile([0.0, 0.05, 0.0], 4), atol=1e-6)
    np.testing.assert_allclose(controls[2], yaw_lift_extend_high, rtol=1e-6)


def test_jaco_actions_map_to_velocity_ranges():
    env = URLBEnv("urlb/jaco_reach_top_left")
    env.reset()
    env.step(np.full((1, 9), -1.0, np.float32))
    ranges = [0.6283185] * 3 + [0.8377580] * 3 + [5.0] * 3
    np.testing.assert_allclose(env.dm_envs[0].physics.data.ctrl, -np.array(ranges), rtol=1e-6)


@pytest.mark.parametrize("name", ["walker_walk", "quadruped_run", "cheetah_run", "hopper_hop"])
def test_stock_tasks_equal_dm_control(name):
    """Stock tasks are the suite's own: same seed, same controls, same rewards and states."""
    from dm_control import suite

    domain, task = name.split("_")
    ours = URLBEnv(f"urlb/{name}", seed=5)
    reference = suite.load(domain, task, task_kwargs={"random": 5})
    spec = reference.action_spec()
    obs = ours.reset()[0]
    first = reference.reset().observation
    np.testing.assert_array_equal(obs, np.concatenate([np.ravel(v) for v in first.values()])
                                  .astype(np.float32))
    for k in range(30):
        action = sine_actions(k, ours.action_dim)
        step = ours.step(action[None])
        control = spec.minimum + (spec.maximum - spec.minimum) * (action + 1.0) / 2
        expected = reference.step(control.astype(np.float32))
        assert step.reward[0] == pytest.approx(expected.reward, abs=1e-5)
    expected_obs = np.concatenate([np.ravel(v) for v in expected.observation.values()])
    np.testing.assert_allclose(step.observation[0], expected_obs, rtol=1e-4, atol=1e-4)


# --- rewards at hand-set states (docs/urlb.md §7.2, §7.4) -----------------------------------------


def reward_at(name: str, qpos: dict | None = None, qvel: dict | None = None) -> float:
    """Reward of `name` after zeroing the state and applying {"joint" or "root.k": value}."""
    env = make_env(f"urlb/{name}")
    env.reset()
    dm = env.dm_envs[0]
    physics = dm.physics
    with physics.reset_context():
        physics.data.qpos[:] = 0
        physics.data.qvel[:] = 0
        physics.data.act[:] = 0
        if name.startswith("quadruped"):
            physics.named.data.qpos["root"][3] = 1.0
        for field, overrides in ((physics.named.data.qpos, qpos), (physics.named.data.qvel, qvel)):
            for joint, value in (overrides or {}).items():
                joint, _, index = joint.partition(".")
                if index:
                    field[joint][int(index)] = value
                else:
                    field[joint] = value
    return float(dm.task.get_reward(physics))


@pytest.mark.parametrize("name, qpos, qvel, expected", [
    ("walker_flip", None, None, 0.166667),
    ("walker_flip", None, {"rootx": 5}, 0.166667),
    ("walker_flip", None, {"rooty": 3}, 1.0),  # angmom_y = 21.64
    ("walker_flip", None, {"rooty": -3}, 0.166667),
    ("walker_flip", {"rootz": -0.6}, {"rooty": 6}, 0.401571),
    ("walker_flip", {"rooty": 1.2}, {"rooty": 8}, 0.920295),
    ("walker_walk", None, {"rootx": 0.6}, 0.666667),
    ("walker_run", None, {"rooty": -3}, 0.331559),
    ("cheetah_run", None, {"rootx": 4}, 0.4),
    ("cheetah_run_backward", None, {"rootx": -4}, 0.4),
    ("cheetah_run_backward", None, {"rooty": 2}, 0.029794),
    ("cheetah_run_backward", None, {"rootx": 4}, 0.0),
    ("cheetah_flip", None, {"rooty": 2}, 1.0),
    ("cheetah_flip", None, {"rootx": 12}, 0.0),
    ("cheetah_flip_backward", None, {"rooty": -2}, 1.0),
    ("cheetah_flip_backward", None, {"rooty": 2}, 0.0),
    ("hopper_hop", None, {"rootx": 1.5}, 0.75),
    ("hopper_hop_backward", None, {"rootx": -1.5}, 0.75),
    ("hopper_hop_backward", None, {"rooty": 3}, 0.354149),
    ("hopper_hop_backward", None, {"rootx": 1.5}, 0.0),
    ("hopper_flip", None, {"rooty": 3}, 0.979694),
    ("hopper_flip_backward", None, {"rooty": -3}, 0.979694),
    ("hopper_flip_backward", {"knee": -2}, {"rooty": -8}, 0.0),  # not standing
    ("quadruped_stand", {"root.2": 0.6}, {"root.0": 2}, 1.0),
    ("quadruped_stand", {"root.2": 0.6, "root.3": 0.92388, "root.4": 0.382683}, None, 0.853553),
    ("quadruped_stand", {"root.2": 0.6, "root.3": 0, "root.4": 1}, None, 0.0),
    ("quadruped_jump", {"root.2": 0.6}, None, 0.787171),
    ("quadruped_jump", {"root.2": 0.6, "root.3": 0.92388, "root.4": 0.382683}, None, 0.675099),
    ("quadruped_jump", {"root.2": 1.4}, None, 1.0),
    ("quadruped_walk", {"root.2": 0.6}, {"root.0": 0.3}, 0.8),
    # mass x0.4 scaled in place without mj_setConst: distorted readings, mujoco 3.17 values
    ("walker_walk~mass~0.4", None, {"rootx": 0.6}, 0.366667),
    ("walker_flip~mass~0.4", None, {"rootx": 0.6}, 0.568648),
    ("walker_flip~mass~0.4", None, {"rooty": 3}, 0.881950),
    ("cheetah_flip~mass~0.4", None, {"rootx": 4}, 1.0),
    ("hopper_flip~mass~0.4", None, {"rootx": 1.5}, 0.498532),
    ("quadruped_jump~mass~0.4", {"root.2": 0.6}, None, 0.614868),
])
def test_reward_at_hand_set_state(name, qpos, qvel, expected):
    assert reward_at(name, qpos, qvel) == pytest.approx(expected, abs=2e-6)


def test_walker_flip_angular_momentum_example():
    env = URLBEnv("urlb/walker_flip")
    env.reset()
    physics = env.dm_envs[0].physics
    with physics.reset_context():
        physics.data.qpos[:] = 0
        physics.data.qvel[:] = 0
        physics.named.data.qvel["rooty"] = 3
    assert physics.named.data.subtree_angmom["torso"][1] == pytest.approx(21.640443, abs=1e-5)


def test_jaco_reward_near_and_far_from_the_brick():
    env = URLBEnv("urlb/jaco_reach_bottom_left", seed=1)
    env.reset()
    dm = env.dm_envs[0]
    physics = dm.physics
    tcp = physics.named.data.site_xpos["jaco_arm/jaco_hand/pinchsite"].copy()
    brick = physics.named.data.xpos["duplo2x4/"].copy()
    np.testing.assert_allclose(brick, [-0.09, -0.09, 0.0], atol=1e-4)  # the task's fixed corner
    np.testing.assert_allclose(tcp, [-0.09998, -0.03953, 0.22935], atol=1e-5)
    assert dm.task.get_reward(physics) == pytest.approx(2.00e-14, rel=1e-2)
    [free_joint] = np.flatnonzero(physics.model.jnt_type == 0)
    address = physics.model.jnt_qposadr[free_joint]
    for offset, expected in ((0.0, 1.0), (0.04, 1.0), (0.1, 0.1), (0.15, 1e-4)):
        physics.data.qpos[address:address + 3] = tcp + (0.0, 0.0, offset)
        physics.forward()
        assert dm.task.get_reward(physics) == pytest.approx(expected, rel=1e-6)


# --- seeding and RNG state -----------------------------------------------------------------------


@pytest.mark.parametrize("name, seed, head, total", [
    ("walker_run", 1, (0.867140, -0.498065, -0.109925, -0.993940, 0.592409), 4.235348),
    ("walker_flip", 2, (0.920219, -0.391403, 0.994239, -0.107184, 0.478728), 7.828759),
    ("quadruped", 1, (0, 0, 0, 0, 0), 0.705957),
    ("quadruped_jump", 2, (0, 0, 0, 0, 0), -0.229094),
    ("jaco_reach_top_right", 1, (0.996835, -0.079495, 0.503122, -0.864215, -0.999843), 5.960011),
    ("jaco_reach_bottom_left", 2, (0.984384, 0.176037, 0.361228, -0.932478, -0.999778), 3.927305),
    ("cheetah_flip", 1, (-0.090270, 0.027366, -0.074843, -0.027467, -0.102977), 0.436025),
    ("hopper_hop_backward", 2, (0.0, -0.402156, -0.496449, -1.240244, 1.188949), -1.074986),
])
def test_first_copy_reproduces_reference_reset(name, seed, head, total):
    obs = URLBEnv(f"urlb/{name}", num_envs=2, seed=seed).reset()
    np.testing.assert_allclose(obs[0, :5], head, atol=2e-6)
    assert obs[0].astype(np.float64).sum() == pytest.approx(total, abs=2e-6)
    assert not np.array_equal(obs[0], obs[1])  # copies draw from their own streams


def test_same_seed_same_start_and_different_seed_differs():
    first = [URLBEnv("urlb/hopper", num_envs=2, seed=seed).reset() for seed in (7, 7, 8)]
    np.testing.assert_array_equal(first[0], first[1])
    assert not np.array_equal(first[0], first[2])


@pytest.mark.parametrize("name", ["urlb/walker", "urlb/quadruped_jump", "urlb/jaco"])
def test_rng_state_round_trip_reproduces_the_episode_start(name):
    env = URLBEnv(name, num_envs=2, seed=4)
    env.reset()
    saved = json.loads(json.dumps(env.get_rng_state()))
    start = env.reset()
    assert not np.array_equal(env.reset(), start)  # the stream moved on
    env.set_rng_state(saved)
    np.testing.assert_array_equal(env.reset(), start)
    with pytest.raises(ValueError, match="2 copies"):
        URLBEnv(name, num_envs=1).set_rng_state(saved)


# --- mass / damping variants -------------------------------------------------------------------


@pytest.mark.parametrize("name, field", [
    ("walker_stand~mass~0.4", "body_mass"),
    ("quadruped_stand~damping~1.8", "dof_damping"),
    ("cheetah_run~mass~1.4", "body_mass"),
    ("hopper_hop~damping~0.2", "dof_damping"),
])
def test_perturbed_variants_scale_the_model(name, field):
    base, kind, factor = name.split("~")
    nominal = getattr(URLBEnv(f"urlb/{base}").dm_envs[0].physics.model, field).copy()
    assert nominal.any()
    env = make_env(f"urlb/{name}")
    assert env.name == f"urlb/{name}"
    for _ in range(2):  # the scaling survives resets
        env.reset()
        np.testing.assert_allclose(getattr(env.dm_envs[0].physics.model, field),
                                   nominal * float(factor))


def test_jaco_variants_are_nominal_after_reset():
    """The quirk ExDM has: composer recompiles the model at reset, discarding the scaling."""
    nominal = URLBEnv("urlb/jaco")
    variant = make_env("urlb/jaco~mass~0.4")
    np.testing.assert_array_equal(variant.reset(), nominal.reset())
    np.testing.assert_array_equal(variant.dm_envs[0].physics.model.body_mass,
                                  nominal.dm_envs[0].physics.model.body_mass)


# --- rendering -----------------------------------------------------------------------------------


@pytest.mark.skipif(not os.environ.get("MUJOCO_GL"), reason="no headless OpenGL backend found")
def test_render_gives_an_image_of_copy_zero():
    env = URLBEnv("urlb/cheetah_run")
    env.reset()
    image = env.render(height=48, width=64)
    assert image.shape == (48, 64, 3) and image.dtype == np.uint8 and image.std() > 0

"""`edp finetune` and `edp eval` end to end on tiny budgets: the URLB protocol's schedule,
initialisation from a snapshot, and one-line errors for every kind of bad snapshot."""

import csv
import dataclasses
import json
import shutil
from functools import partial
from pathlib import Path

import agent_flags
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from edp.agents import ddpg
from edp.cli import main
from edp.envs import make_env
from edp.evaluate import load_latest
from edp.finetune import iql
from edp.finetune.config import defaults, resolve
from edp.finetune.methods import DIFFUSION_METHODS
from edp.finetune.run import builder
from edp.snapshot import load

TINY = ["--ddpg.hidden-dim", "32", "--ddpg.batch-size", "32", "--log-every", "100", "--quiet"]
TINY_EDP = [*TINY, "--edp.score-hidden-dim", "32", "--edp.score-blocks", "1",
            "--edp.reward-samples", "2"]
# maze episodes are 50 steps: 300 frames = 6 episodes, learning from frame 100
TINY_FT = ["--frames", "300", "--seed-frames", "100", "--eval-every", "100",
           "--eval-episodes", "2", "--log-every", "100", "--quiet"]


def run_dirs(root: Path, pattern: str) -> list[Path]:
    return sorted(p for p in root.glob(pattern) if (p / "config.json").is_file())


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory) -> dict[str, Path]:
    """Tiny EDP and random pre-training runs on square_a (their end-of-run snapshots)."""
    root = tmp_path_factory.mktemp("pretrain")
    for agent, extra in (("edp", TINY_EDP), ("random", ["--quiet"])):
        assert main(["pretrain", "--env", "maze/square_a", "--agent", agent, "--frames", "200",
                     "--seed-frames", "100", "--eval-episodes", "1", "--out", str(root),
                     *extra]) == 0
    return {agent: run_dirs(root, f"maze/square_a/{agent}/*")[0] for agent in ("edp", "random")}


def test_ddpg_finetune_follows_the_protocol_and_eval_reevaluates(pretrained, tmp_path, capsys):
    assert main(["finetune", "--env", "maze/square_a", "--method", "ddpg", "--snapshot",
                 str(pretrained["edp"]), "--out", str(tmp_path), *TINY_FT]) == 0
    run = run_dirs(tmp_path, "maze/square_a/ddpg_from_edp/*")[0]
    rows = (run / "eval.csv").read_text().splitlines()
    assert rows[0] == "frame,episode_return,episode_return_std"  # no expert score on a maze
    assert [int(r.split(",")[0]) for r in rows[1:]] == [0, 100, 200, 300]
    result = json.loads((run / "result.json").read_text())
    assert result["kind"] == "finetune" and result["frames"] == 300
    config = json.loads((run / "config.json").read_text())["config"]
    # the backbone follows the snapshot's architecture; updates every 2 steps (URLB)
    assert config["ddpg"]["hidden_dim"] == 32 and config["ddpg"]["update_every"] == 2
    assert config["snapshot"].endswith("snapshots/200")
    capsys.readouterr()
    assert main(["eval", str(run), "--episodes", "3"]) == 0
    out = capsys.readouterr().out
    assert "at 300 frames: return" in out and "over 3 episodes" in out


def test_finetuning_starts_from_the_actor_and_critic_trunk_only(pretrained):
    env = make_env("maze/square_a")
    snap = load(pretrained["edp"], env)
    backbone = ddpg.DDPGConfig(hidden_dim=32, batch_size=32)
    cfg = resolve(defaults("fast", "ddpg", backbone))
    state = builder(cfg, snap)(env).init(jax.random.PRNGKey(1))
    fresh = snap.agent.finetune_agent(cfg.ddpg).init(jax.random.PRNGKey(1))
    same = lambda a, b: all(jax.tree.leaves(jax.tree.map(np.array_equal, a, b)))
    assert same(state.actor.params, snap.state.backbone.actor.params)
    assert same(state.critic.params["trunk"], snap.state.backbone.critic.params["trunk"])
    assert same(state.critic.params["q1"], fresh.critic.params["q1"])  # fresh heads
    assert not same(state.critic.params["q1"], snap.state.backbone.critic.params["q1"])
    assert same(state.critic_target, fresh.critic_target)  # target not re-synchronised


def test_fast_edp_takes_the_measured_options_and_paper_keeps_the_reference():
    """`fast` takes the measured label choice and moving prior (docs/decisions.md), `paper` the
    reference's softmax(3 Q) on raw Q with pi_pre as the fixed prior."""
    fast, paper = defaults("fast", "edp", None).edp, defaults("paper", "edp", None).edp
    assert (fast.alpha, fast.standardise_q, fast.anchor_ema) == (10.0, True, 2e-4)
    assert (paper.alpha, paper.standardise_q, paper.anchor_ema) == (3.0, False, 0.0)


@pytest.mark.parametrize("method", DIFFUSION_METHODS)
def test_fast_diffusion_methods_update_every_env_step_as_the_reference(method):
    """The measured cadence (docs/decisions.md): smaller nets than `paper`, not fewer updates."""
    fast, paper = defaults("fast", method, None), defaults("paper", method, None)
    assert getattr(fast, method).update_every == getattr(paper, method).update_every == 1
    assert getattr(fast, method).batch_size < getattr(paper, method).batch_size


def test_cpu_preset_finetunes_like_fast_on_a_wider_backbone_updated_every_step():
    import dataclasses

    fast, cpu = defaults("fast", "edp", None), defaults("cpu", "edp", None)
    assert (cpu.ddpg.hidden_dim, cpu.ddpg.update_every) == (256, 1)
    assert (fast.ddpg.hidden_dim, fast.ddpg.update_every) == (128, 2)
    assert dataclasses.replace(cpu, preset="fast", ddpg=fast.ddpg) == fast
    snapshot = ddpg.DDPGConfig(hidden_dim=32, batch_size=32)
    assert defaults("cpu", "ddpg", snapshot).ddpg == dataclasses.replace(snapshot, update_every=1)


def test_diffusion_method_starts_from_the_pretrained_policy(pretrained, tmp_path):
    assert main(["finetune", "--env", "maze/square_a", "--method", "idql", "--snapshot",
                 str(pretrained["edp"]), "--out", str(tmp_path), *TINY_FT,
                 "--idql.batch-size", "16", "--idql.diffusion-steps", "2",
                 "--idql.critic.hidden-dim", "16"]) == 0
    run = run_dirs(tmp_path, "maze/square_a/idql_from_edp/*")[0]
    assert len((run / "eval.csv").read_text().splitlines()) == 1 + 4
    env = make_env("maze/square_a")
    snap = load(pretrained["edp"], env)
    cfg = resolve(defaults("fast", "idql", None))
    state = builder(cfg, snap)(env).init(jax.random.PRNGKey(0))
    assert all(jax.tree.leaves(jax.tree.map(np.array_equal, state.policy.params,
                                            snap.state.policy.params)))


@pytest.mark.parametrize("method", ["edp", "idql", "dql", "qsm", "dipo"])
def test_a_clipping_runs_critic_scores_the_executed_action(pretrained, method):
    """With --clip-actions the replay holds only actions in [-1, 1], so every method's critic
    scores Q(s, clip(a)) (value and action gradient): a sample beyond the bound is worth the
    action the env executes, not the network's extrapolation (which drew EDP's walker policy
    to Q 3x above any replay action's, benchmarks/finetune/README.md). Without the option Q
    sees the action as it is."""
    env = make_env("maze/square_a")
    snap = load(pretrained["edp"], env)
    obs = jnp.ones((4, env.observation_dim))
    far = jnp.array([[3.0, -2.0], [1.5, 0.2], [-0.5, -7.0], [0.3, 0.4]])
    for clip in (True, False):
        cfg = dataclasses.replace(resolve(defaults("fast", method, None)), clip_actions=clip)
        critic = builder(cfg, snap)(env).init(jax.random.PRNGKey(0)).critic
        q = partial(iql.q_min, critic.q, obs, params=critic.q_target)
        at_far, at_clipped = np.asarray(q(far)), np.asarray(q(jnp.clip(far, -1, 1)))
        grad = np.asarray(jax.grad(lambda a, q=q: q(a).sum())(far))
        if clip:
            np.testing.assert_array_equal(at_far, at_clipped)
            assert np.all(grad[np.abs(far) > 1] == 0) and np.all(grad[np.abs(far) < 1] != 0)
        else:  # the inside row is the same action either way
            assert np.all(at_far[:3] != at_clipped[:3]) and at_far[3] == at_clipped[3]
            assert np.all(grad != 0)


def test_zero_noise_evaluation_adds_paired_columns_and_report_reads_them(pretrained, tmp_path,
                                                                        capsys):
    """--eval-zero-noise adds zero_noise_* columns and leaves the paper's columns (and so the
    rest of the run) exactly as without it; `edp report --eval-mode` picks either."""
    small = ["--env", "maze/square_a:far_end", "--method", "edp", "--snapshot",
             str(pretrained["edp"]), *TINY_FT, "--edp.batch-size", "16",
             "--edp.diffusion-steps", "2", "--edp.num-negatives", "2",
             "--edp.energy-hidden-dim", "8",
             "--edp.critic.hidden-dim", "16"]
    assert main(["finetune", *small, "--out", str(tmp_path / "plain")]) == 0
    assert main(["finetune", *small, "--out", str(tmp_path / "both"), "--eval-zero-noise"]) == 0
    read = lambda root: np.genfromtxt(run_dirs(root, "maze/*/edp_from_edp/*")[0] / "eval.csv",
                                      delimiter=",", names=True)
    plain, both = read(tmp_path / "plain"), read(tmp_path / "both")
    assert both.dtype.names == ("frame", "episode_return", "episode_return_std",
                                "normalized_return", "zero_noise_episode_return",
                                "zero_noise_episode_return_std", "zero_noise_normalized_return")
    for name in plain.dtype.names:
        np.testing.assert_array_equal(both[name], plain[name])
    assert not np.array_equal(both["zero_noise_episode_return"], both["episode_return"])
    for mode, column in (("sample", "normalized_return"),
                         ("zero_noise", "zero_noise_normalized_return")):
        assert main(["report", str(tmp_path / "both"), "--out", str(tmp_path / mode),
                     "--eval-mode", mode]) == 0
        with open(tmp_path / mode / "results.csv") as f:
            score = float(next(csv.DictReader(f))["score"])
        assert score == pytest.approx(both[column][-1])
    assert "ddpg already evaluates its actor's mean action" in error_of(
        capsys, ["finetune", *small, "--method", "ddpg", "--eval-zero-noise"])


def test_from_scratch_is_its_own_baseline(tmp_path):
    assert main(["finetune", "--env", "maze/square_b", "--method", "ddpg", *TINY,
                 "--out", str(tmp_path), *TINY_FT]) == 0
    assert run_dirs(tmp_path, "maze/square_b/ddpg_scratch/*")


def error_of(capsys, argv) -> str:
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("edp: error: ") and "\n" not in err and "Traceback" not in err
    return err


def test_bad_snapshots_are_one_line_errors(pretrained, tmp_path, capsys):
    ft = ["finetune", *TINY_FT, "--out", str(tmp_path / "runs")]
    edp_run, random_run = pretrained["edp"], pretrained["random"]
    assert "is not a snapshot or run directory" in error_of(
        capsys, [*ft, "--env", "maze/square_a", "--snapshot", str(tmp_path / "missing")])
    assert "not on the domain of maze/square_b" in error_of(
        capsys, [*ft, "--env", "maze/square_b", "--snapshot", str(edp_run)])
    assert "agent random, which has no DDPG actor" in error_of(
        capsys, [*ft, "--env", "maze/square_a", "--snapshot", str(random_run)])
    assert "give --snapshot" in error_of(capsys, [*ft, "--env", "maze/square_a",
                                                  "--method", "edp"])
    corrupt = tmp_path / "corrupt"
    shutil.copytree(edp_run / "snapshots" / "200", corrupt)
    data = (corrupt / "agent.msgpack").read_bytes()
    (corrupt / "agent.msgpack").write_bytes(data[: len(data) // 2])
    assert "corrupt checkpoint" in error_of(
        capsys, [*ft, "--env", "maze/square_a", "--snapshot", str(corrupt)])
    meta = json.loads((edp_run / "snapshots" / "200" / "state.json").read_text())
    (corrupt / "state.json").write_text(json.dumps({**meta, "observation_dim": 3}))
    assert "observation/action dims (3, 2)" in error_of(
        capsys, [*ft, "--env", "maze/square_a", "--snapshot", str(corrupt)])
    assert "shapes" in error_of(capsys, [*ft, "--env", "maze/square_a", "--snapshot",
                                         str(edp_run), "--ddpg.hidden-dim", "64"])
    assert not (tmp_path / "runs").exists() or not run_dirs(tmp_path / "runs", "*/*/*/*")
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    shutil.copy(edp_run / "config.json", unfinished / "config.json")
    assert "has no complete checkpoint" in error_of(capsys, ["eval", str(unfinished)])
    assert "not a run directory" in error_of(capsys, ["eval", str(tmp_path)])


def test_urlb_eval_csv_is_expert_normalised_and_video_is_written(tmp_path):
    """jaco episodes are 250 steps: evaluations at 0 and 250, the final one rendered."""
    assert main(["finetune", "--env", "urlb/jaco_reach_top_left", "--method", "ddpg", *TINY,
                 "--frames", "250", "--seed-frames", "250", "--eval-every", "250",
                 "--eval-episodes", "1", "--video", "--out", str(tmp_path)]) == 0
    run = run_dirs(tmp_path, "urlb/jaco_reach_top_left/ddpg_scratch/*")[0]
    lines = (run / "eval.csv").read_text().splitlines()
    assert lines[0] == "frame,episode_return,episode_return_std,normalized_return"
    for line in lines[1:]:
        _, ret, _, norm = map(float, line.split(","))
        assert norm == pytest.approx(ret / 191.0)  # URLB expert score of reach_top_left
    videos = sorted(run.glob("videos/*.mp4"))
    assert [v.name for v in videos] == ["250.mp4"]
    import imageio.v2 as imageio

    frames = imageio.mimread(videos[0], memtest=False)
    assert len(frames) == 250 and frames[0].ndim == 3 and frames[0].std() > 0


def test_video_on_a_maze_says_what_renders(capsys, tmp_path):
    err = error_of(capsys, ["finetune", "--env", "maze/square_a", "--video", *TINY_FT,
                            "--out", str(tmp_path)])
    assert "--video needs a MuJoCo" in err and not (tmp_path / "maze").exists()


def test_proto_snapshots_hand_over_the_whole_critic(tmp_path):
    """URLB ProtoAgent.init_from copies the critic heads too; every other agent only the trunk."""
    from edp.agents.registry import make_agent
    from edp.config import PretrainConfig
    from edp.config import resolve as resolve_pretrain
    from edp.presets import pretrain_defaults
    from edp.snapshot import Snapshot

    env = make_env("maze/square_a")
    cfg = resolve_pretrain(pretrain_defaults("fast", "maze/square_a", "proto"))
    assert isinstance(cfg, PretrainConfig)
    proto = make_agent(cfg, env.observation_dim, env.action_dim)
    snap = Snapshot(tmp_path, {"agent": "proto"}, proto, proto.init(jax.random.PRNGKey(3)))
    ft_cfg = resolve(defaults("fast", "ddpg", cfg.ddpg))
    state = builder(ft_cfg, snap)(env).init(jax.random.PRNGKey(1))
    fresh = proto.finetune_agent(ft_cfg.ddpg).init(jax.random.PRNGKey(1))
    same = lambda a, b: all(jax.tree.leaves(jax.tree.map(np.array_equal, a, b)))
    assert same(state.critic.params, snap.state.backbone.critic.params)
    assert same(state.actor.params, snap.state.backbone.actor.params)
    assert same(state.critic_target, fresh.critic_target)


@pytest.mark.parametrize("domain, task, length", [
    ("walker", "walker_run", 1000), ("quadruped", "quadruped_jump", 1000),
    ("jaco", "jaco_reach_bottom_right", 250), ("cheetah", "cheetah_flip", 1000),
    ("hopper", "hopper_hop_backward", 1000)])
def test_urlb_protocol_end_to_end_on_every_domain(tmp_path, domain, task, length):
    """Pre-train EDP on the domain for one episode, fine-tune its actor on a task for one."""
    frames = ["--frames", str(length), "--seed-frames", str(length // 2)]
    assert main(["pretrain", "--env", f"urlb/{domain}", "--agent", "edp", *TINY_EDP, *frames,
                 "--eval-episodes", "1", "--out", str(tmp_path)]) == 0
    (pre,) = run_dirs(tmp_path, f"urlb/{domain}/edp/*")
    assert (pre / "snapshots" / str(length) / "agent.msgpack").is_file()
    assert main(["finetune", "--env", f"urlb/{task}", "--snapshot", str(pre), *TINY, *frames,
                 "--eval-every", "0", "--eval-episodes", "1", "--out", str(tmp_path)]) == 0
    (run,) = run_dirs(tmp_path, f"urlb/{task}/ddpg_from_edp/*")
    header, row = (run / "eval.csv").read_text().splitlines()
    normalised = domain in ("walker", "quadruped", "jaco")  # URLB has expert scores for these
    assert header.endswith("normalized_return") == normalised
    assert int(row.split(",")[0]) == length and json.loads((run / "result.json").read_text())


@pytest.mark.parametrize("name", list(agent_flags.EVERY))
def test_every_baseline_pretrains_on_urlb_and_its_actor_fine_tunes(tmp_path, name):
    """Two jaco episodes (250 frames each; learning once the first has ended) of reward-free
    pre-training per URL baseline, then one of `--method ddpg` fine-tuning from its snapshot:
    the pre-trained and the fine-tuned actor take observation + skill, and skills are stored
    in the replay."""
    assert main(["pretrain", "--env", "urlb/jaco", "--agent", name, *TINY, "--frames", "500",
                 "--seed-frames", "250", *agent_flags.EVERY[name], "--eval-episodes", "1",
                 "--out", str(tmp_path)]) == 0
    (pre,) = run_dirs(tmp_path, f"urlb/jaco/{name}/*")
    lines = [json.loads(x) for x in (pre / "metrics.jsonl").read_text().splitlines()]
    assert any("intr_reward" in x for x in lines)
    assert main(["finetune", "--env", "urlb/jaco_reach_top_left", "--method", "ddpg",
                 "--snapshot", str(pre), *TINY, "--frames", "250", "--seed-frames", "125",
                 "--eval-every", "0", "--eval-episodes", "1", "--out", str(tmp_path)]) == 0
    (run,) = run_dirs(tmp_path, f"urlb/jaco_reach_top_left/ddpg_from_{name}/*")
    header, row = (run / "eval.csv").read_text().splitlines()
    assert header.endswith("normalized_return") and int(row.split(",")[0]) == 250
    snap = load(pre, make_env("urlb/jaco"))
    skill = {"smm": 4, "diayn": 16, "aps": 10, "cic": 64}.get(name, 0)  # default skill widths
    assert snap.agent.meta_dim == skill
    tuned = load_latest(run).state  # DDPGState, or a skill agent's wrapper around one
    for actor in (snap.state.backbone.actor, getattr(tuned, "backbone", tuned).actor):
        assert actor.params["trunk"]["Dense_0"]["kernel"].shape == (55 + skill, 32)
    with np.load(run / "checkpoints" / "250" / "replay.npz") as replay:
        assert ("steps/meta" in replay) == (skill > 0)
        if skill:
            assert replay["steps/meta"].shape[-1] == skill


@pytest.mark.parametrize("clip", [False, True])
def test_clip_actions_bounds_what_the_env_and_the_replay_see(tmp_path, monkeypatch, clip):
    """A policy acting 50x out of range (a broad diffusion policy's samples, in the extreme):
    with --clip-actions the env, in training, in evaluation and in `edp eval`, and the replay
    get clip(a, -1, 1); without it, the reference's unclipped actions."""
    from edp.envs.maze import MazeEnv

    act, step = ddpg.BackboneAgent.act, MazeEnv.step
    monkeypatch.setattr(ddpg.BackboneAgent, "act",
                        lambda self, *args: 50.0 * act(self, *args))
    seen = []
    monkeypatch.setattr(MazeEnv, "step",
                        lambda self, actions: seen.append(np.abs(actions).max()) or step(self,
                                                                                         actions))
    assert main(["finetune", "--env", "maze/square_b", "--method", "ddpg", *TINY,
                 "--out", str(tmp_path), *TINY_FT, *(["--clip-actions"] if clip else [])]) == 0
    run = run_dirs(tmp_path, "maze/square_b/ddpg_scratch/*")[0]
    with np.load(run / "checkpoints" / "300" / "replay.npz") as replay:
        stored = np.abs(replay["steps/action"]).max()
    assert main(["eval", str(run), "--episodes", "1"]) == 0
    assert len(seen) == 300 + 4 * 2 * 50 + 50  # training, 4 evaluations, edp eval
    if clip:
        assert stored == 1.0 and max(seen) == 1.0
    else:
        assert stored > 10 and min(seen) > 1.0


def test_a_diverged_policy_stops_with_one_line_and_keeps_its_record(tmp_path, capsys,
                                                                    monkeypatch):
    """A policy whose actions turn NaN (QSM's unclipped samples ran away on a maze, every loss
    finite) stops the run with one line before the env sees them; eval.csv keeps its rows."""
    act = ddpg.BackboneAgent.act

    def diverging(self, state, observation, key, step, eval_mode):
        action = act(self, state, observation, key, step, eval_mode)
        return action * np.nan if step >= 150 and not eval_mode else action

    monkeypatch.setattr(ddpg.BackboneAgent, "act", diverging)
    err = error_of(capsys, ["finetune", "--env", "maze/square_b", "--method", "ddpg", *TINY,
                            "--out", str(tmp_path), *TINY_FT])
    assert "non-finite action at frame 150" in err
    run = run_dirs(tmp_path, "maze/square_b/ddpg_scratch/*")[0]
    assert [r.split(",")[0] for r in (run / "eval.csv").read_text().splitlines()[1:]] \
        == ["0", "100"]
    assert not (run / "result.json").exists()

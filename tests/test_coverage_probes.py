"""The maze probes of benchmarks/coverage read trained runs; their arithmetic is tested here on
data whose answer is known."""

from types import SimpleNamespace

import benchmark_scripts
import numpy as np


def test_reward_spread_separates_a_known_signal_from_draw_noise():
    spread = benchmark_scripts.load("coverage/reward_spread.py").spread
    rng = np.random.default_rng(0)
    signal = 1.0 + 0.5 * rng.normal(size=(200, 256))  # per state, the same in both draws
    first = signal + rng.normal(size=signal.shape)  # noise std 1
    second = signal + rng.normal(size=signal.shape)
    s = spread(first, second)
    assert abs(s["mean"] - 1.0) < 0.01
    assert abs(s["noise"] - 1.0) < 0.02
    assert abs(s["signal"] - 0.5) < 0.03
    assert abs(s["std"] - np.sqrt(1.25)) < 0.02
    exact = spread(signal, signal)  # a reward without draw noise is all signal
    assert exact["noise"] == 0 and abs(exact["signal"] - exact["std"]) < 1e-12


def test_wall_distance_is_the_distance_to_the_nearest_unit_segment():
    wall_distance = benchmark_scripts.load("coverage/wall_reward.py").wall_distance
    maze = SimpleNamespace(walls=[((-0.5, 0.5), (0.5, 0.5)),     # horizontal, y = 0.5
                                  ((0.5, 0.5), (-0.5, 0.5))])    # vertical, x = 0.5
    points = np.array([[0.0, 0.0], [0.0, 0.4], [-0.5, -0.5], [2.5, 0.5], [0.5, 0.5]])
    expected = [0.5, 0.1, 1.0, 2.0, 0.0]
    np.testing.assert_allclose(wall_distance(maze, points), expected, atol=1e-12)


def test_dead_units_counts_the_relu_units_silent_on_every_input():
    dead_units = benchmark_scripts.load("coverage/smm_vae.py").dead_units
    x = np.array([[1.0], [2.0]])
    first = {"kernel": np.array([[1.0, -1.0, 0.5]]), "bias": np.array([0.0, 0.0, -0.75])}
    # unit 1 fires on both rows, unit 2 on none, unit 3 only on x = 2 (0.25 > 0)
    second = {"kernel": np.array([[1.0, 0.0], [0.0, 0.0], [0.0, 0.0]]),
              "bias": np.array([-1.5, 0.0])}
    # on layer one's output (1, 0, 0) and (2, 0, 0.25): unit 1 fires only on row 2, unit 2
    # (weight 0, bias 0) never fires
    assert dead_units([first], x) == [1]
    assert dead_units([first, second], x) == [1, 1]
    assert dead_units([first, {"kernel": second["kernel"], "bias": np.array([-3.0, 0.0])}],
                      x) == [1, 2]


def test_reward_spread_scores_the_states_the_agents_training_reward_scores(monkeypatch):
    """Each state's reward is its time index, so the mean says which states were scored: s at
    t in [0, T - n] (mean 3.5 for T = 10, n = 3), or the n-step s+ at t + n (mean 6.5)."""
    module = benchmark_scripts.load("coverage/reward_spread.py")
    steps, nstep = 10, 3
    observation = np.zeros((5, steps + 1, 2), np.float32)
    observation[:, :, 0] = np.arange(steps + 1)
    replay = {"num_episodes": 5, "observation": observation}
    means = {}
    for field in ("observation", "next_observation"):
        agent = SimpleNamespace(reward_map=True, batch_size=64, rewarded=field,
                                intrinsic_reward=lambda state, obs, key: obs[:, 0])
        cfg = SimpleNamespace(agent="stub", seed=0, nstep=nstep)
        loaded = (cfg, None, agent, None, None, {"replay": replay})
        monkeypatch.setattr(module, "load_maze_run", lambda run, loaded=loaded: loaded)
        _, _, terms = module.run_terms(None, batches=200)
        assert terms["stub"]["noise"] == 0  # the stub has no randomness
        means[field] = terms["stub"]["mean"]
    assert abs(means["observation"] - 3.5) < 0.1
    assert abs(means["next_observation"] - 6.5) < 0.1


def test_paper_pairs_keep_the_papers_agents_and_average_our_seeds(tmp_path):
    table = benchmark_scripts.load("coverage/table.py")
    values = {("square_a", "edp"): {0: 0.8, 1: 0.9},
              ("square_a", "random"): {0: 0.7},        # not in the paper's table
              ("square_corridor", "edp"): {0: 0.5},    # a maze the paper does not list
              ("square_large", "diayn"): {0: 0.2, 1: 0.3, 2: 0.4}}
    pairs = table.paper_pairs(values, ["diayn", "edp", "random"])
    assert [(a, m) for a, m, *_ in pairs] == [("edp", "square_a"), ("diayn", "square_large")]
    (_, _, paper, mean, std), (_, _, paper2, mean2, std2) = pairs
    assert (paper, paper2) == (0.99, 0.30)
    np.testing.assert_allclose([mean, std, mean2, std2],
                               [0.85, 0.05, 0.3, np.sqrt(0.02 / 3)])
    assert table.paper_pairs(values, ["random"]) == []
    path = tmp_path / "paper.png"
    table.plot_against_paper(pairs, ["diayn", "edp", "random"], path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_by_agent_table_bolds_each_mazes_best_and_ranks_edp_among_those_measured():
    table = benchmark_scripts.load("coverage/table.py")
    values = {("square_a", "edp"): {1: 0.9, 0: 0.8},
              ("square_a", "aps"): {0: 0.95},
              ("square_a", "random"): {0: 0.7},
              ("square_tree", "edp"): {0: 0.6},
              ("square_tree", "random"): {0: 0.5}}
    lines = table.by_agent(values, ["aps", "edp", "random"], ["square_a", "square_tree"],
                           "edp", with_paper=True)
    assert lines[0] == "| agent | square_a | square_tree |"
    assert lines[2:] == ["| aps | **0.950** | - |",
                         "| edp | 0.850 (0.99) | **0.600** (0.91) |",
                         "| random | 0.700 | 0.500 |",
                         "| edp rank | 2 of 3 | 1 of 2 |"]
    plain = table.by_agent(values, ["edp"], ["square_a"], "edp", with_paper=False)
    assert plain[2:] == ["| edp | **0.850** |", "| edp rank | 1 of 1 |"]


def test_visit_grid_counts_each_bin_and_indexes_any_point():
    visit_grid = benchmark_scripts.load("harness.py").visit_grid
    maze = SimpleNamespace(bounds=(-0.5, 1.5, -0.5, 0.5))
    visited = np.array([[-0.49, -0.49], [-0.46, -0.46], [-0.44, -0.49], [1.49, 0.49]])
    counts, index = visit_grid(maze, visited, 0.05)
    # bins 0.05 wide from (-0.5, -0.5): the first two visits share bin (0, 0), the third is
    # in bin (1, 0), the last in (39, 19); a point of an unvisited bin gets 0, one outside the
    # box the border bin's count
    assert counts.shape == (40, 20) and counts.sum() == 4
    points = np.array([[-0.455, -0.455], [-0.41, -0.5 + 1e-6], [1.46, 0.46], [0.5, 0.0],
                       [1.7, 0.6]])
    np.testing.assert_array_equal(counts[index(points)], [2, 1, 1, 0, 1])


def test_loss_in_interval_matches_the_closed_form_for_the_exact_score(monkeypatch):
    """For data N(0, I) the VP marginals stay N(0, I), so the exact score is s(x) = -x and the
    residual sigma s(x_t) + z = -sigma alpha x0 + alpha^2 z: its mean square is
    sigma^2 alpha^2 |x0|^2 + D alpha^4, averaged over t uniform in the interval."""
    import jax

    import edp.score_models
    from edp.diffusion import alpha_sigma

    module = benchmark_scripts.load("coverage/reward_by_time.py")
    monkeypatch.setattr(edp.score_models, "score_fn", lambda net, key: lambda x, t, c: -x)
    agent = SimpleNamespace(cfg=SimpleNamespace(reward_dropout=False))
    state = SimpleNamespace(state_model=None)
    points = np.array([[0.0, 0.0], [1.0, -2.0], [3.0, 0.5]], np.float32)
    for low, high in ((1e-3, 3e-3), (0.03, 0.1), (0.3, 1.0)):
        loss = module.loss_in_interval(agent, state, points, low, high, 20_000,
                                       jax.random.PRNGKey(0))
        t = np.linspace(low, high, 10_001)
        alpha, sigma = (np.asarray(v, np.float64) for v in alpha_sigma(t))
        norm2 = np.sum(points.astype(np.float64) ** 2, axis=1)
        expected = np.mean(sigma[None] ** 2 * alpha[None] ** 2 * norm2[:, None]
                           + 2 * alpha[None] ** 4, axis=1)
        np.testing.assert_allclose(loss, expected, rtol=0.03)

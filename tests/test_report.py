"""`edp report`: the aggregates checked against brute force and against rliable, and the report
files."""

import csv
import itertools
import json
import re
from pathlib import Path

import numpy as np
import pytest

from edp.cli import main
from edp.report import (
    ReportConfig,
    iqm,
    mean_of_means,
    median_of_means,
    optimality_gap,
    probability_of_improvement,
    stratified_interval,
    write_report,
)


def test_iqm_is_the_25_percent_trimmed_mean_of_the_pooled_scores():
    # sorted: -7 1 | 3 4 5 6 | 8 100
    assert iqm([np.array([8.0, 1.0, 3.0]), np.array([4.0, 100.0, -7.0, 5.0, 6.0])]) == 4.5
    rng = np.random.default_rng(0)
    for n in range(1, 23):
        scores = rng.normal(size=n)
        trimmed = sorted(scores)
        for _ in range(n // 4):  # brute force: drop the smallest and the largest, n // 4 times
            trimmed = trimmed[1:-1]
        split = [scores[: n // 2], scores[n // 2:]]
        assert iqm(split) == pytest.approx(np.mean(trimmed), abs=1e-12)
    scipy = pytest.importorskip("scipy.stats")
    scores = rng.normal(size=(7, 3))
    assert iqm(list(scores.T)) == pytest.approx(scipy.trim_mean(scores, 0.25, axis=None))


def test_mean_median_and_optimality_gap_follow_rliable():
    tasks = [np.array([0.2, 0.4]), np.array([1.5, 0.9, 0.3]), np.array([0.0])]
    assert mean_of_means(tasks) == pytest.approx((0.3 + 0.9 + 0.0) / 3)
    assert median_of_means(tasks) == pytest.approx(0.3)
    gaps = [0.8, 0.6, 0.0, 0.1, 0.7, 1.0]  # 1 - score, scores above 1 count 0
    assert optimality_gap(tasks) == pytest.approx(sum(gaps) / 6)


def test_probability_of_improvement_counts_pairs_with_ties_as_half():
    x, y = np.array([1.0, 2.0, 3.0]), np.array([2.0, 2.0, 0.0])
    # pairs x > y: 1 beats 0; 2 ties twice and beats 0; 3 beats all three -> (1 + 2 + 3) / 9
    assert probability_of_improvement([x], [y]) == pytest.approx(6 / 9)
    assert probability_of_improvement([y], [x]) == pytest.approx(3 / 9)
    assert probability_of_improvement([x], [x]) == 0.5
    second = (np.array([5.0, 6.0]), np.array([1.0, 9.0, 5.0]))
    assert probability_of_improvement([x, second[0]], [y, second[1]]) == pytest.approx(
        (6 / 9 + 3.5 / 6) / 2)
    scipy = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(1)
    a, b = rng.integers(0, 4, 6).astype(float), rng.integers(0, 4, 5).astype(float)
    u = scipy.mannwhitneyu(a, b, alternative="greater").statistic
    assert probability_of_improvement([a], [b]) == pytest.approx(u / 30)
    brute = np.mean([1.0 if p > q else 0.5 if p == q else 0.0 for p, q in itertools.product(a, b)])
    assert probability_of_improvement([a], [b]) == pytest.approx(brute)


def test_stratified_bootstrap_resamples_within_tasks_and_shrinks_with_more_runs():
    rng = np.random.default_rng(2)
    # runs never move between tasks: with constant tasks every resample has the same mean
    point, low, high = stratified_interval(mean_of_means, ([np.zeros(5), np.ones(3)],), 500)
    assert point == low == high == 0.5
    widths = []
    for runs in (5, 80):
        tasks = [rng.normal(mu, 0.3, runs) for mu in (0.2, 0.5, 0.9)]
        for statistic in (iqm, mean_of_means, median_of_means, optimality_gap):
            point, low, high = stratified_interval(statistic, (tasks,), 300)
            assert low <= point <= high
        widths.append(high - low)
    assert widths[1] < widths[0] / 2
    xs, ys = [rng.normal(1, 1, 10)], [rng.normal(0, 1, 10)]
    point, low, high = stratified_interval(probability_of_improvement, (xs, ys), 300)
    assert 0.5 < point and low <= point <= high <= 1


def test_statistics_equal_rliables_on_a_runs_by_tasks_matrix():
    from rliable import metrics

    rng = np.random.default_rng(4)
    x, y = rng.uniform(0, 1.3, (5, 3)), rng.uniform(0, 1.3, (4, 3))  # runs x tasks, as rliable
    y[:, 1] = np.round(y[:, 1], 1)
    x[:2, 1] = y[:2, 1]  # ties
    tasks = list(x.T)
    assert iqm(tasks) == pytest.approx(metrics.aggregate_iqm(x), abs=1e-12)
    assert mean_of_means(tasks) == pytest.approx(metrics.aggregate_mean(x), abs=1e-12)
    assert median_of_means(tasks) == pytest.approx(metrics.aggregate_median(x), abs=1e-12)
    assert optimality_gap(tasks) == pytest.approx(metrics.aggregate_optimality_gap(x), abs=1e-12)
    assert probability_of_improvement(tasks, list(y.T)) == pytest.approx(
        metrics.probability_of_improvement(x, y), abs=1e-12)


def test_rliable_interval_agrees_with_a_numpy_stratified_bootstrap():
    """The independent computation: resample each task's runs with NumPy, percentile of IQM."""
    rng = np.random.default_rng(5)
    tasks = [rng.normal(mu, 0.2, runs) for mu, runs in ((0.3, 6), (0.6, 4), (0.9, 8))]
    resamples = 4000
    draws = [[t[rng.integers(0, len(t), len(t))] for t in tasks] for _ in range(resamples)]
    low, high = np.percentile([iqm(d) for d in draws], [2.5, 97.5])
    state = np.random.get_state()
    point, rl_low, rl_high = stratified_interval(iqm, (tasks,), resamples, seed=1)
    assert np.random.get_state()[1].tolist() == state[1].tolist()  # global stream untouched
    assert point == iqm(tasks)
    assert rl_low == pytest.approx(low, abs=0.02) and rl_high == pytest.approx(high, abs=0.02)
    assert stratified_interval(iqm, (tasks,), 200, seed=1) == stratified_interval(
        iqm, (tasks,), 200, seed=1)


def test_statistics_broadcast_over_leading_axes():
    rng = np.random.default_rng(3)
    tasks = [rng.normal(size=(4, 6)), rng.normal(size=(4, 3))]  # 4 evaluation frames
    for statistic in (iqm, mean_of_means, median_of_means, optimality_gap):
        per_frame = [statistic([t[f] for t in tasks]) for f in range(4)]
        assert np.allclose(statistic(tasks), per_frame)
    point, low, high = stratified_interval(iqm, (tasks,), 200)
    assert point.shape == low.shape == high.shape == (4,)
    assert np.all(low <= point) and np.all(point <= high)


def fake_finetune(root: Path, task: str, label: str, seed: int, curve: list[float],
                  expert: float | None, finished: bool = True) -> Path:
    path = root / task / label / f"{seed}-{seed:06x}"
    path.mkdir(parents=True)
    method = label.split("_")[0]
    config = {"env": task, "method": method, "seed": seed, "frames": 10_000 * (len(curve) - 1),
              "snapshot": None if label.endswith("scratch") else "runs/x/edp/0-aaaaaa"}
    (path / "config.json").write_text(json.dumps({"config": config}))
    header = "frame,episode_return,episode_return_std" + (",normalized_return" if expert else "")
    rows = [f"{10_000 * i},{r},0.0" + (f",{r / expert}" if expert else "")
            for i, r in enumerate(curve)]
    (path / "eval.csv").write_text("\n".join([header, *rows]) + "\n")
    if finished:
        (path / "result.json").write_text(json.dumps({"kind": "finetune"}))
    return path


def test_finetune_report_has_task_aggregate_and_improvement_tables(tmp_path):
    runs, experts = tmp_path / "runs", {"urlb/walker_run": 800.0, "urlb/walker_flip": 400.0}
    finals: dict[str, list[float]] = {}
    for task, expert in experts.items():
        for label, level in (("edp_from_edp", 0.8), ("ddpg_from_icm", 0.5)):
            for seed in range(3):
                final = expert * (level + 0.05 * seed)
                finals.setdefault(label, []).append(final / expert)
                start = 0.1 * expert if label == "edp_from_edp" else 0.0
                fake_finetune(runs, task, label, seed, [start, final / 2, final], expert)
    fake_finetune(runs, "urlb/hopper_hop", "edp_from_edp", 0, [0.0, 30.0, 60.0], None)
    fake_finetune(runs, "urlb/hopper_hop", "ddpg_from_icm", 0, [0.0, 10.0, 20.0], None)
    fake_finetune(runs, "urlb/walker_run", "edp_from_edp", 9, [0.0, 0.0], 800.0, finished=False)

    assert main(["report", str(runs), "--out", str(tmp_path / "report"),
                 "--bootstrap", "300"]) == 0
    report = (tmp_path / "report" / "report.md").read_text()
    assert "## Fine-tuning: score at the last evaluation" in report
    assert "raw return on urlb/hopper_hop: no expert score" in report
    row = re.search(r"\| urlb/walker_run \| edp_from_edp \| 3 \| 20,000 \| (\S+) \|", report)
    assert row and float(row.group(1)) == pytest.approx(0.85, abs=1e-3)
    # started at 0.1 of the expert score: the mean over seeds (0.85) minus that is the gain
    assert re.search(r"\| urlb/walker_run \| edp_from_edp \| 3 .* \| 0\.100 \| \+0\.750 \|", report)
    assert "| urlb/hopper_hop | edp_from_edp | 1 | 20,000 | 60.000 |" in report
    assert "Expert-normalised scores (without urlb/hopper_hop)" in report
    header = "| method | tasks | runs | IQM | mean | median | optimality gap |"
    assert header in report
    for label in ("edp_from_edp", "ddpg_from_icm"):
        row = re.search(rf"\| {label} \| 2 \| 6 \| (\S+) \[(\S+), (\S+)\] \|", report)
        assert row, label
        assert float(row.group(1)) == pytest.approx(iqm([np.array(finals[label])]), abs=1e-3)
        assert float(row.group(2)) <= float(row.group(1)) <= float(row.group(3).rstrip("]"))
    # every edp run beats every icm run, on the normalised tasks and on hopper (raw returns)
    assert "| ddpg_from_icm | 3 | 1.000 [1.000, 1.000] |" in report
    assert "1 unfinished fine-tuning runs (no result.json) are left out." in report
    for name in ("finetune_urlb_walker_run.png", "finetune_urlb_hopper_hop.png",
                 "finetune_iqm.png"):
        assert (tmp_path / "report" / name).is_file() and f"]({name})" in report
    csv_lines = (tmp_path / "report" / "results.csv").read_text().splitlines()
    assert csv_lines[0] == "kind,env,agent,seed,frames,finished,coverage,score,path"
    assert len(csv_lines) == 1 + 2 * 2 * 3 + 2 + 1
    assert any(line.startswith("finetune,urlb/walker_run,edp_from_edp,9,10000,False,,0.0,")
               for line in csv_lines)


def test_maze_coverage_report_counts_only_pretraining_runs(tmp_path):
    for agent, seed, final in (("random", 0, 0.5), ("random", 1, 0.7), ("edp", 0, 0.9)):
        path = tmp_path / "maze/square_a" / agent / f"{seed}-abcdef"
        path.mkdir(parents=True)
        config = {"env": "maze/square_a", "agent": agent, "seed": seed, "frames": 1000}
        (path / "config.json").write_text(json.dumps({"config": config}))
        (path / "coverage.json").write_text(json.dumps({"curve": [0.1, final]}))
        (path / "result.json").write_text("{}")
    tuned = fake_finetune(tmp_path, "maze/square_a:far_end", "ddpg_from_random", 0,
                          [1.0, 2.0], 50.0)
    (tuned / "coverage.json").write_text(json.dumps({"curve": [0.2, 0.3]}))
    path = write_report(ReportConfig(runs=(tmp_path,), out=tmp_path / "report", bootstrap=200))
    report = path.read_text()
    assert "4 runs from" in report
    assert "| maze/square_a | random | 2 | 2 | 1,000 | 0.600 | 0.100 |" in report
    assert "| maze/square_a | edp | 1 | 1 | 1,000 | 0.900 | 0.000 |" in report
    assert "ddpg_from_random | 1 | 1,000" not in report.split("## Fine-tuning")[0]
    assert "| maze/square_a:far_end | ddpg_from_random | 1 | 10,000 | 0.040 |" in report
    assert (tmp_path / "report" / "coverage_curves.png").is_file()


def test_results_csv_names_runs_relative_to_the_working_directory(tmp_path, monkeypatch):
    """Run from a repository's root, the committed results.csv and report.md hold no machine's
    paths."""
    inside = fake_finetune(tmp_path / "repo" / "runs", "urlb/walker_run", "edp_from_edp", 0,
                           [0.0, 1.0], 800.0)
    outside = fake_finetune(tmp_path / "elsewhere", "urlb/walker_run", "edp_from_edp", 1,
                            [0.0, 1.0], 800.0)
    monkeypatch.chdir(tmp_path / "repo")
    assert main(["report", str(inside.parent), str(outside), "--out", "report",
                 "--bootstrap", "50"]) == 0
    with open(tmp_path / "repo" / "report" / "results.csv", newline="") as f:
        paths = {int(row["seed"]): row["path"] for row in csv.DictReader(f)}
    assert paths == {0: "runs/urlb/walker_run/edp_from_edp/0-000000", 1: str(outside)}
    report = (tmp_path / "repo" / "report" / "report.md").read_text()
    assert f"2 runs from runs/urlb/walker_run/edp_from_edp, {outside}." in report


def test_a_report_of_many_run_directories_names_the_folder_they_share(tmp_path, monkeypatch):
    """A benchmark passes its run directories one by one; the header names their folder, and
    results.csv still lists every run."""
    runs = [fake_finetune(tmp_path / "runs", "urlb/walker_run", "edp_from_edp", seed,
                          [0.0, 1.0], 800.0) for seed in range(5)]
    monkeypatch.chdir(tmp_path)
    assert main(["report", *map(str, runs), "--out", "report", "--bootstrap", "50"]) == 0
    report = (tmp_path / "report" / "report.md").read_text()
    assert ("5 runs from 5 paths under runs/urlb/walker_run/edp_from_edp (listed in "
            "results.csv).") in report
    with open(tmp_path / "report" / "results.csv", newline="") as f:
        assert len(list(csv.DictReader(f))) == 5


def test_report_without_runs_is_a_one_line_error(tmp_path, capsys):
    assert main(["report", str(tmp_path), "--out", str(tmp_path / "report")]) == 2
    assert capsys.readouterr().err.startswith("edp: error: no run directories under")


def test_maze_report_shows_every_agents_visits_side_by_side(tmp_path):
    """Real tiny runs: the figure is drawn from each run's final checkpoint."""
    for agent in ("random", "ddpg"):
        assert main(["pretrain", "--env", "maze/square_b", "--agent", agent, "--frames", "300",
                     "--seed-frames", "300", "--quiet", "--eval-episodes", "0",
                     "--out", str(tmp_path / "runs")]) == 0
    report = write_report(ReportConfig(runs=(tmp_path / "runs",), out=tmp_path / "report",
                                       bootstrap=100)).read_text()
    assert "![visits_maze_square_b.png](visits_maze_square_b.png)" in report
    assert (tmp_path / "report" / "visits_maze_square_b.png").stat().st_size > 10_000
    rows = [line.split(" | ") for line in report.splitlines()
            if line.startswith("| maze/square_b |")]
    by_rank = sorted(rows, key=lambda r: int(r[2]))
    assert [int(r[2]) for r in by_rank] == [1, 2]
    assert float(by_rank[0][5]) >= float(by_rank[1][5])  # rank 1 has the higher mean


def test_sample_efficiency_counts_frames_to_80_percent_of_scratch(tmp_path):
    # scratch ends at mean 100 -> target 80, first reached by its mean curve at 20,000 frames
    fake_finetune(tmp_path, "maze/square_a:far_end", "ddpg_scratch", 0, [0, 50, 70, 100], None)
    fake_finetune(tmp_path, "maze/square_a:far_end", "ddpg_scratch", 1, [0, 30, 90, 100], None)
    # the pre-trained start reaches 80 at 10,000 frames: half the frames, ratio 2
    fake_finetune(tmp_path, "maze/square_a:far_end", "ddpg_from_edp", 0, [10, 85, 90, 95], None)
    fake_finetune(tmp_path, "maze/square_a:far_end", "edp_from_edp", 0, [10, 20, 30, 40], None)
    report = write_report(ReportConfig(runs=(tmp_path,), out=tmp_path / "report",
                                       bootstrap=100)).read_text()
    assert "| maze/square_a:far_end | ddpg_scratch | 80.000 | 20,000 | 1.00 |" in report
    assert "| maze/square_a:far_end | ddpg_from_edp | 80.000 | 10,000 | 2.00 |" in report
    assert "| maze/square_a:far_end | edp_from_edp | 80.000 | never | 0.00 |" in report


def test_an_agent_keeps_its_colour_in_every_panel_and_figure(tmp_path, monkeypatch):
    """A maze without an `edp` run and a task without a method shift no other line's colour."""
    import edp.report as report

    def fake_pretrain(maze: str, agent: str) -> None:
        path = tmp_path / "maze" / maze / agent / "0-abcdef"
        path.mkdir(parents=True)
        config = {"env": f"maze/{maze}", "agent": agent, "seed": 0, "frames": 1000}
        (path / "config.json").write_text(json.dumps({"config": config}))
        (path / "coverage.json").write_text(json.dumps({"curve": [0.1, 0.2]}))
        (path / "result.json").write_text("{}")

    for maze, agent in (("square_a", "ddpg"), ("square_a", "edp"), ("square_a", "random"),
                        ("square_b", "ddpg"), ("square_b", "random")):
        fake_pretrain(maze, agent)
    for task, label in (("maze/square_a:far_end", "ddpg_from_edp"),
                        ("maze/square_a:far_end", "ddpg_scratch"),
                        ("maze/square_b:far_end", "ddpg_scratch")):
        fake_finetune(tmp_path, task, label, 0, [1.0, 2.0], 50.0)
    colours: dict[str, set] = {}
    real_save = report.save_figure

    def capture(plt, fig, path):
        for ax in fig.axes:
            for line in ax.get_lines():
                label = line.get_label().split(" (")[0]
                colours.setdefault(label, set()).add((tuple(line.get_color()),
                                                      line.get_linestyle()))
        real_save(plt, fig, path)

    monkeypatch.setattr(report, "save_figure", capture)
    write_report(ReportConfig(runs=(tmp_path,), out=tmp_path / "report", bootstrap=50))
    assert set(colours) == {"ddpg", "edp", "random", "ddpg_from_edp", "ddpg_scratch"}
    assert all(len(used) == 1 for used in colours.values()), colours
    assert len({next(iter(colours[a])) for a in ("ddpg", "edp", "random")}) == 3
    # the independent check: before the fix, the second maze's `random` took edp's colour
    style = report.label_styles(["ddpg", "edp", "random"])["random"]
    assert colours["random"] == {(style["color"], style["linestyle"])}


def test_twelve_agents_get_twelve_clearly_different_lines(tmp_path, monkeypatch):
    """Lines that share a dash pattern differ in hue by a visible RGB distance; the legend is
    drawn in a panel without curves."""
    import edp.report as report

    names = [f"agent{i:02d}" for i in range(12)]
    styles = report.label_styles(names)
    looks = {(s["color"], s["linestyle"]) for s in styles.values()}
    assert len(looks) == 12
    for a, b in itertools.combinations(styles.values(), 2):
        if a["linestyle"] == b["linestyle"]:
            assert np.linalg.norm(np.subtract(a["color"][:3], b["color"][:3])) > 0.2
    runs = [report.Run(tmp_path, "maze/square_a", name, 0, 100, [0.1, 0.1 * i], "pretrain", True)
            for i, name in enumerate(names)]
    legends = []

    def capture(plt, fig, path):
        legends.extend((ax.get_legend(), len(ax.get_lines())) for ax in fig.axes
                       if ax.get_legend() is not None)
        real_save(plt, fig, path)

    real_save = report.save_figure
    monkeypatch.setattr(report, "save_figure", capture)
    report.plot_coverage_curves(runs, tmp_path / "curves.png")
    assert (tmp_path / "curves.png").stat().st_size > 10_000
    [(legend, lines)] = legends
    assert lines == 0 and len(legend.get_texts()) == 12

"""benchmarks/finetune/compare.py: two studies of one method set against each other."""

import sys

import pytest
from benchmark_scripts import load
from test_report import fake_finetune

compare = load("finetune/compare.py")


def _study(root, finals, task="urlb/walker_run", expert=800.0):
    for seed, final in enumerate(finals):
        fake_finetune(root, task, "edp_from_edp", seed, [0.0, final * (expert or 1.0)], expert)


def _run(monkeypatch, capsys, *argv):
    monkeypatch.setattr(sys, "argv", ["compare.py", *argv])
    compare.main()
    return capsys.readouterr().out


def test_probability_counts_the_pairs_the_option_wins(tmp_path, monkeypatch, capsys):
    _study(tmp_path / "option", [0.5, 0.6, 0.7])
    _study(tmp_path / "control", [0.4, 0.55, 0.8])
    _study(tmp_path / "control", [0.3], task="urlb/walker_flip")  # on one side only: left out
    out = _run(monkeypatch, capsys, "--option", str(tmp_path / "option"),
               "--control", str(tmp_path / "control"), "--bootstrap", "50")
    # option wins 5 of the 9 pairs: 0.5 > 0.4; 0.6 > 0.4, 0.55; 0.7 > 0.4, 0.55
    assert "| urlb/walker_run | edp_from_edp | 0.600 (3) | 0.583 (3) | 0.56 |" in out
    assert "walker_flip" not in out
    assert "edp_from_edp over 1 tasks: P(option > control) 0.56 [" in out


def test_studies_with_nothing_in_common_stop_with_one_line(tmp_path, monkeypatch, capsys):
    _study(tmp_path / "option", [0.5])
    _study(tmp_path / "control", [0.5], task="urlb/walker_flip", expert=400.0)
    with pytest.raises(SystemExit) as stop:
        _run(monkeypatch, capsys, "--option", str(tmp_path / "option"),
             "--control", str(tmp_path / "control"))
    assert stop.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].endswith(
        "the two sides share no (task, method) with finished runs")


def test_iqm_pools_only_tasks_with_an_expert_score(tmp_path, monkeypatch, capsys):
    _study(tmp_path / "option", [0.1, 0.2, 0.3, 0.4])
    _study(tmp_path / "control", [0.0, 0.1, 0.2, 0.3])
    goal = "maze/square_a:far_end"  # raw returns, no expert score: in P, not in the IQM
    _study(tmp_path / "option", [50.0, 60.0, 70.0, 80.0], task=goal, expert=None)
    _study(tmp_path / "control", [10.0, 20.0, 30.0, 40.0], task=goal, expert=None)
    out = _run(monkeypatch, capsys, "--option", str(tmp_path / "option"),
               "--control", str(tmp_path / "control"), "--bootstrap", "50")
    # P: walker_run 10 of 16 pairs won, 3 tied -> (10 + 1.5) / 16; the maze goal 16 of 16
    p = ((10 + 1.5) / 16 + 1.0) / 2
    # IQM of four runs: the mean of the middle two
    assert (f"edp_from_edp over 2 tasks: P(option > control) {p:.2f} [" in out)
    assert f"IQM (without {goal}) option 0.250, control 0.150" in out

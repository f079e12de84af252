"""Progress lines: the rate of the last interval (not since the start) and an ETA from it."""

import io

from edp.evaluate import episode_progress
from edp.sinks import Progress


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_rate_and_eta_come_from_the_last_interval_not_the_seed_phase():
    clock, stream = Clock(), io.StringIO()
    progress = Progress(10_000, 0, stream, clock=clock)
    clock.now = 1.0  # seed phase: 4,000 random-action frames in 1 s
    progress.report(4000, {"loss": 0.5})
    clock.now = 11.0  # learning: 1,000 frames in 10 s
    assert progress.fps(5000) == 100.0
    progress.report(5000, {"loss": 0.25})
    assert progress.fps(5000) == 100.0  # the same frame again: the same measurement
    first, second = stream.getvalue().splitlines()
    assert first == "[    4,000/10,000 frames]  4000.0 fps  ETA 00:01  loss 0.5"
    # an average since the start (5,000 frames / 11 s = 455 fps) would promise 00:11
    assert second == "[    5,000/10,000 frames]   100.0 fps  ETA 00:50  loss 0.25"


def test_resumed_run_measures_from_its_start_frame():
    clock, stream = Clock(), io.StringIO()
    progress = Progress(100_000, 60_000, stream, clock=clock)
    clock.now = 20.0
    progress.report(62_000)
    assert stream.getvalue() == "[   62,000/100,000 frames]   100.0 fps  ETA 06:20\n"


def test_long_evaluation_reports_every_interval_with_an_eta():
    clock, stream = Clock(), io.StringIO()
    report = episode_progress(1000, every=10.0, stream=stream, clock=clock)
    for done in range(1, 1001):
        clock.now = done * 0.5  # 2 episodes a second
        report(done)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 49  # every 10 s of a 500 s evaluation, not after the last episode
    assert lines[0] == "[       20/1,000 episodes]     2.0 episodes/s  ETA 08:10"
    assert lines[-1] == "[      980/1,000 episodes]     2.0 episodes/s  ETA 00:10"

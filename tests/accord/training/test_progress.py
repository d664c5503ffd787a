"""A run's progress: fits done, elapsed time and time left from the per-fit estimates."""

from __future__ import annotations

import time

import pytest

from accord.training.progress import FitProgress, duration, tell, watching


def test_time_left_scales_the_estimates_by_how_fast_the_work_has_gone():
    progress = FitProgress(total=4, estimated_seconds=20.0, workers=2)
    assert progress.seconds_left == pytest.approx(10.0)  # nothing timed yet: the estimate over the workers
    progress._started = time.monotonic() - 10.0  # 10 s in
    progress.finished(5.0)  # a quarter of the estimated work took 10 s
    assert progress.seconds_left == pytest.approx(30.0, abs=0.1)
    progress.finished(1.0, reused=True)  # cached: out of the work, no time
    assert progress.estimated_seconds == 19.0 and progress.seconds_left == pytest.approx(28.0, abs=0.1)
    assert progress.line() == "fits 2/4 done (1 reused from the cache), 10 s elapsed, about 28 s left"
    progress.finished(7.0)
    progress.finished(7.0)
    assert progress.seconds_left == 0.0 and progress.line().startswith("fits 4/4 done")
    assert "left" not in progress.line()


def test_the_plan_names_the_fits_and_their_estimated_time():
    assert FitProgress(42, 185.0, 2).plan() == (
        "42 fits (members x folds, and refits), estimated 3 min 05 s of fitting on one core, "
        "about 1 min 32 s on 2 workers"
    )
    assert FitProgress(3, 7200.0).plan().endswith("estimated 2 h 00 min of fitting on one core")
    assert duration(59.6) == "1 min 00 s" and duration(0.4) == "under 1 s"


def test_without_a_watcher_the_log_gets_the_plan_the_first_and_the_last_fit():
    logged: list[str] = []
    progress = FitProgress(total=3, estimated_seconds=3.0)
    tell(progress, False, logged.append)
    for _ in range(3):
        progress.finished(1.0)
        tell(progress, True, logged.append)
    assert [line.split(",")[0] for line in logged[1:]] == ["fits 1/3 done", "fits 3/3 done"]
    assert logged[0].startswith("3 fits (members x folds, and refits), estimated 3 s")


def test_watchers_are_told_every_fit_and_the_log_only_the_plan():
    logged: list[str] = []
    seen: list[tuple[int, bool]] = []
    progress = FitProgress(total=2, estimated_seconds=2.0)
    with watching(lambda p, advanced: seen.append((p.done, advanced))):
        tell(progress, False, logged.append)
        for _ in range(2):
            progress.finished(1.0)
            tell(progress, True, logged.append)
    assert seen == [(0, False), (1, True), (2, True)] and len(logged) == 1
    tell(progress, True, logged.append)  # the watcher is gone once the block ends
    assert len(logged) == 2

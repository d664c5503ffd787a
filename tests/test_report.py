"""What the CLI draws for people: the live progress display on a terminal."""

from __future__ import annotations

import io

from rich.console import Console

from accord.progress import FitProgress, tell
from deployments.report import progress_display


def test_on_a_terminal_the_fits_are_drawn_live_and_nothing_is_logged_but_the_plan():
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=80)
    logged: list[str] = []
    progress = FitProgress(total=3, estimated_seconds=30.0, workers=1)
    with progress_display(console):
        tell(progress, False, logged.append)
        for label in ("forest refit", "forest fold 0", "logreg fold 0"):
            progress.finished(label, 10.0)
            tell(progress, True, logged.append)
    drawn = screen.getvalue()
    assert "fits" in drawn and "1/3" in drawn and "3/3" in drawn and "s left" in drawn
    assert logged == [progress.plan()]  # the lines went to the display, not the log


def test_off_a_terminal_nothing_is_drawn_and_the_flow_logs_the_progress():
    screen = io.StringIO()
    logged: list[str] = []
    progress = FitProgress(total=1, estimated_seconds=1.0)
    with progress_display(Console(file=screen, force_terminal=False)):
        tell(progress, False, logged.append)
        progress.finished("logreg refit", 1.0)
        tell(progress, True, logged.append)
    assert screen.getvalue() == "" and logged[1].startswith("fits 1/1 done")

"""What the CLI draws for people: the live progress display on a terminal."""

from __future__ import annotations

import io

from rich.console import Console

from accord.training.progress import FitProgress, tell
from deployments.report import progress_display


def test_on_a_terminal_the_fits_are_drawn_live_and_nothing_is_logged_but_the_plan():
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=80)
    logged: list[str] = []
    progress = FitProgress(total=3, estimated_seconds=30.0, workers=1)
    with progress_display(console):
        tell(progress, False, logged.append)
        for _ in range(3):
            progress.finished(10.0)
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
        progress.finished(1.0)
        tell(progress, True, logged.append)
    assert screen.getvalue() == "" and logged[1].startswith("fits 1/1 done")


def test_a_lineage_tree_prints_long_references_whole_on_lines_of_their_own(capsys):
    from deployments.report import lineage_tree, print_tree

    parent = "s3://accord-src-2eb99c25/registry/source:20261207T040322932Z-ce68ad7e"
    manifest = {
        "name": "target",
        "version": "20261207T040341292Z-cfecb59c",
        "members": [
            {"name": "keras_transfer", "kind": "keras_transfer"},
            {"name": "logreg", "kind": "logreg"},
        ],
        "lineage": {"parents": [{"ref": parent, "member": "keras_transfer", "relation": "transfer"}]},
        "metrics": {"primary": "log_loss", "ensemble": {"log_loss": 0.3375}},
    }
    print_tree(lineage_tree(manifest))
    lines = capsys.readouterr().out.splitlines()
    assert f"│   └── {parent} (member keras_transfer, transfer)" in lines  # one line, however long
    assert "│   ├── keras_transfer [keras_transfer]" in lines and "│   └── logreg [logreg]" in lines
    assert lines[-1] == "└── held-out log_loss: 0.3375" and all(line == line.rstrip() for line in lines)

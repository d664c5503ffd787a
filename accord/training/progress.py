"""How far a training run is: fits done of the total, time elapsed, and an estimate of the time left.

The flow counts each member x fold fit and refit as it finishes and tells whoever
watches (`watching`): the CLI draws a progress display on stderr; with no watcher the
flow logs a line now and then. The time left comes from the per-fit estimates
(`accord.training.estimated_seconds`), scaled by how fast the estimated work has gone
so far, so a long fit that finishes counts for more than a short one.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


@dataclass
class FitProgress:
    """The fits of one run and how many are done.

    Attributes:
        total: Every member x fold fit and refit of the run.
        estimated_seconds: The fits' estimated seconds on one core, summed.
        workers: Worker processes that fit in parallel, when known.
        done: Fits finished (trained, or reused from the cache).
        reused: Of those, fits whose cached result was reused.
    """

    total: int
    estimated_seconds: float
    workers: int | None = None
    done: int = 0
    reused: int = 0
    _done_estimate: float = 0.0
    _started: float = field(default_factory=time.monotonic)
    _last_told: float = 0.0

    def finished(self, estimate: float, *, reused: bool = False) -> None:
        """Count one fit as done; a reused result takes its estimate out of the work to do."""
        self.done += 1
        if reused:
            self.reused += 1
            self.estimated_seconds -= estimate
        else:
            self._done_estimate += estimate

    @property
    def elapsed(self) -> float:
        """Seconds since the run's fits began."""
        return time.monotonic() - self._started

    @property
    def seconds_left(self) -> float | None:
        """Estimated seconds until the last fit ends; None until one has been timed (and none left: 0)."""
        if self.done >= self.total:
            return 0.0
        remaining = max(self.estimated_seconds - self._done_estimate, 0.0)
        if self._done_estimate <= 0:
            return remaining / self.workers if self.workers else None
        return remaining * self.elapsed / self._done_estimate

    def due(self, every: float) -> bool:
        """Whether a progress line is due: the first fit, the last, or `every` seconds since one was."""
        now = time.monotonic()
        if self.done in (1, self.total) or now - self._last_told >= every:
            self._last_told = now
            return True
        return False

    def plan(self) -> str:
        """One line on the work ahead, printed before the first fit."""
        cores = ""
        if self.workers:
            cores = f", about {duration(self.estimated_seconds / self.workers)} on {self.workers} workers"
        return (
            f"{self.total} fits (members x folds, and refits), estimated {duration(self.estimated_seconds)} "
            f"of fitting on one core{cores}"
        )

    def line(self) -> str:
        """One line on where the run is: fits done, elapsed, time left."""
        left = self.seconds_left
        shown = "" if left is None or self.done >= self.total else f", about {duration(left)} left"
        reused = f" ({self.reused} reused from the cache)" if self.reused else ""
        return f"fits {self.done}/{self.total} done{reused}, {duration(self.elapsed)} elapsed{shown}"


def duration(seconds: float) -> str:
    """Seconds for people: ``under 1 s``, ``42 s``, ``3 min 05 s``, ``1 h 02 min``."""
    if seconds < 0.5:
        return "under 1 s"
    s = round(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


LOG_EVERY_S = 15.0
"""Seconds between the progress lines a run logs when nobody watches."""

Watcher = Callable[[FitProgress, bool], None]
"""Called with the progress and ``False`` once before the first fit, then ``True`` after each fit."""

_watchers: list[Watcher] = []


@contextmanager
def watching(watcher: Watcher) -> Iterator[None]:
    """Have `watcher` told of every run's progress while the block runs (in this process)."""
    _watchers.append(watcher)
    try:
        yield
    finally:
        _watchers.remove(watcher)


def tell(progress: FitProgress, advanced: bool, log: Callable[[str], None]) -> None:
    """Pass the plan (``advanced`` False) to `log`, and the progress to the watchers.

    With no watcher, `log` gets a progress line when the first fit ends, at most one per
    `LOG_EVERY_S` seconds after that, and the last.
    """
    if not advanced:
        log(progress.plan())
    for watcher in list(_watchers):
        watcher(progress, advanced)
    if advanced and not _watchers and progress.due(LOG_EVERY_S):
        log(progress.line())

"""A run's time limit: which members to start, and when to stop waiting for fits.

Why: a user who gives a budget wants a published ensemble by then, made of the members
that could finish, not a run that overshoots or starts work it must throw away.

A run with ``time_limit`` seconds keeps `reserve` of them for the weights, the held-out
scores and publishing; the rest is for fits. Before any fit starts, `plan` takes the
members in the config's order (a preset's portfolio order) and keeps each one whose fits,
added to those already kept, still end within the fits' share on the cluster's slots by
their estimates (`Member.fit_seconds`, scaled by `SAFETY`). A member left out is never
started. At the deadline, fits still running or waiting are abandoned and their members
left out of the ensemble; both kinds of leaving out are listed with the reason.
"""

from __future__ import annotations

import heapq
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

RESERVE_FRACTION = 0.1
RESERVE_MIN_SECONDS = 5.0
# Estimates are one core's seconds on a typical machine; a fit here may take longer, and
# leaving a member out costs less than a member cut short after it ran.
SAFETY = 1.5


def reserve(time_limit: float) -> float:
    """Seconds of `time_limit` kept for weights, scores and publishing: 10%, at least 5 s."""
    return max(RESERVE_MIN_SECONDS, RESERVE_FRACTION * time_limit)


def fits_deadline(time_limit: float | None, start: float | None = None) -> float | None:
    """The `time.monotonic()` by which a run started at `start` (now) must end its fits, or None."""
    if time_limit is None:
        return None
    return (time.monotonic() if start is None else start) + time_limit - reserve(time_limit)


def makespan(seconds: Sequence[float], slots: int) -> float:
    """When the last of `seconds`-long fits ends on `slots` parallel slots, longest first.

    Dask starts a run's fits longest first (`accord.training.schedule.work_order`), each on
    the first free slot: this replays that order.
    """
    ends = [0.0] * max(1, slots)
    for length in sorted(seconds, reverse=True):
        heapq.heapreplace(ends, ends[0] + length)
    return max(ends)


@dataclass
class Plan:
    """The members a run starts under its limit, and those it leaves out with the reason."""

    kept: list[str]
    left_out: dict[str, str] = field(default_factory=dict)
    planned_seconds: float = 0.0


def plan(members: Sequence[str], fits: Mapping[str, Sequence[float]], slots: int, seconds: float) -> Plan:
    """Keep, in order, each member whose fits still end within `seconds` on `slots` slots.

    Each fit counts as its estimate times `SAFETY`. A fit whose kind cannot estimate it
    (infinite estimate) counts as nothing: the deadline bounds it. Where no member fits,
    the cheapest is kept, so that a run whose estimates are pessimistic still tries one.

    Args:
        members: Member names, in the order they should be preferred (config or portfolio order).
        fits: Member name -> the one-core estimates of its fits still to run (none if cached).
        slots: Fits that run at once on the cluster (worker threads).
        seconds: Seconds left for fits.

    Returns:
        The members kept (in their order) and those left out (name -> reason).
    """
    kept: list[str] = []
    chosen: list[float] = []
    left_out: dict[str, str] = {}
    costs = {name: [SAFETY * s for s in fits.get(name, ()) if math.isfinite(s)] for name in members}
    for name in members:
        if makespan([*chosen, *costs[name]], slots) <= seconds:
            kept.append(name)
            chosen.extend(costs[name])
        else:
            left_out[name] = (
                f"not started: its {len(costs[name])} fits (about {sum(costs[name]):.0f} s on one core) "
                f"would not end within the {max(seconds, 0):.0f} s the time limit leaves for fits "
                f"on {slots} slots"
            )
    if not kept and members:  # none fits by the estimates: try the cheapest, the deadline bounds it
        cheapest = min(members, key=lambda name: makespan(costs[name], slots))
        del left_out[cheapest]
        kept, chosen = [cheapest], costs[cheapest]
    return Plan(kept, left_out, makespan(chosen, slots))

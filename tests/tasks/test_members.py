"""`tasks.members._gated`: fits launched in order within the cluster's slots, and the deadline.

A real LocalCluster of two worker processes runs sleeps that stand in for fits.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import pytest
from distributed import Client, LocalCluster

from tasks.members import DeadlinePassed, _gated


@dataclass(frozen=True)
class Spec:
    label: str


@dataclass(frozen=True)
class Wrapped:
    """What `_gated` reads of a Prefect future: the Dask future inside."""

    wrapped_future: Any


def _sleep_then_stamp(seconds: float) -> tuple[float, float]:
    start = time.time()
    time.sleep(seconds)
    return start, time.time()


@pytest.fixture(scope="module")
def client():
    cluster = LocalCluster(n_workers=2, threads_per_worker=2, processes=True, dashboard_address=":0")
    with cluster, Client(cluster) as c:
        yield c


def _queue(work: list[tuple[str, float]]) -> deque:  # type: ignore[type-arg]
    return deque((Spec(name), seconds, f"key-{i}", len(work) - i) for i, (name, seconds) in enumerate(work))


@pytest.mark.slow
def test_no_more_run_at_once_than_the_capacity_and_in_queue_order(client):
    launched: list[str] = []

    def launch(spec: Spec, seconds: float, priority: int) -> Wrapped:
        launched.append(spec.label)
        return Wrapped(client.submit(_sleep_then_stamp, seconds, pure=False))

    queue = _queue([(f"m{i}", 0.4) for i in range(6)])
    pending: dict[Any, Any] = {}
    spans = []
    for future in _gated(queue, lambda: 2, launch, pending, {}, None):
        spans.append(future.wrapped_future.result())
        pending.pop(future)
    assert launched == [f"m{i}" for i in range(6)] and not queue and not pending
    # at no instant were more than two sleeps running (four threads were free): a sweep over
    # the starts and ends, an end before a start at the same instant
    events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans], key=lambda ev: (ev[0], ev[1]))
    running = [0]
    for _, step in events:
        running.append(running[-1] + step)
    assert max(running) == 2


@pytest.mark.slow
def test_at_the_deadline_ended_fits_are_yielded_and_the_rest_given_up(client):
    def launch(spec: Spec, seconds: float, priority: int) -> Wrapped:
        return Wrapped(client.submit(_sleep_then_stamp, seconds, pure=False))

    queue = _queue([("quick", 0.1), ("slow", 30.0), ("later", 0.1), ("skipped", 0.1)])
    pending: dict[Any, Any] = {}
    ended = []
    with pytest.raises(DeadlinePassed):
        for future in _gated(
            queue, lambda: 2, launch, pending, {"skipped": "left out"}, time.monotonic() + 2.0
        ):
            ended.append(pending.pop(future))
    # quick ended; later took quick's slot and ended; slow was still running; skipped never launched
    assert [name for name, _, _ in ended] == ["quick", "later"]
    assert [name for name, _, _ in pending.values()] == ["slow"]
    assert list(queue) == []  # 'skipped' was dropped (left out), nothing else waited
    for future in pending:
        future.wrapped_future.cancel()


@pytest.mark.slow
def test_work_not_launched_by_the_deadline_stays_in_the_queue(client):
    def launch(spec: Spec, seconds: float, priority: int) -> Wrapped:
        return Wrapped(client.submit(_sleep_then_stamp, seconds, pure=False))

    queue = _queue([("long", 30.0), ("waiting", 0.1)])
    pending: dict[Any, Any] = {}
    with pytest.raises(DeadlinePassed):
        for future in _gated(queue, lambda: 1, launch, pending, {}, time.monotonic() + 1.0):
            pending.pop(future)
    assert [spec.label for spec, *_ in queue] == ["waiting"]
    assert [name for name, _, _ in pending.values()] == ["long"]
    for future in pending:
        future.wrapped_future.cancel()

"""accord.training.budget: which members a time limit starts, by their fits' estimates."""

from __future__ import annotations

import math
import time

import pytest

from accord.training.budget import SAFETY, fits_deadline, makespan, plan, reserve


def test_makespan_replays_longest_first_on_the_first_free_slot():
    assert makespan([2, 3, 2, 3, 2], 2) == 7  # 3|3, then 2 on each, then the last 2
    assert makespan([5, 1, 1, 1], 2) == 5
    assert makespan([4, 4], 1) == 8
    assert makespan([], 3) == 0


def test_plan_keeps_members_in_order_while_their_fits_end_in_time():
    fits = {"a": [1.0, 1.0, 1.0], "big": [100.0], "c": [1.0], "cached": []}
    chosen = plan(["a", "big", "c", "cached"], fits, slots=1, seconds=10)
    assert chosen.kept == ["a", "c", "cached"]  # a later, cheaper member still fits
    assert list(chosen.left_out) == ["big"]
    assert "not started" in chosen.left_out["big"] and "10 s" in chosen.left_out["big"]
    assert chosen.planned_seconds == pytest.approx(4 * SAFETY)


def test_plan_uses_every_slot():
    fits = {m: [4.0] for m in "abcd"}  # 6 s each with the safety factor
    assert plan(list(fits), fits, slots=1, seconds=13).kept == ["a", "b"]
    assert plan(list(fits), fits, slots=2, seconds=13).kept == ["a", "b", "c", "d"]


def test_plan_counts_unknown_estimates_as_nothing():
    chosen = plan(["slow", "unknown", "fast"], {"slow": [1e6], "unknown": [math.inf], "fast": [1.0]}, 2, 5)
    assert chosen.kept == ["unknown", "fast"]
    assert list(chosen.left_out) == ["slow"]


def test_plan_tries_the_cheapest_member_when_none_fits():
    chosen = plan(["a", "b", "c"], {"a": [50.0], "b": [20.0, 20.0], "c": [30.0]}, 2, 5)
    assert chosen.kept == ["b"]  # 2 fits on 2 slots: 30 s, the shortest run
    assert sorted(chosen.left_out) == ["a", "c"]


def test_reserve_and_deadline():
    assert reserve(20) == 5.0 and reserve(600) == 60.0
    assert fits_deadline(None) is None
    start = time.monotonic()
    assert fits_deadline(120, start) == pytest.approx(start + 108)

"""The work of a run: per-fit estimates, longest-first order, phases and Dask keys."""

from __future__ import annotations

import math
from typing import Any

from accord.config import make_config
from accord.members import KINDS
from accord.members.base import FitShape
from accord.training.prepare import prepare
from accord.training.schedule import estimated_seconds, task_key, work_order, work_phases


def _prepared(members: list[dict[str, Any]], rows: int, features: int, classes: int) -> Any:
    source = f"synthetic:classification?n_rows={rows}&n_features={features}&n_classes={classes}&seed=0"
    return prepare(make_config({"data": source, "members": members, "folds": 3}))


def test_work_order_starts_the_fits_estimated_longest_and_ends_with_the_cheapest():
    members = [
        {"kind": "logreg"},
        {"kind": "hist_gb", "params": {"max_iter": 300}},
        {"kind": "knn"},
        {"kind": "random_forest", "params": {"n_estimators": 300}},
    ]
    data = _prepared(members, 20_000, 30, 3)
    order = work_order(data.members, data)
    assert len(order) == 16 and len({(s.kind, k) for s, k in order}) == 16
    seconds = [estimated_seconds(s, data, k) for s, k in order]
    assert seconds == sorted(seconds, reverse=True)
    # bench/parallel's forest took 4x the boosting's seconds at 30k rows: it starts first
    assert order[0][0].kind == "random_forest" and order[0][1] is None  # the refit has the most rows
    assert {(s.kind, k) for s, k in order[:4]} == {("random_forest", k) for k in (None, 0, 1, 2)}
    assert (order[4][0].kind, order[4][1]) == ("hist_gb", None)
    assert {s.kind for s, _ in order[-8:]} == {"logreg", "knn"}  # the tail holds only cheap fits
    # the boosting's trees cost the same whatever the rows; a forest's shrink with them
    small = _prepared(members, 1000, 64, 10)
    assert [s.kind for s, _ in work_order(small.members, small)[:4]] == ["hist_gb"] * 4


def test_every_member_kind_estimates_its_fits_and_more_rows_cost_more():
    for kind, cls in KINDS.items():
        task = "classification"
        params = cls.default_params(task)
        small = cls.fit_seconds(task, params, FitShape(1000, 250, features=20, classes=3))
        large = cls.fit_seconds(task, params, FitShape(100_000, 25_000, features=20, classes=3))
        assert 0 < small <= large < math.inf, kind
        if kind != "published":  # fetching a version costs the same whatever the rows
            assert large > small, kind


def test_work_phases_run_cluster_wide_members_first_one_task_at_a_time():
    members = [{"kind": "logreg"}, {"kind": "xgboost_dask"}, {"kind": "hist_gb"}]
    data = _prepared(members, 300, 5, 2)
    (first, one_at_a_time), (rest, all_at_once) = work_phases(data.members, data)
    assert [(s.kind, k) for s, k in first] == [("xgboost_dask", k) for k in (None, 0, 1, 2)]
    assert one_at_a_time and not all_at_once
    assert [(s.kind, k) for s, k in rest] == [
        (s.kind, k) for s, k in work_order(data.members, data) if s.kind != "xgboost_dask"
    ]


def test_task_keys_name_the_member_and_the_fold_or_refit():
    from dask.utils import key_split

    member = {"kind": "logreg", "name": "logreg-c0.1", "params": {"C": 0.1}}
    spec = make_config({"members": [member]}).members[0]
    assert key_split(task_key(spec, 3)) == "fold_logreg_c0_1"
    assert key_split(task_key(spec, None)) == "refit_logreg_c0_1"
    assert task_key(spec, 3) != task_key(spec, 3)  # unique: a rerun never meets an old result

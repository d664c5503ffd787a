"""Where a run's permutation importance is computed: in the flow's process when small, else on the cluster."""

from __future__ import annotations

import logging
from dataclasses import replace
from types import SimpleNamespace
from typing import Any

import pytest

from accord.config import make_config
from accord.ensembling.evaluation import evaluate
from accord.training.fit import fit_all
from accord.training.prepare import prepare
from tasks import importance
from tasks.importance import feature_importance, in_process


class _Future:
    def __init__(self, value: Any) -> None:
        self.value = value

    def result(self) -> Any:
        return self.value


class _Runner:
    """Runs each submitted task's function at once and counts the submits (the cluster's grouping)."""

    def __init__(self, threads: int) -> None:
        self.submitted = 0
        info = {"workers": {f"w{i}": {"nthreads": 1} for i in range(threads)}}
        self.client = SimpleNamespace(scheduler_info=lambda n_workers: info)

    def submit(self, task: Any, parameters: dict[str, Any]) -> _Future:
        self.submitted += 1
        values = {k: v.result() if isinstance(v, _Future) else v for k, v in parameters.items()}
        return _Future(task.fn(**values))


@pytest.fixture(scope="module")
def run():
    config = make_config({"data": "sklearn:breast_cancer", "members": [{"kind": "logreg"}], "folds": 3})
    data = prepare(config)
    oof, refits = fit_all(data, 0)
    return data, refits, evaluate(data, oof, refits, "caruana")


def test_small_shuffles_run_here_and_give_what_the_clusters_groups_give(run, monkeypatch):
    data, refits, timed = run
    # the decision reads the measured predict time: fixed here, so a busy machine cannot flip it
    report = replace(timed, timings={**timed.timings, "ensemble": {"predict_seconds": 0.005}})
    assert in_process(data, refits, report, 5)  # 30 features x 5 repeats x 5 ms: under 2 s
    here = _Runner(2)
    doc = feature_importance(here, data, refits, report, 7, logging.getLogger("t"))
    assert here.submitted == 0  # nothing staged, no task
    monkeypatch.setattr(importance, "IN_PROCESS_SECONDS", 0.0)
    assert not in_process(data, refits, report, 5)
    cluster = _Runner(2)
    grouped = feature_importance(cluster, data, refits, report, 7, logging.getLogger("t"))
    assert cluster.submitted == 1 + 4  # the staged files and rows, then 2 groups per slot
    assert doc == grouped  # the same shuffles, whatever the grouping
    assert doc is not None and len(doc["features"]) == 30


def test_members_that_may_import_tensorflow_or_slow_predictions_go_to_the_cluster(run):
    data, refits, report = run
    keras = {n: replace(r, kind="keras_mlp") for n, r in refits.items()}
    assert not in_process(data, keras, report, 5)
    slow = replace(report, timings={**report.timings, "ensemble": {"predict_seconds": 0.02}})
    assert not in_process(data, refits, slow, 5)  # 150 shuffles x 20 ms: over 2 s
    unknown = replace(report, timings={**report.timings, "ensemble": {"predict_seconds": None}})
    assert not in_process(data, refits, unknown, 5)

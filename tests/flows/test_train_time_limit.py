"""The training flow under a time limit: members that would not finish are not started, fits still
running at the limit are cut, and the version holds the rest (real Prefect server and LocalCluster)."""

from __future__ import annotations

import time

import pytest

import accord.training.schedule
import tasks.members
from accord.config import make_config
from accord.registry.store import Registry
from accord.training.schedule import estimated_seconds
from flows.train import train_ensemble

LIMIT = 30.0


@pytest.mark.slow
def test_a_time_limit_leaves_out_what_cannot_finish_and_publishes_the_rest(tmp_path, monkeypatch):
    def underestimated(spec, data, fold):  # random_forest looks cheap, so it starts and is cut
        return 0.01 if spec.kind == "random_forest" else estimated_seconds(spec, data, fold)

    monkeypatch.setattr(tasks.members, "estimated_seconds", underestimated)  # the plan
    monkeypatch.setattr(accord.training.schedule, "estimated_seconds", underestimated)  # the order
    store = (tmp_path / "registry").as_uri()
    config = make_config(
        {
            "data": "sklearn:digits",
            "members": [
                {"kind": "logreg"},
                {"kind": "extra_trees", "params": {"n_estimators": 200_000}},  # estimated in hours
                {"kind": "random_forest", "params": {"n_estimators": 4000}},  # about a minute a fit
            ],
            "folds": 3,
            "time_limit": LIMIT,
            "store": store,
            "name": "limited",
        }
    )
    start = time.monotonic()
    result = train_ensemble(config)
    took = time.monotonic() - start

    assert set(result["left_out"]) == {"extra_trees", "random_forest"}
    assert result["left_out"]["extra_trees"].startswith("not started: its 4 fits")
    assert result["left_out"]["random_forest"].startswith("cut short: its ")
    assert set(result["weights"]) == {"logreg"}
    assert took < LIMIT + 10  # without the cut, four one-minute fits on two workers

    manifest = Registry(store).read_manifest("limited", result["version"])
    assert [m["name"] for m in manifest["members"]] == ["logreg"]
    assert "importance.json" not in manifest["files"]  # the cut fits still held the workers: skipped
    assert "figures/confusion_matrix.png" in manifest["documents"]  # drawn in the flow's process
    assert manifest["left_out"] == result["left_out"]
    assert manifest["lineage"]["config"]["time_limit"] == LIMIT

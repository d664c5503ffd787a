"""The training flow for real: a Prefect API server, a LocalCluster of worker processes, S3 over HTTP."""

from __future__ import annotations

import base64
import json
import os
import re
import uuid
from unittest import mock

import numpy as np
import pytest
from prefect import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, LogFilter, LogFilterFlowRunId
from prefect.client.schemas.sorting import FlowRunSort

import accord
import tasks.importance
from accord.config import make_config
from accord.ensembling.evaluation import evaluate
from accord.ensembling.importance import DEFAULT_REPEATS, permuted_losses
from accord.ensembling.metrics import score
from accord.errors import DataError
from accord.registry.refs import parse_ref
from accord.registry.store import Registry
from accord.training.fit import fit_all
from accord.training.prepare import prepare
from accord.training.schedule import work_order
from flows.train import train_ensemble
from tests.support.cli import run_cli

MEMBERS = [
    {"kind": "logreg"},
    {"kind": "random_forest", "params": {"n_estimators": 50}},
    {"kind": "xgboost", "params": {"n_estimators": 60}},
    {"kind": "keras_mlp", "params": {"epochs": 40, "learning_rate": 0.01, "hidden_units": [32]}},
]
DATA = "synthetic:classification?n_rows=400&n_features=8&n_categorical=2&missing=0.05&n_classes=3&seed=1"


@pytest.fixture(scope="module")
def flow_run(tmp_path_factory):
    store = (tmp_path_factory.mktemp("flow") / "registry").as_uri()
    config = make_config(
        {"data": DATA, "members": MEMBERS, "folds": 3, "store": store, "name": "flowtest", "workers": 2}
    )
    with mock.patch.object(tasks.importance, "IN_PROCESS_SECONDS", 0.0):  # its shuffles on the cluster
        result = train_ensemble(config)
    return config, result


@pytest.mark.slow
def test_flow_publishes_a_loadable_version(flow_run):
    config, result = flow_run
    assert set(result) == {
        "ref",
        "version",
        "weights",
        "metrics",
        "unchanged",
        "promotion",
        "vs_ensemble",
        "timings",
        "left_out",
    }
    assert result["left_out"] == {}  # no time limit: every member is in
    assert result["promotion"]["promoted"] is True  # the alias was unset
    assert result["unchanged"] is False
    assert set(result["metrics"]) == {"ensemble", "members", "baselines"}
    assert set(result["metrics"]["baselines"]) == {"prior", "equal_vote", "best_cv_member"}
    weights = result["weights"]
    assert set(weights) == {"logreg", "random_forest", "xgboost", "keras_mlp"}
    assert all(w >= 0 for w in weights.values()) and sum(weights.values()) == pytest.approx(1.0)
    model = accord.load(result["ref"])
    data = prepare(config)
    proba = model.predict_proba(data.X_test)
    # the published ensemble scores exactly what the flow measured in memory
    assert score("classification", data.y_test, proba, 3) == pytest.approx(
        result["metrics"]["ensemble"], rel=1e-9
    )


@pytest.mark.slow
def test_flow_reports_each_models_held_out_gap_to_the_ensemble(flow_run):
    _, result = flow_run
    gaps = result["vs_ensemble"]
    members = result["metrics"]["members"]
    assert set(gaps) == {*members, "baseline:prior", "baseline:equal_vote", "baseline:best_cv_member"}
    ensemble = result["metrics"]["ensemble"]["log_loss"]
    for name, metrics in members.items():  # the mean per-row gap is the gap between the log losses
        assert gaps[name]["gap"] == pytest.approx(metrics["log_loss"] - ensemble, abs=1e-9)
        assert gaps[name]["se"] > 0
    equal = result["metrics"]["baselines"]["equal_vote"]["metrics"]["log_loss"]
    assert gaps["baseline:equal_vote"]["gap"] == pytest.approx(equal - ensemble, abs=1e-9)
    best = result["metrics"]["baselines"]["best_cv_member"]["member"]
    assert gaps["baseline:best_cv_member"] == gaps[best]  # the baseline is that member's predictions
    prior = result["metrics"]["baselines"]["prior"]["metrics"]["log_loss"]
    assert gaps["baseline:prior"]["gap"] == pytest.approx(prior - ensemble, abs=1e-9) and prior > ensemble
    published = accord.load(result["ref"]).manifest["metrics"]["vs_ensemble"]
    assert set(published) == set(gaps)
    assert all(published[m] == pytest.approx(gaps[m]) for m in gaps)


@pytest.mark.slow
def test_flow_weights_equal_a_sequential_run_with_the_same_seed(flow_run):
    config, result = flow_run
    data = prepare(config)
    oof, refits = fit_all(data, config.seed)
    report = evaluate(data, oof, refits, config.method, config.ensemble_size)
    assert report.weights == pytest.approx(result["weights"], abs=1e-12)


@pytest.mark.slow
def test_every_member_fold_ran_on_a_dask_worker_and_logged_to_one_server(flow_run):
    _, result = flow_run
    run_id = uuid.UUID(accord.load(result["ref"]).manifest["lineage"]["flow_run_id"])
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id])))
        assert runs[0].state.is_completed()
        task_runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id])))
        logs = client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])), limit=200)
    names = sorted(t.name for t in task_runs if t.name.startswith(("fit-", "refit-")))
    expected = sorted(
        [f"fit-{m}-fold-{k}" for m in weights_names(result) for k in range(3)]
        + [f"refit-{m}" for m in weights_names(result)]
    )
    assert names == expected
    assert all(t.state.is_completed() for t in task_runs)
    placements = [re.search(r"on worker (tcp://\S+) \(pid (\d+)\)", log.message) for log in logs]
    found = [(m.group(1), int(m.group(2))) for m in placements if m]
    assert len(found) == len(expected)  # every member task logged, from its worker, to this server
    assert {pid for _, pid in found}.isdisjoint({os.getpid()})
    assert len({addr for addr, _ in found}) == 2  # both workers took work


@pytest.mark.slow
def test_run_reports_leaderboard_weights_and_link_as_artifacts(flow_run):
    _, result = flow_run
    run_id = uuid.UUID(accord.load(result["ref"]).manifest["lineage"]["flow_run_id"])
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id])))
    by_key = {a.key: a for a in artifacts}
    assert {"flowtest-leaderboard", "flowtest-weights", "flowtest-version", "flowtest-summary"} <= set(by_key)
    table = by_key["flowtest-leaderboard"].data
    rows = json.loads(table) if isinstance(table, str) else table
    assert {r["model"] for r in rows} >= {"ensemble", "logreg", "keras_mlp", "baseline:equal_vote"}
    by_model = {r["model"]: r for r in rows}
    assert by_model["ensemble"]["loss_vs_ensemble"] is None
    assert by_model["logreg"]["loss_vs_ensemble"] == round(result["vs_ensemble"]["logreg"]["gap"], 4)
    assert result["ref"] in by_key["flowtest-version"].data
    assert "keras_mlp" in by_key["flowtest-weights"].data


@pytest.mark.slow
def test_importance_computed_on_the_cluster_is_published_shown_and_equal_to_a_local_run(flow_run):
    config, result = flow_run
    model = accord.load(result["ref"])
    frame = model.feature_importance()
    data = prepare(config)
    assert sorted(frame.index) == sorted(data.schema.names)
    assert (frame["n"] == DEFAULT_REPEATS).all()
    assert list(frame["importance"]) == sorted(frame["importance"], reverse=True)
    # the same shuffles in this process give the same losses as the tasks on the workers did
    top = frame.index[0]
    pairs = [(top, r) for r in range(DEFAULT_REPEATS)]
    local = permuted_losses(model, data.X_test, data.y_test, pairs, config.seed)
    baseline = model.importance["baseline"]
    assert baseline == pytest.approx(result["metrics"]["ensemble"]["log_loss"])
    assert frame.loc[top, "importance"] == pytest.approx(np.mean(local) - baseline)
    assert frame.loc[top, "importance"] > 0.01  # the most useful of 8 synthetic features matters

    run_id = uuid.UUID(model.manifest["lineage"]["flow_run_id"])
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id])))
    table = next(a for a in artifacts if a.key == "flowtest-importance").data
    rows = json.loads(table) if isinstance(table, str) else table
    assert rows[0]["feature"] == top and rows[0]["importance"] == f"{frame.loc[top, 'importance']:+.4f}"
    shown = run_cli("models", "show", result["ref"]).stdout.splitlines()
    first = shown.index(next(x for x in shown if "importance on held-out rows" in x)) + 1
    assert shown[first].endswith(
        f"{top}: {frame.loc[top, 'importance']:+.4f} ± {frame.loc[top, 'stddev']:.4f}"
    )


@pytest.mark.slow
def test_figures_and_the_report_are_published_and_shown_as_an_artifact(flow_run):
    _, result = flow_run
    parsed = parse_ref(result["ref"])
    registry = Registry(parsed.store)
    _, manifest, _ = registry.fetch(parsed)
    files = registry.read_documents(parsed.name, parsed.version or "", manifest)
    stems = ["confusion_matrix", "reliability", "weights", "error_correlation", "leaderboard", "importance"]
    assert sorted(p for p in files if p.startswith("figures/")) == sorted(f"figures/{s}.png" for s in stems)
    assert all(files[f"figures/{s}.png"].startswith(b"\x89PNG") for s in stems)  # 3 classes: no ROC
    page = files["report.html"].decode()
    assert page.count('src="data:image/png;base64,') == len(stems) and "README.md" in files
    run_id = uuid.UUID(manifest["lineage"]["flow_run_id"])
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id])))
    shown = next(a for a in artifacts if a.key == "flowtest-figures").data
    for stem in stems:
        png = base64.b64encode(files[f"figures/{stem}.png"]).decode()
        assert f"(data:image/png;base64,{png})" in shown, stem


def weights_names(result):
    return sorted(result["weights"])


@pytest.mark.slow
def test_bad_input_fails_the_flow_before_training_and_publishes_nothing(tmp_path):
    store = (tmp_path / "registry").as_uri()
    config = make_config(
        {"data": "synthetic:classification?n_rows=40", "folds": 20, "store": store, "name": "bad"}
    )
    with pytest.raises(
        DataError, match=r"class 0 of target column 'target' has 16 rows in the training split; 20-fold"
    ):
        train_ensemble(config)
    assert Registry(store).versions("bad") == []
    # what the UI shows: a Failed run whose state message names the problem; validation not retried
    with get_client(sync_client=True) as client:
        recent = client.read_flow_runs(sort=FlowRunSort.EXPECTED_START_TIME_DESC, limit=50)
        runs = [r for r in recent if r.parameters.get("config", {}).get("store") == store]
        assert len(runs) == 1 and runs[0].state.is_failed()
        assert "has 16 rows in the training split; 20-fold" in runs[0].state.message
        flow_run_filter = FlowRunFilter(id=FlowRunFilterId(any_=[runs[0].id]))
        tasks = client.read_task_runs(flow_run_filter=flow_run_filter)
    assert [t.name.rsplit("-", 1)[0] for t in tasks] == ["prepare-data"]  # once, and nothing trained
    assert tasks[0].run_count == 1


@pytest.mark.slow
def test_memory_store_is_refused_by_nothing_but_works_in_process(memory_store):
    # memory:// lives in one process; the flow publishes from the flow process, so it works.
    config = make_config(
        {
            "data": "sklearn:iris",
            "members": [{"kind": "logreg"}, {"kind": "knn"}],
            "folds": 3,
            "store": memory_store,
            "name": "mem",
            "workers": 1,
        }
    )
    result = train_ensemble(config)
    assert np.isfinite(result["metrics"]["ensemble"]["log_loss"])
    assert accord.load(result["ref"]).manifest["name"] == "mem"


@pytest.mark.slow
def test_member_tasks_start_longest_first_in_work_order(memory_store):
    # One worker runs one task at a time, so the order it starts them in is the order Dask
    # chose; the flow submits them in `work_order` (the longest estimated fits first).
    members = [
        {"kind": "knn"},
        {"kind": "logreg"},
        {"kind": "random_forest", "params": {"n_estimators": 20}},
        {"kind": "hist_gb", "params": {"max_iter": 20}},
    ]
    config = make_config(
        {"data": DATA, "members": members, "folds": 3, "store": memory_store, "name": "order", "workers": 1}
    )
    result = train_ensemble(config)
    run_id = uuid.UUID(accord.load(result["ref"]).manifest["lineage"]["flow_run_id"])
    with get_client(sync_client=True) as client:
        task_runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id])))
    started = sorted((t.start_time, t.name) for t in task_runs if t.name.startswith(("fit-", "refit-")))
    data = prepare(config)
    order = work_order(data.members, data)
    expected = [f"refit-{s.name}" if k is None else f"fit-{s.name}-fold-{k}" for s, k in order]
    assert [name for _, name in started] == expected


@pytest.mark.slow
def test_flow_times_each_members_fits_and_predictions_and_publishes_them(flow_run):
    _, result = flow_run
    timings = result["timings"]
    members = set(result["metrics"]["members"])
    assert set(timings) == {*members, "ensemble"}
    for name in members:
        assert timings[name]["fit_seconds"] > timings[name]["predict_seconds"] > 0
    assert timings["ensemble"]["fit_seconds"] == pytest.approx(
        sum(timings[m]["fit_seconds"] for m in members)
    )
    weighted = [m for m, w in result["weights"].items() if w > 0]
    assert timings["ensemble"]["predict_seconds"] == pytest.approx(
        sum(timings[m]["predict_seconds"] for m in weighted)
    )
    published = accord.load(result["ref"]).manifest["timings"]  # apart from the metrics, which a seed fixes
    assert set(published) == set(timings) and all(published[m] == pytest.approx(timings[m]) for m in timings)

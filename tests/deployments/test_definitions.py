"""Deployments against a real Prefect server: served by `accord serve`, triggered as the UI does."""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

import accord
from accord.data.dataset import read_source
from accord.registry.store import Registry
from deployments.definitions import PREDICT, PRETRAIN, TRAIN, definitions
from tests.support import ROOT
from tests.support.prefect_rest import small_config


def _flows() -> dict[str, Any]:
    from flows.predict import batch_predict
    from flows.pretrain import pretrain
    from flows.train import train_ensemble

    return {"train_ensemble": train_ensemble, "pretrain": pretrain, "batch_predict": batch_predict}


def test_every_default_validates_against_its_flow():
    from accord.config import TrainConfig
    from flows.pretrain import PretrainConfig

    flows = _flows()
    for d in definitions():
        validated = flows[d.entrypoint.split(":")[1]].validate_parameters(d.parameters)
        assert set(d.parameters) <= set(validated), d.full_name
    assert {d.full_name for d in definitions()} == {TRAIN, PRETRAIN, PREDICT}
    by_name = {d.full_name: d for d in definitions()}
    assert isinstance(
        _flows()["train_ensemble"].validate_parameters(by_name[TRAIN].parameters)["config"], TrainConfig
    )
    pretrain = _flows()["pretrain"].validate_parameters(by_name[PRETRAIN].parameters)["config"]
    assert isinstance(pretrain, PretrainConfig)
    with pytest.raises(Exception, match="folds"):
        _flows()["train_ensemble"].validate_parameters({"config": {"folds": 1}})


def test_prefect_yaml_declares_the_same_deployments():
    document = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    declared = {f"{d['entrypoint'].split(':')[1]}|{d['name']}": d for d in document["deployments"]}
    in_code = {d.entrypoint.split(":")[1] + "|" + d.name: d for d in definitions()}
    assert set(declared) == set(in_code)
    for key, d in in_code.items():
        y = declared[key]
        assert y["entrypoint"] == d.entrypoint
        assert [s["cron"] for s in y["schedules"]] == [d.cron]
        if d.concurrency_limit:
            assert y["concurrency_limit"] == {"limit": d.concurrency_limit, "collision_strategy": "ENQUEUE"}
        else:
            assert "concurrency_limit" not in y
        assert (ROOT / d.entrypoint.split(":")[0]).is_file()
        assert y["work_pool"]["name"] == document["deployments"][0]["work_pool"]["name"]
        _flows()[d.entrypoint.split(":")[1]].validate_parameters(
            y["parameters"]
        )  # the yaml defaults validate


@pytest.mark.slow
def test_the_run_form_describes_every_field(served):
    api, _, _ = served
    schema = api.deployment(TRAIN)["parameter_openapi_schema"]
    config = schema["definitions"]["TrainConfig"]["properties"]
    assert all(field.get("description") for field in config.values()), "every form field has help text"
    assert set(config["method"]["enum"]) == {"caruana", "optimize", "stacking", "equal", "hard"}
    member = schema["definitions"]["MemberSpec"]["properties"]
    assert "xgboost" in member["kind"]["enum"] and "keras_transfer" in member["kind"]["enum"]
    assert config["members"]["items"] == {"$ref": "#/definitions/MemberSpec"}  # an editable list


@pytest.mark.slow
def test_a_run_created_as_the_ui_does_trains_publishes_and_shows_its_work(served):
    api, store, _ = served
    deployment = api.deployment(TRAIN)
    assert deployment["concurrency_limit"] == 1 or deployment["global_concurrency_limit"]["limit"] == 1
    response = api.create_run(deployment["id"], {"config": small_config(store, "from-ui", seed=3)})
    assert response.status_code == 201, response.text
    run = api.wait(response.json()["id"])
    assert run["state_type"] == "COMPLETED", run["state"]
    versions = Registry(store).versions("from-ui")
    assert len(versions) == 1
    manifest = Registry(store).read_manifest("from-ui", versions[0])
    assert manifest["lineage"]["flow_run_id"] == run["id"]
    # what the UI shows for the run: task runs, worker logs, artifacts
    tasks = api.filter("task_runs", {"task_runs": {"flow_run_id": {"any_": [run["id"]]}}})
    names = {t["name"] for t in tasks}
    assert {"fit-logreg-fold-0", "fit-knn-fold-1", "refit-logreg", "refit-knn"} <= names
    assert any(n.startswith("publish-version") for n in names)
    logs = api.filter("logs", {"logs": {"flow_run_id": {"any_": [run["id"]]}}, "limit": 200})
    assert any("on worker tcp://" in entry["message"] for entry in logs)
    artifacts = api.filter("artifacts", {"artifacts": {"flow_run_id": {"any_": [run["id"]]}}})
    keys = {a["key"] for a in artifacts}
    assert {"from-ui-leaderboard", "from-ui-weights", "from-ui-version", "from-ui-summary"} <= keys
    by_key = {a["key"]: a for a in artifacts}
    assert by_key["from-ui-leaderboard"]["type"] == "table"
    assert versions[0] in str(by_key["from-ui-version"]["data"])  # a link to the published version


@pytest.mark.slow
def test_an_invalid_parameter_is_rejected_by_the_server(served):
    api, store, _ = served
    deployment = api.deployment(TRAIN)
    response = api.create_run(deployment["id"], {"config": small_config(store, "bad", folds="many")})
    assert response.status_code == 409
    assert "folds" in response.text and "'many' is not of type 'integer'" in response.text
    response = api.create_run(deployment["id"], {"config": small_config(store, "bad", method="vote")})
    assert response.status_code == 409 and "'vote' is not one of" in response.text
    assert not Registry(store).versions("bad")


@pytest.mark.slow
def test_a_near_due_schedule_fires_and_completes(served):
    api, store, _ = served
    deployment = api.deployment(TRAIN)
    anchor = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=20)  # the scheduler looks ahead, not back
    body = [
        {
            "schedule": {"interval": 3600, "anchor_date": anchor.isoformat(), "timezone": "UTC"},
            "active": True,
            "parameters": {"config": small_config(store, "scheduled")},
        }
    ]
    r = api.post(f"deployments/{deployment['id']}/schedules", body)
    assert r.status_code == 201, r.text
    schedule_id = r.json()[0]["id"]
    try:
        deadline = time.monotonic() + 240
        fired: list[dict[str, Any]] = []
        while time.monotonic() < deadline and not fired:
            runs = api.filter("flow_runs", {"flow_runs": {"deployment_id": {"any_": [deployment["id"]]}}})
            fired = [
                run
                for run in runs
                if run["auto_scheduled"]
                and run["parameters"]["config"]["name"] == "scheduled"
                and dt.datetime.fromisoformat(run["expected_start_time"]) <= anchor + dt.timedelta(seconds=1)
            ]
            time.sleep(1)
        assert fired, "the schedule did not create a run"
        run = api.wait(fired[0]["id"])
        assert run["state_type"] == "COMPLETED", run["state"]
        assert len(Registry(store).versions("scheduled")) == 1
    finally:
        api.http.delete(f"deployments/{deployment['id']}/schedules/{schedule_id}")


@pytest.mark.slow
def test_two_triggers_never_train_at_once(served):
    api, store, _ = served
    deployment = api.deployment(TRAIN)
    created = [
        api.create_run(deployment["id"], {"config": small_config(store, "queued", seed=s)}) for s in (1, 2)
    ]
    assert all(r.status_code == 201 for r in created), [(r.status_code, r.text) for r in created]
    ids = [r.json()["id"] for r in created]
    runs = [api.wait(i) for i in ids]
    assert all(r["state_type"] == "COMPLETED" for r in runs)
    first, second = sorted(runs, key=lambda r: r["start_time"])
    assert second["start_time"] >= first["end_time"], "the runs overlapped"
    assert "AwaitingConcurrencySlot" in api.states(second["id"])  # enqueued, not dropped
    assert len(Registry(store).versions("queued")) == 2


@pytest.mark.slow
def test_batch_predict_deployment_matches_load_predict(served):
    api, store, work = served
    train = api.create_run(api.deployment(TRAIN)["id"], {"config": small_config(store, "to-score")})
    assert api.wait(train.json()["id"])["state_type"] == "COMPLETED"
    frame, target = read_source("sklearn:iris")
    rows = frame.drop(columns=[target]).sample(frac=1.0, random_state=0)
    source = work / "rows.parquet"
    rows.to_parquet(source, index=False)
    output = work / "scored" / "iris.parquet"
    ref = f"{store}/to-score@production"
    params = {
        "model": ref,
        "input": source.as_uri(),
        "output": output.as_uri(),
        "chunk_rows": 40,
        "workers": 1,
    }
    response = api.create_run(api.deployment(PREDICT)["id"], {"config": params})
    assert response.status_code == 201, response.text
    run = api.wait(response.json()["id"])
    assert run["state_type"] == "COMPLETED", run["state"]
    scored = pd.read_parquet(output)
    model = accord.load(ref)
    np.testing.assert_array_equal(scored["prediction"].to_numpy(), model.predict(rows))
    np.testing.assert_allclose(
        scored[[f"proba_{c}" for c in model.classes_]], model.predict_proba(rows), atol=1e-12
    )


@pytest.mark.slow
def test_prefect_deployment_run_with_a_param(served):
    api, store, work = served
    config = json.dumps(small_config(store, "from-prefect-cli"))
    prefect = str(Path(sys.executable).parent / "prefect")
    done = subprocess.run(
        [prefect, "deployment", "run", TRAIN, "--param", f"config={config}"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=work,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    run_id = re.search(r"UUID: ([0-9a-f-]{36})", done.stdout)
    assert run_id, done.stdout
    assert api.wait(run_id.group(1))["state_type"] == "COMPLETED"
    assert len(Registry(store).versions("from-prefect-cli")) == 1

"""The training flow with final: bag on a real Prefect server and LocalCluster: no refit tasks, the
fold models published and loaded, and a rerun served from the cache."""

from __future__ import annotations

import pytest

import accord
from accord.config import make_config
from accord.ensembling.metrics import score
from accord.members.bagged import Bagged
from accord.registry.store import Registry
from accord.training.prepare import prepare
from flows.train import train_ensemble

DATA = "synthetic:regression?n_rows=400&n_features=6&n_categorical=1&noise=10&seed=5"


@pytest.mark.slow
def test_a_bagging_run_publishes_its_fold_models_and_a_rerun_reuses_them(tmp_path):
    store = (tmp_path / "registry").as_uri()
    values = {
        "data": DATA,
        "members": [{"kind": "logreg"}, {"kind": "xgboost", "params": {"n_estimators": 50}}],
        "folds": 3,
        "final": "bag",
        "store": store,
        "name": "bagged",
    }
    config = make_config(values)
    result = train_ensemble(config)

    manifest = Registry(store).read_manifest("bagged", result["version"])
    files = list(manifest["files"])  # path -> size and sha256
    for member in ("logreg", "xgboost"):
        assert {f"members/{member}/fold-{k}" for k in range(3)} <= {p.rsplit("/", 1)[0] for p in files}
        assert not any(p.startswith(f"members/{member}/model") for p in files)  # no refit was published
    assert manifest["lineage"]["config"]["final"] == "bag"

    model = accord.load(result["ref"])
    assert all(isinstance(m, Bagged) and len(m.models) == 3 for m in model.members.values())
    data = prepare(config)
    assert score("regression", data.y_test, model.predict(data.X_test)) == pytest.approx(
        result["metrics"]["ensemble"], rel=1e-9
    )  # the published bags predict what the run measured

    again = train_ensemble(make_config(values))
    assert again["unchanged"] is True and again["ref"] == result["ref"]

"""`accord.AccordClassifier` / `AccordRegressor`: unfitted scikit-learn estimators that train an ensemble."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone, is_classifier, is_regressor
from sklearn.datasets import load_diabetes, load_wine
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import check_estimator

import accord
from accord.registry.store import Registry

# Every check of scikit-learn 1.9's check_estimator passes; a check that needs skipping goes
# here with its reason, and the test below asserts this list.
EXPECTED_FAILED_CHECKS: dict[str, str] = {}
QUICK = {"members": ["logreg"], "folds": 2, "in_process": True}


@pytest.mark.parametrize("estimator", [accord.AccordClassifier(**QUICK), accord.AccordRegressor(**QUICK)])
def test_check_estimator_passes_every_check(estimator):
    results = check_estimator(estimator, expected_failed_checks=EXPECTED_FAILED_CHECKS, on_fail=None)
    failed = {r["check_name"]: str(r["exception"])[:200] for r in results if r["status"] == "failed"}
    assert failed == {}
    assert len([r for r in results if r["status"] == "passed"]) > 45


def test_unfitted_parameters_are_train_configs_and_clone_keeps_them():
    est = accord.AccordClassifier(members=["logreg", "knn"], folds=3, time_limit=60, seed=4, name="wine")
    params = est.get_params()
    assert params["members"] == ["logreg", "knn"] and params["folds"] == 3 and params["time_limit"] == 60
    assert {"preset", "method", "final", "workers", "dask_address", "store", "in_process"} <= set(params)
    copy = clone(est).set_params(preset="fast", members=None)
    assert copy.get_params()["preset"] == "fast" and est.get_params()["members"] == ["logreg", "knn"]
    assert is_classifier(est) and is_regressor(accord.AccordRegressor())
    bad = accord.AccordClassifier(members=["logreg"], preset="fast", in_process=True)
    with pytest.raises(ValueError, match="preset"):
        bad.fit(np.random.default_rng(0).normal(size=(60, 3)), np.arange(60) % 2)


@pytest.mark.slow
def test_fit_runs_the_training_flow_publishes_and_predicts_as_the_published_version(tmp_path):
    X, y = load_wine(return_X_y=True, as_frame=True)
    store = (tmp_path / "registry").as_uri()
    est = accord.AccordClassifier(members=["logreg", "random_forest"], folds=3, store=store, name="wine-skl")
    assert est.fit(X, y) is est
    assert est.ref_ is not None and Registry(store).versions("wine-skl") == [est.result_["version"]]
    published = accord.load(est.ref_)
    np.testing.assert_array_equal(est.predict_proba(X), published.predict_proba(X))
    assert list(est.classes_) == [0, 1, 2] and est.n_features_in_ == 13
    assert list(est.feature_names_in_) == list(X.columns)
    assert set(est.result_["weights"]) == {"logreg", "random_forest"}
    assert est.result_["metrics"]["members"]  # the flow's summary: held-out metrics of each member
    assert est.score(X, y) > 0.95
    np.testing.assert_array_equal(est.predict(X.to_numpy()), est.predict(X))  # arrays in column order


def test_cross_validation_and_pipelines_fit_one_ensemble_per_fold():
    X, y = load_diabetes(return_X_y=True)
    est = accord.AccordRegressor(members=["logreg", "knn"], folds=3, in_process=True)
    scores = cross_val_score(est, X, y, cv=3)
    assert scores.shape == (3,) and 0.3 < scores.mean() < 0.7
    pipeline = make_pipeline(StandardScaler(), est).fit(X[:300], y[:300])
    fitted = pipeline[-1]
    assert fitted.ref_ is None  # no store: a temporary one, gone once the ensemble was loaded
    assert set(fitted.ensemble_.members) == {"logreg", "knn"}
    assert fitted.score(StandardScaler().fit(X[:300]).transform(X[300:]), y[300:]) > 0.3
    with pytest.raises(ValueError, match="X has 4 features, but AccordRegressor is expecting 10"):
        fitted.predict(np.zeros((2, 4)))
    frame = pd.DataFrame(X[:100], columns=[f"f{i}" for i in range(10)])
    assert accord.AccordRegressor(**QUICK).fit(frame, y[:100]).predict(frame).shape == (100,)


def test_an_array_predicts_as_the_table_fit_was_given_even_when_a_column_was_dropped():
    rng = np.random.default_rng(0)
    table = pd.DataFrame(rng.normal(size=(200, 3)), columns=["a", "b", "c"])
    table.insert(0, "row_id", np.arange(200) + 1000)  # whole numbers, unique per row: ID-like
    y = (table["a"] + table["b"] > 0).astype(int)
    est = accord.AccordClassifier(**QUICK).fit(table, y)
    assert "row_id" in est.ensemble_.schema.dropped and est.n_features_in_ == 4
    np.testing.assert_array_equal(est.predict(table.to_numpy()), est.predict(table))
    with pytest.raises(ValueError, match="time_limit needs the training flow"):
        accord.AccordClassifier(**QUICK, time_limit=30).fit(table, y)

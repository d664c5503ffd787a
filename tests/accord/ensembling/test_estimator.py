"""A loaded ensemble is a fitted scikit-learn estimator: scikit-learn's own tools work on it.

Each test publishes nothing new: one classification and one regression version are
published once (fitted in this process), loaded with `accord.load`, and handed to
scikit-learn as a user would.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone, is_classifier, is_regressor
from sklearn.frozen import FrozenEstimator
from sklearn.inspection import permutation_importance
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.utils import get_tags

import accord
from accord.config import make_config
from accord.ensembling.ensemble import EnsembleClassifier, EnsembleRegressor
from accord.ensembling.evaluation import evaluate
from accord.errors import SchemaError
from accord.registry.publishing import publish, version_payload
from accord.registry.store import Registry
from accord.training.fit import fit_all
from accord.training.prepare import prepare

MEMBERS = [{"kind": "logreg"}, {"kind": "random_forest", "params": {"n_estimators": 30}}]


def _published(tmp_path_factory: pytest.TempPathFactory, data: str, name: str) -> tuple[str, object]:
    store = (tmp_path_factory.mktemp(name) / "registry").as_uri()
    cfg = make_config({"data": data, "members": MEMBERS, "folds": 3, "store": store, "name": name})
    p = prepare(cfg)
    oof, refits = fit_all(p, 0)
    report = evaluate(p, oof, refits, "caruana")
    files, manifest = version_payload(p, refits, report, config=cfg.model_dump(mode="json"))
    return publish(Registry(store), name, files, manifest), p


@pytest.fixture(scope="module")
def wine(tmp_path_factory):
    ref, p = _published(tmp_path_factory, "sklearn:wine", "wine")
    return accord.load(ref), p


@pytest.fixture(scope="module")
def diabetes(tmp_path_factory):
    ref, p = _published(tmp_path_factory, "sklearn:diabetes", "diabetes")
    return accord.load(ref), p


def test_a_loaded_classifier_is_a_fitted_scikit_learn_classifier(wine):
    model, p = wine
    assert isinstance(model, EnsembleClassifier)
    assert is_classifier(model) and not is_regressor(model)
    assert get_tags(model).estimator_type == "classifier"
    assert get_tags(model).input_tags.allow_nan
    assert list(model.classes_) == list(p.schema.classes)
    assert model.n_features_in_ == 13
    assert list(model.feature_names_in_) == p.schema.names
    labels = np.asarray(p.schema.classes)[p.y_test]
    assert model.score(p.X_test, labels) == accuracy_score(labels, model.predict(p.X_test))
    assert model.score(p.X_test, labels) > 0.85

    params = model.get_params()
    assert set(params) == {"members", "rule", "schema", "manifest", "importance"}
    assert params["manifest"]["ref"] == model.manifest["ref"]
    copy = clone(model)
    assert type(copy) is EnsembleClassifier and copy is not model
    np.testing.assert_array_equal(copy.predict_proba(p.X_test), model.predict_proba(p.X_test))
    other = clone(model).set_params(manifest={"ref": "elsewhere"})
    assert other.manifest == {"ref": "elsewhere"} and model.manifest["ref"] != "elsewhere"


def test_numpy_input_in_schema_order_predicts_as_the_table_does(wine):
    model, p = wine
    array = p.X_test[model.feature_names_in_].to_numpy()
    np.testing.assert_array_equal(model.predict_proba(array), model.predict_proba(p.X_test))
    np.testing.assert_array_equal(model.predict(array.tolist()), model.predict(p.X_test))
    with pytest.raises(SchemaError, match=r"2-D array of 13 columns in the order \['alcohol'"):
        model.predict(array[:, :12])
    bad = array.astype(object)
    bad[0, 2] = "lots"
    with pytest.raises(SchemaError, match=r"column 2 \('ash'\) must hold numbers"):
        model.predict(bad)


def test_pipelines_cross_validation_and_permutation_importance_take_it(wine):
    model, p = wine
    labels = np.asarray(p.schema.classes)[p.y_test]
    as_table = FunctionTransformer(lambda a: pd.DataFrame(a, columns=p.schema.names))
    pipeline = Pipeline([("table", as_table), ("ensemble", model)])
    np.testing.assert_array_equal(pipeline.predict(p.X_test.to_numpy()), model.predict(p.X_test))

    fitted = make_pipeline(as_table, FrozenEstimator(model)).fit(p.X_test.to_numpy(), labels)
    np.testing.assert_array_equal(fitted.predict(p.X_test.to_numpy()), model.predict(p.X_test))
    scores = cross_val_score(FrozenEstimator(model), p.X_test, labels, cv=3)
    predicted = model.predict(p.X_test)
    expected = [
        accuracy_score(labels[k], predicted[k]) for _, k in StratifiedKFold(3).split(p.X_test, labels)
    ]
    np.testing.assert_allclose(scores, expected)  # the frozen model scored on each fold, never refitted

    with pytest.raises(TypeError, match="FrozenEstimator"):
        cross_val_score(model, p.X_test, labels, cv=3, error_score="raise")

    result = permutation_importance(model, p.X_test, labels, n_repeats=3, random_state=0)
    assert result.importances_mean.shape == (13,)
    top = p.schema.names[int(np.argmax(result.importances_mean))]
    assert result.importances_mean.max() > 0.02  # shuffling the most useful column costs accuracy
    assert top in {"proline", "flavanoids", "color_intensity", "od280/od315_of_diluted_wines", "alcohol"}


def test_a_loaded_regressor_is_a_fitted_scikit_learn_regressor(diabetes):
    model, p = diabetes
    assert isinstance(model, EnsembleRegressor)
    assert is_regressor(model) and not is_classifier(model)
    assert not hasattr(model, "predict_proba") and not hasattr(model, "classes_")
    assert model.score(p.X_test, p.y_test) == pytest.approx(r2_score(p.y_test, model.predict(p.X_test)))
    assert model.score(p.X_test, p.y_test) > 0.3
    scores = cross_val_score(FrozenEstimator(model), p.X_test, p.y_test, cv=3)
    assert scores.shape == (3,) and scores.mean() > 0.2
    array = p.X_test[model.feature_names_in_].to_numpy()
    np.testing.assert_allclose(model.predict(array), model.predict(p.X_test))

"""accord.members.bagged and final: bag in-process: fold models kept, averaged, published and loaded."""

from __future__ import annotations

import json

import numpy as np
import pytest

from accord.config import make_config
from accord.ensembling.ensemble import build_ensemble, member_files
from accord.errors import ConfigError, IntegrityError
from accord.members.bagged import Bagged, load_member
from accord.members.parents import pick_member
from accord.training.fit import bag_of, fit_all, fit_fold
from accord.training.prepare import prepare
from accord.training.schedule import work_order

DATA = "synthetic:classification?n_rows=300&n_features=6&n_categorical=1&n_classes=3&seed=2"


@pytest.fixture(scope="module")
def bagging():
    config = make_config(
        {"data": DATA, "members": [{"kind": "logreg"}, {"kind": "knn"}], "folds": 3, "final": "bag"}
    )
    return prepare(config)


def test_a_bagging_run_has_no_refits_and_its_folds_keep_their_models(bagging):
    assert bagging.bag
    assert [k for _, k in work_order(bagging.members, bagging)].count(None) == 0
    result = fit_fold(bagging.members[0], bagging, 1, seed=0)
    assert result.model is not None and result.model.kind == "logreg"
    assert result.model.test_predictions.shape == (len(bagging.y_test), 3)


def test_the_bag_predicts_the_mean_of_its_fold_models_and_round_trips(bagging):
    spec = bagging.members[0]
    folds = [fit_fold(spec, bagging, k, seed=0) for k in range(3)]
    bag = bag_of(folds)
    expected = np.mean([f.model.test_predictions for f in folds], axis=0)
    np.testing.assert_allclose(bag.test_predictions, expected)
    assert [i["kind"] for i in bag.info["bag"]] == ["logreg"] * 3
    assert sorted({p.split("/")[0] for p in bag.files}) == ["fold-0", "fold-1", "fold-2"]

    loaded = load_member("logreg", bag.files, json.loads(json.dumps(bag.info)))
    assert isinstance(loaded, Bagged) and loaded.kind == "logreg" and len(loaded.models) == 3
    np.testing.assert_allclose(loaded.predict(bagging.X_test), expected, rtol=1e-10)
    with pytest.raises(TypeError, match="assembled from fold fits"):
        loaded.fit(bagging.X_train, bagging.y_train, bagging.schema)
    with pytest.raises(IntegrityError, match="belongs to no fold of 3"):
        load_member("logreg", {**bag.files, "fold-7/model.skops": b"x"}, bag.info)


def test_a_published_bagging_ensemble_loads_and_a_transfer_cannot_start_from_a_bag(bagging):
    from accord.ensembling.evaluation import evaluate
    from accord.registry.publishing import version_payload

    oof, refits = fit_all(bagging, seed=0)
    report = evaluate(bagging, oof, refits, "caruana")
    files, manifest = version_payload(bagging, refits, report, config={})
    assert "members/logreg/fold-2/model.skops" in files and "members/logreg/model.skops" not in files
    ensemble = build_ensemble(files, {**manifest, "ref": "memory://x/m:1"})
    combined = report.rule.combine([refits[n].test_predictions for n in report.members])
    np.testing.assert_allclose(ensemble.predict_proba(bagging.X_test), combined, rtol=1e-9)
    with pytest.raises(ConfigError, match="is a bag of 3 fold models"):
        pick_member(ensemble, ["logreg"], None, "child")
    assert member_files("a", {"kind": "logreg"}, {}) == {"members/a/member.json": b'{"kind": "logreg"}'}


def test_bagging_refuses_members_that_train_across_the_cluster():
    config = make_config({"data": DATA, "members": [{"kind": "xgboost_dask"}], "final": "bag"})
    with pytest.raises(ConfigError, match=r"final: 'bag' keeps every fold model.*\['xgboost_dask'\]"):
        prepare(config)

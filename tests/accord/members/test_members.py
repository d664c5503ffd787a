from __future__ import annotations

import os
import platform
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from accord.config import make_config
from accord.errors import ConfigError, IntegrityError
from accord.members import KINDS, member_class, skops_io
from accord.training.prepare import prepare

FAST = {
    "keras_mlp": {"epochs": 40, "learning_rate": 0.01},
    "random_forest": {"n_estimators": 20},
    "extra_trees": {"n_estimators": 20},
    "hist_gb": {"max_iter": 20},
    "xgboost": {"n_estimators": 20},
}


@pytest.fixture(scope="module")
def classification():
    cfg = make_config(
        {
            "data": "synthetic:classification?n_rows=160&n_features=5&n_categorical=1&missing=0.05"
            "&n_classes=3",
            "folds": 3,
            "store": "memory://unused",
        }
    )
    return prepare(cfg)


@pytest.fixture(scope="module")
def regression():
    cfg = make_config(
        {
            "data": "synthetic:regression?n_rows=160&n_features=5&n_categorical=1&missing=0.05",
            "folds": 3,
            "store": "memory://unused",
        }
    )
    return prepare(cfg)


# Kinds that need a parent are tested in test_transfer.py; keras_cnn needs images; dp_logreg needs its
# feature bounds and noise from a run's privacy account (test_dp.py).
STANDALONE = sorted(
    set(KINDS) - {"keras_transfer", "xgboost_continue", "published", "keras_cnn", "dp_logreg"}
)


@pytest.mark.slow
@pytest.mark.parametrize("kind", STANDALONE)
@pytest.mark.parametrize("task", ["classification", "regression"])
def test_every_kind_fits_predicts_and_round_trips(kind, task, classification, regression):
    data = classification if task == "classification" else regression
    cls = member_class(kind)
    member = cls(data.task, FAST.get(kind, {}), n_classes=data.n_classes, seed=0)
    member.fit(data.X_train, data.y_train, data.schema)
    pred = member.predict(data.X_test)
    if task == "classification":
        assert pred.shape == (len(data.X_test), data.n_classes)
        np.testing.assert_allclose(pred.sum(axis=1), 1.0, atol=1e-6)
        assert (np.argmax(pred, axis=1) == data.y_test).mean() > 1 / data.n_classes
    else:
        assert pred.shape == (len(data.X_test),)
        assert np.corrcoef(pred, data.y_test)[0, 1] > 0.3
    files = member.save()
    assert not any(name.endswith((".pkl", ".pickle", ".joblib", ".h5")) for name in files)
    loaded = cls.load(files, member.info())
    np.testing.assert_allclose(loaded.predict(data.X_test), pred, rtol=1e-6, atol=1e-8)


def test_unknown_parameter_is_refused_with_a_suggestion():
    with pytest.raises(
        ConfigError,
        match=r"member 'rf' \(kind random_forest\): unknown parameter 'n_estimatorz'.*"
        r"Did you mean 'n_estimators'",
    ):
        member_class("random_forest").check_params("rf", "classification", {"n_estimatorz": 3})


@pytest.mark.parametrize(
    ("kind", "params", "match"),
    [
        ("random_forest", {"n_estimators": -1}, "n_estimators"),
        ("logreg", {"C": "big"}, "'C' parameter"),
        ("xgboost", {"max_depth": 0}, "'max_depth' must be a positive integer; found 0"),
        ("keras_mlp", {"hidden_units": []}, "'hidden_units' must be a non-empty list"),
        ("keras_mlp", {"dropout": 2}, r"'dropout' must be a number in \[0.0, 0.95\]"),
    ],
)
def test_bad_parameter_values_are_refused_before_training(kind, params, match):
    with pytest.raises(ConfigError, match=match):
        member_class(kind).check_params(kind, "classification", params)


def test_unknown_kind_is_refused_by_the_config():
    with pytest.raises(ConfigError, match=r"members\.0\.kind.*'logreg'"):
        make_config({"members": [{"kind": "gpt"}]})


def test_skops_refuses_untrusted_types():
    from sklearn.dummy import DummyClassifier

    data = skops_io.dumps(DummyClassifier().fit([[0], [1]], [0, 1]))
    with pytest.raises(
        IntegrityError, match=r"types accord does not trust: \['sklearn.dummy.DummyClassifier'\]"
    ):
        skops_io.loads(data)
    with pytest.raises(IntegrityError, match="not a valid skops file"):
        skops_io.loads(b"\x80\x04K\x01.")  # a pickle is not a skops file


def test_random_forest_caps_each_trees_leaves_unless_the_cap_is_lifted(classification):
    from accord.members.sklearn_kinds import MAX_LEAF_NODES

    data, cls = classification, member_class("random_forest")

    def forest(**params):
        member = cls(data.task, {"n_estimators": 5, **params}, n_classes=data.n_classes, seed=0)
        return member.fit(data.X_train, data.y_train, data.schema).pipeline_[-1]

    assert forest().max_leaf_nodes == MAX_LEAF_NODES
    assert max(tree.get_n_leaves() for tree in forest(max_leaf_nodes=8).estimators_) <= 8
    lifted = forest(max_leaf_nodes=None)
    assert lifted.max_leaf_nodes is None
    assert max(tree.get_n_leaves() for tree in lifted.estimators_) > 8
    extra = member_class("extra_trees")(data.task, {"n_estimators": 5}, n_classes=data.n_classes, seed=0)
    assert extra.fit(data.X_train, data.y_train, data.schema).pipeline_[-1].max_leaf_nodes is None


def test_skops_files_hold_their_arrays_deflated(classification):
    import io
    import zipfile

    data = classification
    member = member_class("extra_trees")(data.task, {"n_estimators": 20}, n_classes=data.n_classes, seed=0)
    files = member.fit(data.X_train, data.y_train, data.schema).save()
    with zipfile.ZipFile(io.BytesIO(files["model.skops"])) as archive:
        arrays = [i for i in archive.infolist() if i.filename.endswith(".npy")]
    assert arrays and {i.compress_type for i in arrays} == {zipfile.ZIP_DEFLATED}
    assert sum(i.compress_size for i in arrays) < sum(i.file_size for i in arrays) / 2


@pytest.mark.slow
def test_keras_cnn_on_images_round_trips():
    data = prepare(make_config({"data": "sklearn:digits?n_rows=400", "folds": 3, "store": "memory://unused"}))
    assert data.members[0].kind != "keras_cnn"  # default members; the CNN is built directly below
    cls = member_class("keras_cnn")
    assert cls.resolve_params("cnn", {}, data.schema) == {}
    member = cls(data.task, {"epochs": 15, "filters": [8]}, n_classes=10, seed=0)
    member.fit(data.X_train, data.y_train, data.schema)
    pred = member.predict(data.X_test)
    assert pred.shape == (len(data.X_test), 10)
    assert (pred.argmax(axis=1) == data.y_test).mean() > 0.5
    loaded = cls.load(member.save(), member.info())
    np.testing.assert_allclose(loaded.predict(data.X_test), pred, rtol=1e-6, atol=1e-7)


def _fit_keras(kind, data, params, steps, monkeypatch):
    """A member of `kind` fitted with `steps` batches per call into TensorFlow."""
    from accord.members import keras_kind

    monkeypatch.setattr(keras_kind, "STEPS_PER_EXECUTION", steps)
    member = member_class(kind)(data.task, params, n_classes=data.n_classes, seed=0)
    return member.fit(data.X_train, data.y_train, data.schema)


@pytest.mark.slow
@pytest.mark.parametrize(
    "kind, source, params",
    [
        ("keras_mlp", "synthetic:classification?n_rows=400&n_features=5&n_classes=3", {"epochs": 8}),
        ("keras_mlp", "synthetic:regression?n_rows=400&n_features=5", {"epochs": 8}),
        ("keras_cnn", "sklearn:digits?n_rows=300", {"epochs": 4, "filters": [4]}),
    ],
)
def test_keras_runs_many_batches_per_call_and_trains_the_same_weights(kind, source, params, monkeypatch):
    from accord.members.keras_kind import STEPS_PER_EXECUTION

    data = prepare(make_config({"data": source, "folds": 3, "store": "memory://unused"}))
    # 400 rows: 8 batches of 32 an epoch, fewer than one call takes; the last call is partial
    assert STEPS_PER_EXECUTION > 1
    many = _fit_keras(kind, data, params, STEPS_PER_EXECUTION, monkeypatch)
    one = _fit_keras(kind, data, params, 1, monkeypatch)
    assert (many.model_.steps_per_execution, one.model_.steps_per_execution) == (STEPS_PER_EXECUTION, 1)
    assert len(many.model_.history.history["loss"]) == len(one.model_.history.history["loss"])
    np.testing.assert_array_equal(many.predict(data.X_test), one.predict(data.X_test))


@pytest.mark.slow
def test_nan_and_inf_features_are_handled_by_each_members_preprocessing(tmp_path):
    from accord.training.fit import fit_all

    rng = np.random.default_rng(3)
    frame = pd.DataFrame(rng.normal(size=(160, 4)), columns=["a", "b", "c", "d"])
    frame["city"] = rng.choice(["x", "y", None], 160)
    frame["target"] = (frame["a"] + frame["b"] > 0).astype(int)
    frame.loc[::7, "a"] = np.nan
    frame.loc[::11, "b"] = np.inf
    frame.loc[::13, "c"] = -np.inf
    path = tmp_path / "dirty.csv"
    frame.to_csv(path, index=False)
    kinds = ["logreg", "svc", "knn", "random_forest", "hist_gb", "xgboost", "keras_mlp"]
    members = [{"kind": k, "params": {"epochs": 5}} if k == "keras_mlp" else {"kind": k} for k in kinds]
    data = prepare(
        make_config(
            {"data": path.as_uri(), "target": "target", "members": members, "folds": 2, "store": "memory://x"}
        )
    )
    oof, refits = fit_all(data, 0)
    for name in kinds:
        assert np.isfinite(oof[name]).all() and np.isfinite(refits[name].test_predictions).all(), name


def test_an_all_filtered_source_is_refused():
    from accord.data.dataset import load_dataset
    from accord.errors import DataError

    with pytest.raises(DataError, match=r"'sklearn:iris\?classes=7' has no rows"):
        load_dataset("sklearn:iris?classes=7")


_IMPORT_KERAS_AND_RUN_AN_OP = (
    "import os; from accord.members.keras_kind import import_keras; import_keras(); "
    "import tensorflow as tf; tf.constant(1.0) + 1; print(os.environ.get('TF_ENABLE_ONEDNN_OPTS', 'unset'))"
)


@pytest.mark.slow
@pytest.mark.parametrize("given", [None, "1"])
def test_tensorflow_runs_without_onednn_and_its_notice_unless_asked(given):
    expected = given or "0"
    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    if given is not None:
        env["TF_ENABLE_ONEDNN_OPTS"] = given  # the user's own setting wins
    done = subprocess.run(
        [sys.executable, "-c", _IMPORT_KERAS_AND_RUN_AN_OP],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.split() == [expected]
    notice = "oneDNN custom operations are on" in done.stderr
    if expected == "0":
        assert not notice, done.stderr
    elif sys.platform == "linux" and platform.machine() == "x86_64":  # where TensorFlow turns them on
        assert notice, done.stderr  # so the check above looks for the words TensorFlow prints

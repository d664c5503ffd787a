"""Model sharing for real: pretrain to S3, transfer from the S3 reference, frozen published members."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest

import accord
from accord.config import make_config
from accord.ensembling.metrics import score
from accord.errors import ConfigError, NotFoundError
from accord.training.prepare import prepare
from flows.pretrain import PretrainConfig, pretrain
from flows.train import train_ensemble

SOURCE = "sklearn:breast_cancer?part=a"
TARGET = "sklearn:breast_cancer?part=b&n_rows=160&seed=1"


@pytest.fixture(scope="module")
def s3_source():
    import s3fs

    bucket = f"accord-src-{uuid.uuid4().hex[:8]}"
    s3fs.S3FileSystem().mkdir(bucket)
    store = f"s3://{bucket}/registry"
    config = PretrainConfig(
        data=SOURCE,
        kinds=["keras_mlp", "xgboost"],
        store=store,
        name="source",
        workers=2,
        params={"keras_mlp": {"epochs": 40, "hidden_units": [32, 16]}, "xgboost": {"n_estimators": 40}},
    )
    result = pretrain(config)
    return store, result


@pytest.fixture(scope="module")
def transferred(s3_source, tmp_path_factory):
    store, _ = s3_source
    parent = f"{store}/source@production"
    target_store = (tmp_path_factory.mktemp("target") / "registry").as_uri()
    config = make_config(
        {
            "data": TARGET,
            "folds": 3,
            "store": target_store,
            "name": "target",
            "workers": 2,
            "members": [
                {
                    "kind": "keras_transfer",
                    "params": {"parent": parent, "head_epochs": 30, "fine_tune_epochs": 10},
                },
                {"kind": "xgboost_continue", "params": {"parent": parent, "n_estimators": 20}},
                {"kind": "published", "params": {"ref": parent}},
                {"kind": "logreg"},
            ],
        }
    )
    return config, train_ensemble(config)


@pytest.mark.slow
def test_pretrain_publishes_an_ordinary_version_with_an_alias(s3_source):
    store, result = s3_source
    model = accord.load(f"{store}/source@production")
    assert model.manifest["version"] == result["version"]
    assert {m.kind for m in model.members.values()} == {"keras_mlp", "xgboost"}
    assert result["promotion"]["promoted"] is True


@pytest.mark.slow
def test_transfer_members_record_parent_and_change(s3_source, transferred):
    store, source = s3_source
    _, result = transferred
    pinned = f"{store}/source:{source['version']}"
    model = accord.load(result["ref"])
    parents = {p["member"]: p for p in model.manifest["lineage"]["parents"]}
    assert set(parents) == {"keras_transfer", "xgboost_continue", "published"}
    assert all(p["ref"] == pinned for p in parents.values())  # the alias was pinned to a version
    members = {m["name"]: m for m in model.manifest["members"]}
    assert members["xgboost_continue"]["transfer"] == {
        "strategy": "continue",
        "rounds_parent": 40,
        "rounds_added": 20,
    }
    change = members["keras_transfer"]["transfer"]
    assert change["strategy"] == "fine_tune"
    assert set(change["relative_change_per_layer"]) >= {"body_dense_0/kernel", "body_dense_1/kernel"}
    assert 0 < change["relative_change_max"] < 1  # fine-tuned at a low learning rate: a small change


@pytest.mark.slow
def test_keras_transfer_trains_many_batches_per_call_to_the_same_weights(s3_source, monkeypatch):
    from accord.members import keras_kind, member_class

    store, _ = s3_source
    data = prepare(make_config({"data": TARGET, "folds": 3, "store": "memory://unused"}))
    params = {"parent": f"{store}/source@production", "head_epochs": 6, "fine_tune_epochs": 3}
    default, fitted = keras_kind.STEPS_PER_EXECUTION, {}
    for steps in (default, 1):
        monkeypatch.setattr(keras_kind, "STEPS_PER_EXECUTION", steps)
        member = member_class("keras_transfer")("classification", params, n_classes=2, seed=0)
        fitted[steps] = member.fit(data.X_train, data.y_train, data.schema)
    many, one = fitted.values()
    assert default > 1
    assert (many.model_.steps_per_execution, one.model_.steps_per_execution) == (default, 1)  # fine-tuned
    np.testing.assert_array_equal(many.predict(data.X_test), one.predict(data.X_test))
    assert many.delta_ == one.delta_


@pytest.mark.slow
def test_transferred_ensemble_round_trips(transferred):
    config, result = transferred
    model = accord.load(result["ref"])
    data = prepare(config)
    proba = model.predict_proba(data.X_test)
    assert score("classification", data.y_test, proba, 2) == pytest.approx(
        result["metrics"]["ensemble"], rel=1e-9
    )


@pytest.mark.slow
def test_published_member_is_the_frozen_parent(s3_source, transferred):
    store, _ = s3_source
    config, result = transferred
    model = accord.load(result["ref"])
    parent = accord.load(f"{store}/source@production")
    X = prepare(config).X_test
    np.testing.assert_allclose(model.members["published"].predict(X), parent.predict_proba(X), rtol=1e-9)
    assert "published" in result["weights"]


@pytest.mark.slow
def test_models_cli_lists_shows_and_promotes(s3_source, transferred):
    store, source = s3_source
    _, result = transferred
    accord_cli = str(Path(sys.executable).parent / "accord")
    listing = subprocess.run(
        [accord_cli, "models", "list", store], capture_output=True, text=True, timeout=120
    )
    assert listing.returncode == 0, listing.stderr
    (row,) = [line.split() for line in listing.stdout.splitlines() if source["version"] in line]
    assert row[0] == source["version"] and "production" in row
    shown = subprocess.run(
        [accord_cli, "models", "show", result["ref"]], capture_output=True, text=True, timeout=120
    )
    assert shown.returncode == 0, shown.stderr
    assert f"{store}/source:{source['version']} (member keras_transfer, transfer)" in shown.stdout
    promoted = subprocess.run(
        [accord_cli, "models", "promote", result["ref"], "staging"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert promoted.returncode == 0, promoted.stderr
    assert accord.load(result["ref"].rsplit(":", 1)[0] + "@staging").manifest["version"] == result["version"]


@pytest.mark.slow
def test_incompatible_parents_are_refused_before_training(s3_source, tmp_path):
    store, _ = s3_source
    parent = f"{store}/source@production"
    with pytest.raises(
        ConfigError, match=r"incompatible parent: columns the parent needs are missing here: \['mean_radius'"
    ):
        prepare(
            make_config(
                {
                    "data": "sklearn:wine",
                    "members": [{"kind": "keras_transfer", "params": {"parent": parent}}],
                }
            )
        )
    frame = accord.load(parent).schema
    table = prepare(make_config({"data": TARGET, "members": [{"kind": "logreg"}]}))
    relabelled = table.X_train.assign(label=np.where(table.y_train == 1, "benign", "malignant"))
    path = tmp_path / "relabelled.csv"
    relabelled.to_csv(path, index=False)
    with pytest.raises(
        ConfigError, match=r"classes differ: parent \[0, 1\], this data \['benign', 'malignant'\]"
    ):
        prepare(
            make_config(
                {
                    "data": path.as_uri(),
                    "target": "label",
                    "members": [{"kind": "xgboost_continue", "params": {"parent": parent}}],
                }
            )
        )
    with pytest.raises(
        ConfigError, match=r"parent member 'keras_mlp' is a keras_mlp; expected one of \['xgboost'"
    ):
        prepare(
            make_config(
                {
                    "data": TARGET,
                    "members": [
                        {
                            "kind": "xgboost_continue",
                            "params": {"parent": parent, "parent_member": "keras_mlp"},
                        }
                    ],
                }
            )
        )
    with pytest.raises(NotFoundError, match="model 'ghost' has no published version"):
        prepare(
            make_config(
                {
                    "data": TARGET,
                    "members": [{"kind": "keras_transfer", "params": {"parent": f"{store}/ghost"}}],
                }
            )
        )
    with pytest.raises(
        ConfigError, match=r"keras_cnn\) needs square images as numeric pixel columns; found 30"
    ):
        prepare(make_config({"data": TARGET, "members": [{"kind": "keras_cnn"}]}))
    assert frame.task == "classification"

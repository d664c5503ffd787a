"""xgboost_dask: one XGBoost model across a LocalCluster of worker processes, on Parquet partitions.

The partitioned run reads a Parquet table on S3 (moto over HTTP) in row-group partitions
on the workers; the flow process never loads its features.
"""

from __future__ import annotations

import json
import time
import uuid

import numpy as np
import pandas as pd
import pytest
import s3fs
from distributed import Client, LocalCluster
from sklearn.datasets import make_classification

import accord
from accord.config import make_config
from accord.data.dataset import load_dataset
from accord.data.parquet import describe_parquet, held_out_frames
from accord.ensembling.metrics import score
from accord.errors import ConfigError, DataError
from accord.members import member_class
from accord.members.xgboost_dask import XGBoostDaskMember
from accord.members.xgboost_kind import NOT_SUPPORTED
from accord.registry.promotion import incumbent_score
from accord.registry.refs import parse_ref
from accord.registry.store import Registry
from accord.training.fit import fit_fold, fit_full
from accord.training.prepare import prepare
from flows.train import train_ensemble
from runtime.runner import worker_env
from tests.support.heap import free_kept, leave_freed_memory, resident_mib

ROWS = 6000


def _frame() -> pd.DataFrame:
    X, y = make_classification(ROWS, 8, n_informative=5, n_classes=3, random_state=3)
    frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(8)])
    frame["colour"] = np.where(X[:, 0] > 0.3, "red", np.where(X[:, 1] > 0, "green", "blue"))
    frame.loc[::97, "x3"] = np.nan
    frame["label"] = np.array(["ant", "bee", "cat"])[y]
    return frame


@pytest.fixture(scope="module")
def s3_table() -> str:
    bucket = f"accord-{uuid.uuid4().hex[:12]}"
    fs = s3fs.S3FileSystem()
    fs.mkdir(bucket)
    url = f"s3://{bucket}/tables/train.parquet"
    with fs.open(url, "wb") as f:
        _frame().to_parquet(f, row_group_size=500, index=False)
    return url


@pytest.fixture(scope="module")
def local_table(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("xgbdask") / "train.parquet"
    _frame().to_parquet(path, row_group_size=500, index=False)
    return path.as_uri()


@pytest.fixture(scope="module")
def client():
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0", env=worker_env()
        ) as cluster,
        Client(cluster) as c,
    ):
        yield c


def _config(data: str, members: list[dict], **extra: object):
    return make_config({"data": data, "target": "label", "members": members, "folds": 3, **extra})


XGB_DASK = {"kind": "xgboost_dask", "params": {"n_estimators": 60}}


def test_a_parquet_source_is_described_without_its_features_and_like_a_loaded_one(local_table):
    described = describe_parquet(local_table, "label", "auto")
    loaded = load_dataset(local_table, "label")
    assert described.X.shape == (ROWS, 0)  # no feature column was read into this process
    assert described.schema == loaded.schema  # names, kinds, dtypes, categories, classes
    assert described.task == "classification" and list(described.y) == list(loaded.y)
    with pytest.raises(DataError, match="target column 'nope' not found"):
        describe_parquet(local_table, "nope", "auto")
    data = prepare(_config(local_table, [XGB_DASK]))
    assert data.partitioned and data.X_train.shape[1] == 0
    assert not prepare(_config(local_table, [XGB_DASK, {"kind": "logreg"}])).partitioned


def test_a_partitioned_run_needs_a_cluster(local_table):
    data = prepare(_config(local_table, [XGB_DASK]))
    with pytest.raises(RuntimeError, match="read by Dask workers; run it on a Dask cluster"):
        fit_fold(data.members[0], data, 0, 0)


@pytest.mark.slow
@pytest.mark.parametrize("source", ["parquet", "in-memory"])
def test_fold_predictions_line_up_with_the_fold_rows(client, local_table, source):
    """Rows predicted on the cluster are the fold's rows in the fold's order (else ~1/3 accuracy)."""
    data_source = (
        local_table if source == "parquet" else "synthetic:classification?n_rows=3000&n_classes=3&seed=2"
    )
    config = (
        _config(data_source, [XGB_DASK])
        if source == "parquet"
        else make_config({"data": data_source, "members": [XGB_DASK], "folds": 3})
    )
    data = prepare(config)
    assert data.partitioned is (source == "parquet")
    spec = data.members[0]
    staged = client.scatter(data)
    fold = client.submit(fit_fold, spec, staged, 1, 0, pure=False).result()
    valid = data.folds[1][1]
    truth = data.y_train[valid]
    assert fold.predictions.shape == (len(valid), 3)
    accuracy = float((fold.predictions.argmax(1) == truth).mean())
    # the same model fitted in this process, on the loaded table (a mixed run loads the features)
    local_data = (
        data if source == "in-memory" else prepare(_config(local_table, [XGB_DASK, {"kind": "logreg"}]))
    )
    local = fit_fold(local_data.members[0], local_data, 1, 0)
    local_accuracy = float((local.predictions.argmax(1) == truth).mean())
    agreement = float((local.predictions.argmax(1) == fold.predictions.argmax(1)).mean())
    assert accuracy > 0.7 and accuracy >= local_accuracy - 0.03, (accuracy, local_accuracy)
    assert agreement > 0.9, agreement

    refit = client.submit(fit_full, spec, staged, 0, pure=False).result()
    assert refit.info["trained_on"]["workers"] == 2  # both workers held partitions and trained
    assert refit.info["trained_on"]["partitions"] >= 2
    assert refit.test_predictions.shape == (len(data.y_test), 3)


@pytest.mark.slow
def test_the_cluster_fit_is_xgboost_dasks_own_classifier_and_moves_no_rows(client, local_table):
    """The member trains through `xgboost.dask.train`, with the classes from the schema.

    It must give the very model ``DaskXGBClassifier`` gives on the same partitions, without
    that estimator's search for the classes: a `drop_duplicates` of the targets that Dask
    runs as a shuffle between the workers on every fit.
    """
    import xgboost.dask as xgb_dask
    from distributed import get_task_stream

    from accord.training.cluster import partitioned

    data = prepare(_config(local_table, [XGB_DASK]))
    staged = client.scatter(data)
    with get_task_stream(client) as stream:
        fold = client.submit(fit_fold, data.members[0], staged, 1, 0, pure=False).result()
    keys = [str(t["key"]) for t in stream.data]
    assert any("read_split" in k for k in keys), keys[:5]  # the stream saw the fit's own tasks
    assert not [k for k in keys if "shuffle" in k]

    member = member_class("xgboost_dask")(data.task, XGB_DASK["params"], n_classes=3, seed=0, threads=1)
    member.prepare_encoding(data.schema)
    split = partitioned(client, data, 1, member.encoder(), member.encoded_meta())
    estimator = xgb_dask.DaskXGBClassifier(**member.params, n_jobs=1, random_state=0)
    estimator.client = client
    estimator.fit(split.X_train, split.y_train)
    member.booster_ = estimator.get_booster()
    np.testing.assert_array_equal(member.predict_encoded(client, split.X_predict), fold.predictions)


@pytest.mark.slow
def test_a_fit_leaves_none_of_its_partitions_on_the_workers(client, local_table):
    """Once a fold's task returns, the cluster holds nothing of it: the next fold must not find it.

    xgboost.dask's matrix sits in a reference cycle and holds the futures of its
    partitions (its ``dict-`` keys); left to the cycle collector, it kept them on the
    workers into the next fold's fit.
    """
    data = prepare(_config(local_table, [XGB_DASK]))
    staged = client.scatter(data)
    client.submit(fit_fold, data.members[0], staged, 0, 0, pure=False).result()
    deadline = time.monotonic() + 10
    while True:
        held = client.run_on_scheduler(lambda dask_scheduler: [str(k) for k in dask_scheduler.tasks])
        if set(held) == {staged.key} or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert set(held) == {staged.key}, sorted(held)[:5]


@pytest.mark.slow
def test_a_cluster_fit_first_gives_back_what_every_worker_freed(client, local_table):
    """Parts of a fit across the cluster run in xgboost.dask's tasks, not accord's: the memory
    they free on a worker stays resident unless the next distributed fit trims every worker."""
    data = prepare(_config(local_table, [XGB_DASK]))
    staged = client.scatter(data)

    def fit() -> None:
        client.submit(fit_fold, data.members[0], staged, 0, 0, pure=False).result()

    fit()  # every worker imports what a fit needs: later fits allocate only their data
    before = client.run(leave_freed_memory, 200)
    try:
        fit()
        after = client.run(resident_mib)
    finally:
        client.run(free_kept)
    assert len(before) == 2
    assert all(before[w] - after[w] > 150 for w in before), (before, after)


@pytest.mark.parametrize("param", sorted(XGBoostDaskMember.not_supported))
def test_parameters_accord_cannot_honour_are_refused_before_training(local_table, param):
    """Refused with their reason: XGBoost would fail mid-run or quietly do something else.

    Early stopping has no validation set; per-column lists would not line up with the
    columns accord encodes; categories reach XGBoost as ordinal codes; and the cluster fit
    has no estimator to read ``importance_type``.
    """
    for kind in ("xgboost_dask", "xgboost"):
        if kind == "xgboost" and param not in NOT_SUPPORTED:
            assert param in member_class(kind).allowed_params("classification")  # its estimator reads it
            continue
        with pytest.raises(
            ConfigError, match=rf"'{kind}'.*parameter '{param}' is not supported: .*Remove it"
        ):
            prepare(_config(local_table, [{"kind": kind, "params": {param: 10}}]))


@pytest.mark.slow
def test_flow_trains_on_s3_partitions_and_publishes_a_loadable_booster(s3_table, s3_store):
    config = _config(s3_table, [XGB_DASK], store=s3_store, name="bigtable", workers=2)
    result = train_ensemble(config)
    assert result["weights"] == {"xgboost_dask": 1.0}
    registry = Registry(s3_store)
    ref = parse_ref(result["ref"])
    manifest = registry.read_manifest(ref.name, ref.version)
    files = list(manifest["files"])
    member_files = [p for p in files if p.startswith("members/xgboost_dask/")]
    assert any(p.endswith("model.ubj") for p in member_files), files
    assert all(p.endswith((".ubj", ".skops", ".json")) for p in files), files  # nothing that runs code
    assert set(manifest["documents"]) >= {"README.md", "report.html"}  # for people; never loaded
    info = next(m for m in manifest["members"] if m["name"] == "xgboost_dask")
    assert info["trained_on"]["workers"] == 2
    assert info["trained_on"]["partitions"] >= 4  # 6000 rows, >= 2 partitions per worker

    data = prepare(config)  # what the flow prepared: no features in this process
    assert data.partitioned
    model = accord.load(result["ref"])
    proba = np.concatenate([model.predict_proba(f) for f in held_out_frames(data, 700)])
    measured = score("classification", data.y_test, proba, 3)
    assert measured == pytest.approx(result["metrics"]["ensemble"], rel=1e-9)
    assert measured["accuracy"] > 0.75
    # the promotion gate scores an incumbent on the same held-out rows, chunk by chunk
    assert incumbent_score(registry, ref.name, ref.version, data, "log_loss") == pytest.approx(
        result["metrics"]["ensemble"]["log_loss"], rel=1e-9
    )
    json.dumps(manifest)  # the manifest stays plain JSON


@pytest.mark.slow
def test_flow_with_cluster_wide_and_ordinary_members(local_table, file_store):
    """Distributed members run first and alone, then the others; the ensemble weighs them all."""
    members = [XGB_DASK, {"kind": "logreg"}, {"kind": "random_forest", "params": {"n_estimators": 60}}]
    config = _config(local_table, members, store=file_store, name="mixed", workers=2)
    result = train_ensemble(config)
    assert set(result["weights"]) == {"xgboost_dask", "logreg", "random_forest"}
    data = prepare(config)
    assert not data.partitioned
    model = accord.load(result["ref"])
    assert score("classification", data.y_test, model.predict_proba(data.X_test), 3) == pytest.approx(
        result["metrics"]["ensemble"], rel=1e-9
    )
    xgb_alone = result["metrics"]["members"]["xgboost_dask"]["accuracy"]
    assert xgb_alone > 0.75

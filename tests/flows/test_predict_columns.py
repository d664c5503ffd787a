"""Batch prediction of a raw user table (IDs, dates as text, an ignored column) with a model whose
schema dropped and derived columns: the flow applies the same on a LocalCluster."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import accord
from accord.config import PredictConfig, make_config
from accord.ensembling.evaluation import evaluate
from accord.registry.publishing import publish, version_payload
from accord.registry.store import Registry
from accord.training.fit import fit_all
from accord.training.prepare import prepare
from flows.predict import batch_predict
from tests.support.user_tables import user_table


@pytest.mark.slow
def test_batch_prediction_takes_the_raw_table_the_model_was_trained_from(tmp_path):
    train = tmp_path / "customers.csv"
    user_table(300, seed=1).to_csv(train, index=False)
    config = make_config(
        {"data": str(train), "target": "churned", "ignore_columns": ["note"], "members": [{"kind": "logreg"}]}
    )
    data = prepare(config)
    oof, refits = fit_all(data, seed=0)
    files, manifest = version_payload(data, refits, evaluate(data, oof, refits, "caruana"), config={})
    store = (tmp_path / "registry").as_uri()
    ref = publish(Registry(store), "churn", files, manifest)  # <store>/churn:<version>

    new = user_table(250, seed=2).drop(columns=["churned"])  # new customers, ids and dates as text
    source = tmp_path / "new.csv"
    new.to_csv(source, index=False)
    output = tmp_path / "scored.parquet"
    result = batch_predict(
        PredictConfig(model=ref, input=str(source), output=str(output), keep=["customer"], chunk_rows=100)
    )
    scored = pd.read_parquet(output)
    assert result["rows"] == len(scored) == 250
    assert scored["customer"].tolist() == new["customer"].tolist()  # a dropped ID, kept on request
    expected = accord.load(ref).predict(pd.read_csv(source))
    np.testing.assert_array_equal(scored["prediction"].to_numpy(), expected)

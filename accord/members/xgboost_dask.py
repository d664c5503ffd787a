"""XGBoost across the whole Dask cluster (`xgboost.dask`): one model from a partitioned table.

The member trains on a Dask DataFrame whose partitions stay on the workers that read
them, so the table may be larger than any one worker's memory. What it publishes is an
ordinary UBJSON booster with its preprocessing, in the same files as the ``xgboost``
kind, so loading and predicting need neither Dask nor a cluster.

Its preprocessing is fixed by the schema, not fitted on the data: categorical columns
are encoded with the categories the schema recorded (sorted, plus the missing marker),
so every partition is encoded alike without a pass over the table.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Self

import numpy as np
import pandas as pd

from accord.data.schema import Schema
from accord.members.preprocess import make_preprocessor
from accord.members.xgboost_kind import NOT_SUPPORTED, XGBoostMember
from accord.types import Task

if TYPE_CHECKING:
    import dask.dataframe as dd
    from distributed import Client


def schema_frame(schema: Schema) -> pd.DataFrame:
    """A small table holding every category the schema knows (and a missing value) per column."""
    longest = max([len(c.categories) for c in schema.columns] + [0]) + 1
    data: dict[str, list[Any]] = {}
    for col in schema.columns:
        if col.kind == "categorical":
            values: list[Any] = [*col.categories, np.nan]
            data[col.name] = values + [np.nan] * (longest - len(values))
        else:
            data[col.name] = [np.nan] * longest
    return pd.DataFrame(data, columns=schema.names).astype(
        {c.name: ("float64" if c.kind == "numeric" else "object") for c in schema.columns}
    )


class XGBoostDaskMember(XGBoostMember):
    """One XGBoost model trained by every worker of the cluster on its own partitions."""

    kind: ClassVar[str] = "xgboost_dask"
    distributed: ClassVar[bool] = True
    not_supported: ClassVar[Mapping[str, str]] = {
        **NOT_SUPPORTED,
        # read by XGBoost's scikit-learn estimator only: the cluster fit trains the booster itself
        "importance_type": "the booster trains across the cluster with xgboost.dask.train, without "
        "the estimator that reads it (use kind xgboost where the table fits in a worker)",
    }
    trained_on_: dict[str, Any] | None = None

    @classmethod
    def default_params(cls, task: Task) -> dict[str, Any]:
        return {**super().default_params(task), "n_estimators": 200}

    def prepare_encoding(self, schema: Schema) -> None:
        """Build the schema-determined preprocessing (no pass over the data)."""
        self.prep_ = make_preprocessor(schema, encoding="ordinal", scale=False, impute_numeric=False)
        self.prep_.fit(schema_frame(schema))

    def fit(self, X: pd.DataFrame, y: np.ndarray, schema: Schema) -> Self:
        """Fit in this process (no cluster): the same model, for sequential runs and tests."""
        self.prepare_encoding(schema)
        model = self._model().fit(self.prep_.transform(X), y)
        self.booster_ = model.get_booster()
        return self

    def encoder(self) -> Callable[[pd.DataFrame], pd.DataFrame]:
        """The function that encodes one partition's features, as `predict` encodes a table.

        It runs on the workers, inside the task that reads the partition. The encoded
        rows are float32, as XGBoost stores them anyway (the ``xgboost`` kind's `predict`
        hands it float64, which it converts alike), so a worker holds half the bytes.
        """
        prep = self.prep_
        columns = list(self.encoded_meta().columns)

        def transform(part: pd.DataFrame) -> pd.DataFrame:
            values = np.asarray(prep.transform(part), dtype="float32")
            return pd.DataFrame(values, columns=columns, index=part.index, copy=False)

        return transform

    def encoded_meta(self) -> pd.DataFrame:
        """An empty frame shaped like the encoded features (Dask's ``meta``)."""
        width = len(self.prep_.get_feature_names_out())
        return pd.DataFrame({f"f{i}": pd.Series(dtype="float32") for i in range(width)})

    def fit_encoded(self, client: Client, X: dd.DataFrame, y: dd.Series, workers: int) -> Self:
        """Train one booster across the cluster with `xgboost.dask` on encoded partitions.

        The partitions are already in the memory of the `workers` workers that read them;
        they do not move. `prepare_encoding` must have built the encoder that made them.

        The booster gets the parameters and rounds of the kind's scikit-learn estimator
        (as ``DaskXGBClassifier`` would) and its objective from the schema's classes, and
        trains through `xgboost.dask.train`: ``DaskXGBClassifier`` would first find the
        classes in the targets with a shuffle between the workers, on every fit.
        Measurements: docs/performance.md.

        Args:
            client: A client of the cluster holding the partitions.
            X: The encoded training features.
            y: The training targets, partitioned as `X`.
            workers: How many workers hold the partitions (recorded in `info`).

        Returns:
            This member, with ``booster_`` trained.
        """
        import xgboost as xgb
        import xgboost.dask  # a submodule; `import xgboost` does not load it

        model = self._model()
        params = model.get_xgb_params()
        if self.task == "classification" and self.n_classes > 2:
            params.update(objective="multi:softprob", num_class=self.n_classes)
        elif self.task == "classification":
            params["objective"] = "binary:logistic"
        dtrain: xgb.dask.DaskDMatrix
        if model.tree_method in (None, "hist"):  # as the estimator would build it
            dtrain = xgb.dask.DaskQuantileDMatrix(client, X, y, missing=model.missing, max_bin=model.max_bin)
        else:
            dtrain = xgb.dask.DaskDMatrix(client, X, y, missing=model.missing)
        out = xgb.dask.train(client, params, dtrain, num_boost_round=model.get_num_boosting_rounds())
        self.booster_ = out["booster"]
        # The matrix sits in a reference cycle inside xgboost.dask, so it outlives this call
        # until the cycle collector runs, and with it the futures of the fold's partitions
        # it holds: the workers would keep them into the next fold's fit. Collect it now.
        del dtrain, out
        gc.collect()
        self.trained_on_ = {"workers": workers, "partitions": int(X.npartitions)}
        return self

    def info(self) -> dict[str, Any]:
        """The kind's info, plus where it trained: workers of the cluster and partitions of the table."""
        out = super().info()
        out["trained_on"] = self.trained_on_ or {"workers": 0, "partitions": 0}
        return out

    def predict_encoded(self, client: Client, X: dd.DataFrame) -> np.ndarray:
        """Predict encoded partitions on the cluster; the (small) predictions come back in row order."""
        import xgboost as xgb
        import xgboost.dask  # a submodule; `import xgboost` does not load it

        raw = xgb.dask.inplace_predict(client, self.booster_, X)
        values = np.asarray(client.compute(raw).result(), dtype="float64")
        if self.task == "regression":
            return values.reshape(-1)
        if values.ndim == 1:  # binary:logistic gives P(class 1)
            return np.column_stack([1.0 - values, values])
        return values

    def save(self) -> dict[str, bytes]:
        """The files of the ``xgboost`` kind; column names from the cluster fit are dropped.

        `predict` feeds the booster an unnamed matrix, as the ``xgboost`` kind does.
        """
        booster = self.booster_.copy()
        booster.feature_names = None
        booster.feature_types = None
        self.booster_, kept = booster, self.booster_
        try:
            return super().save()
        finally:
            self.booster_ = kept

"""scikit-learn estimators that train an accord ensemble: `AccordClassifier` and `AccordRegressor`.

Why: a scikit-learn user fits ``AccordClassifier().fit(X, y)`` where they would fit any
estimator, and gets the ensemble the training flow builds (on a local Dask cluster, or a
given scheduler), published when a store is named.

`fit` writes ``X`` and ``y`` to a temporary Parquet file and runs the training flow on it
(`flows.train.train_ensemble`, against ``PREFECT_API_URL`` or a local Prefect server); with
``in_process=True`` it fits the members one after another in this process instead (no
Prefect run, no Dask: small tables and quick checks). Without a store the version goes to a
temporary store that is removed once the fitted ensemble is loaded. The fitted ensemble is
``ensemble_``, the run's summary ``result_``.
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.exceptions import DataConversionWarning
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_array, check_is_fitted

from accord.config import TrainConfig, make_config
from accord.ensembling.ensemble import Ensemble, load


def _array(X: Any) -> np.ndarray:
    """A non-DataFrame `X` checked as scikit-learn checks it: 2-D, numeric, dense, not empty (NaN allowed)."""
    return np.asarray(check_array(X, dtype="numeric", ensure_all_finite="allow-nan", accept_sparse=False))


def _frame(X: Any) -> pd.DataFrame:
    """`X` as a table: a DataFrame as it is (its categoricals and dates kept), an array as ``x0``, ``x1``, ...

    Raises:
        ValueError: an array that is not 2-D, numeric, dense and non-empty (`_array`).
    """
    if isinstance(X, pd.DataFrame):
        return X.reset_index(drop=True).rename(columns=str)
    array = _array(X)
    return pd.DataFrame(array, columns=[f"x{i}" for i in range(array.shape[1])])


def _target(y: Any, rows: int) -> np.ndarray:
    if y is None:
        raise ValueError("requires y to be passed, but the target y is None.")
    values = np.asarray(y.to_numpy() if isinstance(y, pd.Series) else y)
    if values.ndim == 2 and values.shape[1] == 1:
        warnings.warn(
            "A column-vector y was passed when a 1d array was expected; it is read as y.ravel().",
            DataConversionWarning,
            stacklevel=3,
        )
        values = values.ravel()
    if values.ndim != 1:
        raise ValueError(f"y should be a 1d array; found shape {values.shape}.")
    if len(values) != rows:
        raise ValueError(f"X has {rows} rows but y has {len(values)}; give one label per row.")
    return values


class _AccordEstimator(BaseEstimator):
    """The parameters and `fit` shared by `AccordClassifier` and `AccordRegressor`.

    Parameters are `TrainConfig`'s (see its field descriptions): ``members`` (kinds, or
    ``{kind, name, params}`` mappings) or ``preset``; ``method``, ``folds``, ``time_limit``,
    ``final``, ``seed``, ``workers``, ``dask_address``, ``store`` and ``name``; plus
    ``in_process`` (which cannot honour ``time_limit``: that needs the flow). None leaves
    the config's default.
    """

    _task = "classification"

    def __init__(
        self,
        members: list[Any] | None = None,
        preset: str | None = None,
        method: str = "caruana",
        folds: int = 5,
        time_limit: float | None = None,
        final: str = "refit",
        seed: int = 0,
        workers: int = 2,
        dask_address: str | None = None,
        store: str | None = None,
        name: str | None = None,
        in_process: bool = False,
    ) -> None:
        self.members = members
        self.preset = preset
        self.method = method
        self.folds = folds
        self.time_limit = time_limit
        self.final = final
        self.seed = seed
        self.workers = workers
        self.dask_address = dask_address
        self.store = store
        self.name = name
        self.in_process = in_process

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True  # every member reads missing values
        return tags

    def _config(self, data: str, target: str, store: str) -> TrainConfig:
        values: dict[str, Any] = {
            "data": data,
            "target": target,
            "task": self._task,
            "method": self.method,
            "folds": self.folds,
            "final": self.final,
            "seed": self.seed,
            "workers": self.workers,
            "store": store,
            "name": self.name or "sklearn",
        }
        if self.members is not None:
            values["members"] = [{"kind": m} if isinstance(m, str) else dict(m) for m in self.members]
        for key in ("preset", "time_limit", "dask_address"):
            if getattr(self, key) is not None:
                values[key] = getattr(self, key)
        return make_config(values)

    def fit(self, X: Any, y: Any) -> _AccordEstimator:
        """Train an ensemble on `X` and `y` (see the module); return self.

        Raises:
            ValueError: `X` not 2-D, `y` missing or of another length; the config's and the
                data's refusals (`accord.errors.InputError`) name what to fix.
        """
        if self.in_process and self.time_limit is not None:
            raise ValueError(
                "time_limit needs the training flow (it schedules fits on the cluster by their estimates); "
                "drop time_limit or set in_process=False."
            )
        frame = _frame(X)
        labels = _target(y, len(frame))
        if len(frame) < 2:
            raise ValueError(
                f"Found n_samples={len(frame)}: an ensemble needs rows for {self.folds} folds "
                "and a held-out split."
            )
        target = "target" if "target" not in frame.columns else "__accord_target__"
        table = frame.assign(**{target: labels})
        with tempfile.TemporaryDirectory(prefix="accord-fit-") as tmp:
            path = Path(tmp) / "train.parquet"
            table.to_parquet(path, index=False)
            store = self.store or (Path(tmp) / "registry").as_uri()
            config = self._config(str(path), target, store)
            result = _train(config, self.in_process)
            self.ensemble_: Ensemble = load(result["ref"])  # read before a temporary store goes
        self.result_ = result
        self.n_features_in_ = frame.shape[1]
        self._columns = list(frame.columns)  # an array's columns at predict: those fit was given
        if isinstance(X, pd.DataFrame) and all(isinstance(c, str) for c in X.columns):
            self.feature_names_in_ = np.asarray(X.columns, dtype=object)
        return self

    def _table(self, X: Any) -> Any:
        check_is_fitted(self, "ensemble_")
        if isinstance(X, pd.DataFrame):
            return X.rename(columns=str)  # as `fit` named them
        array = _array(X)
        if array.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {array.shape[1]} features, but {type(self).__name__} is expecting "
                f"{self.n_features_in_} features as input."
            )
        return pd.DataFrame(array, columns=self._columns)  # the schema drops and derives as at fit

    def predict(self, X: Any) -> np.ndarray:
        """The fitted ensemble's predictions: class labels, or values."""
        table = self._table(X)
        return self.ensemble_.predict(table)

    @property
    def ref_(self) -> str | None:
        """The published version's reference when a store was given, else None."""
        check_is_fitted(self, "ensemble_")
        return str(self.result_["ref"]) if self.store else None


class AccordClassifier(ClassifierMixin, _AccordEstimator):
    """An accord ensemble as a scikit-learn classifier; see `deployments.estimators`."""

    _task = "classification"

    def fit(self, X: Any, y: Any) -> AccordClassifier:
        if y is not None:
            check_classification_targets(np.asarray(y))  # "Unknown label type: continuous" for values
        super().fit(X, y)
        self.classes_ = self.ensemble_.classes_
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, columns in the order of ``classes_``."""
        table = self._table(X)
        return self.ensemble_.predict_proba(table)


class AccordRegressor(RegressorMixin, _AccordEstimator):
    """An accord ensemble as a scikit-learn regressor; see `deployments.estimators`."""

    _task = "regression"


def _train(config: TrainConfig, in_process: bool) -> dict[str, Any]:
    """Run the training flow on `config` (or, `in_process`, the same steps in this process)."""
    if in_process:
        return _train_here(config)
    from runtime.entry import with_prefect_api

    def run() -> dict[str, Any]:
        from flows.train import train_ensemble

        result: dict[str, Any] = train_ensemble(config)
        return result

    return with_prefect_api(run)


def _train_here(config: TrainConfig) -> dict[str, Any]:
    """Prepare, fit every member one after another, weigh and publish, in this process."""
    from accord.ensembling.evaluation import evaluate
    from accord.registry.publishing import publish, version_payload
    from accord.registry.store import Registry
    from accord.training.fit import fit_all
    from accord.training.prepare import prepare

    data = prepare(config)
    oof, refits = fit_all(data, config.seed)
    report = evaluate(data, oof, refits, config.method, config.ensemble_size)
    files, manifest = version_payload(data, refits, report, config=config.model_dump(mode="json"))
    ref = publish(Registry(config.store), config.model_name, files, manifest)
    return {"ref": ref, "weights": report.weights, "metrics": report.metrics()}

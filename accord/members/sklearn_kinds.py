"""scikit-learn members: logreg, svc, random_forest, extra_trees, hist_gb, knn.

Each is a `Pipeline` of the member's preprocessing and one estimator, saved as
one skops file.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping
from typing import Any, ClassVar, Self

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import (
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor
from sklearn.pipeline import Pipeline
from sklearn.svm import SVC, SVR
from threadpoolctl import threadpool_limits

from accord.data.schema import Schema
from accord.errors import ConfigError
from accord.members import skops_io
from accord.members.base import FitShape, Member
from accord.members.preprocess import Encoding, make_preprocessor
from accord.types import Task

MODEL_FILE = "model.skops"
# A fully grown tree has about one leaf per few training rows, so an uncapped forest grows with
# the table, in every worker that fits one. Capping each tree's leaves (AutoGluon's forests
# default to the same) bounds random_forest whatever the rows, without a worse log loss;
# extra_trees is not capped, as there the cap costs log loss. `max_leaf_nodes` sets or (None)
# lifts it. Measurements: docs/performance.md.
MAX_LEAF_NODES = 15_000
# Parameters accord sets itself; users set them through the config's seed and the cluster.
MANAGED = frozenset({"random_state", "n_jobs", "verbose", "warm_start", "probability"})

# The `fit_seconds` estimates below are seconds on one core. Only their order matters: it decides
# which fits start first. How their constants were measured: docs/performance.md.


def _split_features(task: Task, params: Mapping[str, Any], features: int) -> float:
    """Columns a forest's tree weighs at each split (scikit-learn's `max_features`)."""
    value = params.get("max_features", "sqrt" if task == "classification" else 1.0)
    if value == "sqrt":
        return math.sqrt(features)
    if value == "log2":
        return max(1.0, math.log2(features))
    if isinstance(value, float):
        return max(1.0, value * features)
    if isinstance(value, int):
        return float(min(value, features))
    return float(features)  # None: every column


def _forest_seconds(per_split: float, task: Task, params: Mapping[str, Any], shape: FitShape) -> float:
    """Trees x (rows log rows, the sorting and splitting down a tree) x columns weighed per split.

    A regressor's column is weighed at about half a classifier's, since accord's regression
    defaults keep two rows or more in each leaf; each tree adds a fixed cost (building it,
    predicting with it). Measurements: docs/performance.md.

    Args:
        per_split: The kind's seconds per classifier column and row log rows.
        task: The learning task.
        params: The member's parameters merged over the kind's defaults.
        shape: The size of the fit.

    Returns:
        Estimated seconds on one core, as `Member.fit_seconds`.
    """
    rows = max(shape.rows, 2)
    trees = int(params.get("n_estimators") or 100)
    per_column = per_split if task == "classification" else 0.55 * per_split
    splitting = per_column * rows * math.log2(rows) * _split_features(task, params, shape.features)
    return trees * (1.5e-3 + splitting)  # and a fixed cost per tree (building, predicting with it)


class SklearnMember(Member):
    """A scikit-learn estimator behind the member's own preprocessing."""

    estimators: ClassVar[dict[str, type[BaseEstimator]]]
    defaults: ClassVar[dict[str, dict[str, Any]]] = {"classification": {}, "regression": {}}
    encoding: ClassVar[Encoding] = "ordinal"
    scale: ClassVar[bool] = False
    impute_numeric: ClassVar[bool] = True
    uses_n_jobs: ClassVar[bool] = True

    pipeline_: Pipeline

    @classmethod
    def default_params(cls, task: Task) -> dict[str, Any]:
        return dict(cls.defaults[task])

    @classmethod
    def allowed_params(cls, task: Task) -> set[str]:
        return set(cls.estimators[task]().get_params(deep=False)) - MANAGED

    @classmethod
    def check_values(cls, member: str, task: Task, params: Mapping[str, Any]) -> None:
        estimator = cls._estimator(task, params, seed=0, threads=1)
        inner = estimator.estimator if isinstance(estimator, CalibratedClassifierCV) else estimator
        try:
            inner._validate_params()
        except (ValueError, TypeError) as e:
            raise ConfigError(f"member {member!r} (kind {cls.kind}): {e}") from e

    @classmethod
    def _estimator(cls, task: Task, params: Mapping[str, Any], *, seed: int, threads: int) -> BaseEstimator:
        est_cls = cls.estimators[task]
        accepted = inspect.signature(est_cls).parameters
        managed: dict[str, Any] = {}
        if "random_state" in accepted:
            managed["random_state"] = seed
        if "n_jobs" in accepted and cls.uses_n_jobs:
            managed["n_jobs"] = threads
        return est_cls(**{**dict(params), **managed})

    def build(self, schema: Schema) -> Pipeline:
        """Return the unfitted preprocessing + estimator pipeline."""
        prep = make_preprocessor(
            schema, encoding=self.encoding, scale=self.scale, impute_numeric=self.impute_numeric
        )
        model = self._estimator(self.task, self.params, seed=self.seed, threads=self.threads)
        return Pipeline([("prep", prep), ("model", model)])

    def fit(self, X: pd.DataFrame, y: np.ndarray, schema: Schema) -> Self:
        with threadpool_limits(self.threads):
            self.pipeline_ = self.build(schema).fit(X, y)
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        with threadpool_limits(self.threads):
            if self.task == "classification":
                proba = np.asarray(self.pipeline_.predict_proba(X), dtype="float64")
                return _full_proba(proba, self.pipeline_.classes_, self.n_classes)
            return np.asarray(self.pipeline_.predict(X), dtype="float64")

    def save(self) -> dict[str, bytes]:
        return {MODEL_FILE: skops_io.dumps(self.pipeline_)}

    @classmethod
    def load(cls, files: Mapping[str, bytes], info: Mapping[str, Any]) -> Self:
        member = cls.from_info(info)
        member.pipeline_ = skops_io.loads(files[MODEL_FILE], where=f"{cls.kind} {MODEL_FILE}")
        return member


def _full_proba(proba: np.ndarray, seen: np.ndarray, n_classes: int) -> np.ndarray:
    """Place columns of classes the estimator saw into a ``(n, n_classes)`` matrix."""
    if proba.shape[1] == n_classes:
        return proba
    full = np.zeros((proba.shape[0], n_classes))
    full[:, np.asarray(seen, dtype=int)] = proba
    return full


class LogReg(SklearnMember):
    """Logistic regression (classification) or ridge regression (regression), scaled."""

    kind = "logreg"
    estimators: ClassVar[dict[str, type[BaseEstimator]]] = {
        "classification": LogisticRegression,
        "regression": Ridge,
    }
    defaults: ClassVar[dict[str, dict[str, Any]]] = {
        "classification": {"C": 1.0, "max_iter": 2000},
        "regression": {"alpha": 1.0},
    }
    encoding = "onehot"
    scale = True
    uses_n_jobs = False  # deprecated for LogisticRegression since scikit-learn 1.8

    @classmethod
    def fit_seconds(cls, task: Task, params: Mapping[str, Any], shape: FitShape) -> float:
        """Well under a second for most tables: a few passes over rows x columns (x classes)."""
        return 0.05 + 5e-8 * shape.rows * shape.features * max(1, shape.classes)


class SupportVector(SklearnMember):
    """RBF support vector machine; probabilities come from sigmoid calibration."""

    kind = "svc"
    estimators: ClassVar[dict[str, type[BaseEstimator]]] = {"classification": SVC, "regression": SVR}
    defaults: ClassVar[dict[str, dict[str, Any]]] = {"classification": {"C": 1.0}, "regression": {"C": 1.0}}
    encoding = "onehot"
    scale = True

    @classmethod
    def _estimator(cls, task: Task, params: Mapping[str, Any], *, seed: int, threads: int) -> BaseEstimator:
        if task == "regression":
            return SVR(**params)
        return CalibratedClassifierCV(
            SVC(**params, random_state=seed), method="sigmoid", cv=3, ensemble=False
        )

    @classmethod
    def fit_seconds(cls, task: Task, params: Mapping[str, Any], shape: FitShape) -> float:
        """Kernel SVMs grow with the square of the rows; calibration fits three more on 2/3 of them."""
        per_pair = 4e-9 if task == "classification" else 2e-9
        return per_pair * shape.rows**2 * shape.features


class RandomForest(SklearnMember):
    """Random forest."""

    kind = "random_forest"
    estimators: ClassVar[dict[str, type[BaseEstimator]]] = {
        "classification": RandomForestClassifier,
        "regression": RandomForestRegressor,
    }
    defaults: ClassVar[dict[str, dict[str, Any]]] = {
        "classification": {"n_estimators": 200, "min_samples_leaf": 1, "max_leaf_nodes": MAX_LEAF_NODES},
        "regression": {"n_estimators": 200, "min_samples_leaf": 2, "max_leaf_nodes": MAX_LEAF_NODES},
    }

    @classmethod
    def fit_seconds(cls, task: Task, params: Mapping[str, Any], shape: FitShape) -> float:
        """Trees x rows log rows x columns weighed per split (`_forest_seconds`)."""
        return _forest_seconds(6.3e-8, task, params, shape)


class ExtraTrees(SklearnMember):
    """Extremely randomised trees."""

    kind = "extra_trees"
    estimators: ClassVar[dict[str, type[BaseEstimator]]] = {
        "classification": ExtraTreesClassifier,
        "regression": ExtraTreesRegressor,
    }
    defaults: ClassVar[dict[str, dict[str, Any]]] = {
        "classification": {"n_estimators": 200, "min_samples_leaf": 1},
        "regression": {"n_estimators": 200, "min_samples_leaf": 2},
    }

    @classmethod
    def fit_seconds(cls, task: Task, params: Mapping[str, Any], shape: FitShape) -> float:
        """As a random forest's, about a third per split: thresholds are drawn, not searched."""
        return _forest_seconds(2.2e-8, task, params, shape)


class HistGB(SklearnMember):
    """Histogram gradient boosting; handles missing numbers natively."""

    kind = "hist_gb"
    estimators: ClassVar[dict[str, type[BaseEstimator]]] = {
        "classification": HistGradientBoostingClassifier,
        "regression": HistGradientBoostingRegressor,
    }
    defaults: ClassVar[dict[str, dict[str, Any]]] = {
        "classification": {"max_iter": 200, "learning_rate": 0.05, "early_stopping": False},
        "regression": {"max_iter": 200, "learning_rate": 0.05, "early_stopping": False},
    }
    impute_numeric = False

    @classmethod
    def fit_seconds(cls, task: Task, params: Mapping[str, Any], shape: FitShape) -> float:
        """Per tree, a fixed cost (growing it node by node) and one over rows x columns (the histograms).

        With early stopping the rounds may end sooner; ``max_iter`` bounds them.
        """
        trees = int(params.get("max_iter") or 100) * shape.trees_per_round
        return trees * (4.2e-3 + 5.2e-9 * shape.rows * shape.features)


class KNN(SklearnMember):
    """k-nearest neighbours on scaled features."""

    kind = "knn"
    estimators: ClassVar[dict[str, type[BaseEstimator]]] = {
        "classification": KNeighborsClassifier,
        "regression": KNeighborsRegressor,
    }
    defaults: ClassVar[dict[str, dict[str, Any]]] = {
        "classification": {"n_neighbors": 15},
        "regression": {"n_neighbors": 15},
    }
    encoding = "onehot"
    scale = True

    @classmethod
    def fit_seconds(cls, task: Task, params: Mapping[str, Any], shape: FitShape) -> float:
        """Fitting stores the rows; predicting searches them once per row it predicts."""
        return 0.05 + 3e-10 * shape.rows * shape.predict_rows * shape.features

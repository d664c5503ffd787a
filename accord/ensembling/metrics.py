"""Held-out metrics for members, ensembles and baselines."""

from __future__ import annotations

import numpy as np
from sklearn import metrics as skm

from accord.ensembling.losses import log_loss
from accord.types import Task

# Lower is better for these; higher for every other metric.
LOWER_IS_BETTER = frozenset({"log_loss", "rmse", "mae"})
PRIMARY = {"classification": "log_loss", "regression": "rmse"}


def score(task: Task, y: np.ndarray, pred: np.ndarray, n_classes: int = 0) -> dict[str, float | None]:
    """Compute every metric of the task.

    Args:
        task: Classification (``pred`` is (n, K) probabilities, ``y`` class indices)
            or regression (``pred`` and ``y`` are values).
        y: True targets.
        pred: Predictions.
        n_classes: Number of classes (classification).

    Returns:
        Metric name -> value (None where a metric is undefined on this data, e.g.
        ROC AUC when the test split holds one class).
    """
    if task == "regression":
        return {
            "rmse": float(np.sqrt(skm.mean_squared_error(y, pred))),
            "mae": float(skm.mean_absolute_error(y, pred)),
            "r2": float(skm.r2_score(y, pred)),
        }
    labels = np.argmax(pred, axis=1)
    out: dict[str, float | None] = {
        "accuracy": float(skm.accuracy_score(y, labels)),
        "balanced_accuracy": float(skm.balanced_accuracy_score(y, labels)),
        "f1_macro": float(skm.f1_score(y, labels, average="macro", zero_division=0)),
        "precision_macro": float(skm.precision_score(y, labels, average="macro", zero_division=0)),
        "recall_macro": float(skm.recall_score(y, labels, average="macro", zero_division=0)),
        "log_loss": log_loss(y, pred),
        "roc_auc": None,
    }
    present = np.unique(y)
    if present.size >= 2:
        if n_classes == 2:
            out["roc_auc"] = float(skm.roc_auc_score(y, pred[:, 1]))
        elif present.size == n_classes:
            out["roc_auc"] = float(
                skm.roc_auc_score(y, pred, multi_class="ovr", labels=list(range(n_classes)))
            )
    return out


def primary_metric(task: Task) -> str:
    """The metric the leaderboard sorts by and the promotion gate compares."""
    return PRIMARY[task]


def better(metric: str, a: float, b: float) -> bool:
    """Whether value `a` of `metric` is strictly better than `b`."""
    return a < b if metric in LOWER_IS_BETTER else a > b

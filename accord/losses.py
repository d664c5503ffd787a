"""Losses used to fit and compare ensembles: log loss and squared error."""

from __future__ import annotations

from typing import Literal

import numpy as np

Task = Literal["classification", "regression"]
PROBA_FLOOR = 1e-15


def log_loss(y: np.ndarray, proba: np.ndarray) -> float:
    """Mean negative log-likelihood of class indices `y` under `proba` (n, K)."""
    picked = proba[np.arange(len(y)), np.asarray(y, dtype=int)]
    return float(-np.mean(np.log(np.clip(picked, PROBA_FLOOR, 1.0))))


def squared_error(y: np.ndarray, pred: np.ndarray) -> float:
    """Mean squared error."""
    return float(np.mean((np.asarray(y, dtype=float) - pred) ** 2))


def loss(task: Task, y: np.ndarray, pred: np.ndarray) -> float:
    """The task's loss: log loss for classification, squared error for regression."""
    return log_loss(y, pred) if task == "classification" else squared_error(y, pred)

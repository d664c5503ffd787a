"""Losses used to fit and compare ensembles: log loss and squared error."""

from __future__ import annotations

import numpy as np

from accord.types import Task

PROBA_FLOOR = 1e-15


def row_losses(task: Task, y: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Each row's loss: negative log-likelihood of its class, or its squared error.

    Args:
        task: Classification (``pred`` (n, K) probabilities, ``y`` class indices) or regression.
        y: True targets.
        pred: Predictions of the same rows.

    Returns:
        An (n,) array whose mean is `loss`.
    """
    if task == "classification":
        return true_class_losses(true_class(y, pred))
    return np.asarray((np.asarray(y, dtype=float) - pred) ** 2)


def true_class(y: np.ndarray, proba: np.ndarray) -> np.ndarray:
    """Each row's probability of its true class: all of (n, K) `proba` that its log loss reads."""
    return np.asarray(proba[np.arange(len(y)), np.asarray(y, dtype=int)])


def true_class_losses(picked: np.ndarray) -> np.ndarray:
    """Each row's negative log-likelihood, from its true class's probability (see `true_class`)."""
    return np.asarray(-np.log(np.clip(picked, PROBA_FLOOR, 1.0)))


def log_loss(y: np.ndarray, proba: np.ndarray) -> float:
    """Mean negative log-likelihood of class indices `y` under `proba` (n, K)."""
    return float(np.mean(row_losses("classification", y, proba)))


def squared_error(y: np.ndarray, pred: np.ndarray) -> float:
    """Mean squared error."""
    return float(np.mean(row_losses("regression", y, pred)))


def loss(task: Task, y: np.ndarray, pred: np.ndarray) -> float:
    """The task's loss: log loss for classification, squared error for regression."""
    return float(np.mean(row_losses(task, y, pred)))


def paired_gap(losses: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    """How much more one model loses than a reference on the same rows, with its standard error.

    The test split is one sample of rows: a model can beat another on it by chance. The
    per-row differences of the two models' losses on the same rows give both the gap (their
    mean) and how far it would move on another split of that size (their standard error),
    so a gap under about two standard errors is within the split's noise.

    Args:
        losses: Row losses of the model (see `row_losses`).
        reference: Row losses of the reference model on the same rows.

    Returns:
        ``{"gap": mean(losses - reference), "se": its standard error}`` (se 0 for one row).
    """
    d = np.asarray(losses, dtype=float) - np.asarray(reference, dtype=float)
    se = float(d.std(ddof=1) / np.sqrt(d.size)) if d.size > 1 else 0.0
    return {"gap": float(d.mean()), "se": se}

"""The figures of a version, drawn with matplotlib from what its run computed.

Why: a leaderboard says how good; figures say where a model errs and how its members
relate. They are drawn once, in the run (never at load: ``import accord`` and `load`
import no matplotlib), published as PNG files with the version, and embedded in its report.

Classification: confusion matrix of the ensemble on the held-out rows; reliability curve
of the ensemble against the best member (top-class confidence against accuracy); ROC and
precision-recall curves for binary tasks. Regression: predicted against actual; residuals
against predicted. Every task: member weights, the correlation of the members' out-of-fold
errors, the leaderboard's primary metric, and permutation importance.

`figures` returns each `matplotlib.figure.Figure` by name (its artists hold the numbers
drawn); `draw` renders the lot as PNG bytes by file name.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

FIGURE_DIR = "figures"
DPI = 90


@dataclass(frozen=True)
class RunFigures:
    """What the figures are drawn from: one run's held-out and out-of-fold predictions and results.

    `classes` are the labels (classification; empty for regression); `y_test` and `y_oof`
    are class indices or values; predictions are (n, K) probabilities or (n,) values.
    """

    task: str
    classes: Sequence[Any]
    y_test: np.ndarray
    ensemble_test: np.ndarray
    member_test: Mapping[str, np.ndarray]
    best_member: str
    y_oof: np.ndarray
    member_oof: Mapping[str, np.ndarray]
    weights: Mapping[str, float] | None
    leaderboard: Sequence[Mapping[str, Any]]
    primary: str
    importance: Mapping[str, Any] | None = None


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)  # files only: no display, whatever the environment says
    import matplotlib.pyplot as plt

    return plt


def _figure(width: float = 5.0, height: float = 4.0) -> tuple[Any, Any]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    return fig, fig.add_subplot()


def png(fig: Any) -> bytes:
    """The figure as PNG bytes, without a timestamp (the same figure gives the same bytes)."""
    out = io.BytesIO()
    fig.savefig(out, format="png", metadata={"Software": None})
    return out.getvalue()


def confusion_counts(y: np.ndarray, proba: np.ndarray, k: int) -> np.ndarray:
    """Rows: true class; columns: predicted (the most probable) class."""
    counts = np.zeros((k, k), dtype=int)
    np.add.at(counts, (y, np.argmax(proba, axis=1)), 1)
    return counts


def _confusion(run: RunFigures) -> Any:
    k = len(run.classes)
    counts = confusion_counts(run.y_test, run.ensemble_test, k)
    fig, ax = _figure(4.5 + 0.3 * k, 4.0 + 0.3 * k)
    ax.imshow(counts, cmap="Blues")
    for i in range(k):
        for j in range(k):
            dark = counts[i, j] > counts.max() / 2
            ax.text(j, i, str(counts[i, j]), ha="center", va="center", color="white" if dark else "black")
    labels = [str(c) for c in run.classes]
    ax.set_xticks(range(k), labels, rotation=45 if k > 4 else 0)
    ax.set_yticks(range(k), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"Confusion matrix, held-out ({len(run.y_test)} rows)")
    return fig


def reliability_points(y: np.ndarray, proba: np.ndarray, bins: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Per confidence bin with rows: mean top-class probability, and the share of those rows right."""
    confidence = proba.max(axis=1)
    right = (np.argmax(proba, axis=1) == y).astype(float)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    shown = [b for b in range(bins) if np.any(which == b)]
    return (
        np.array([confidence[which == b].mean() for b in shown]),
        np.array([right[which == b].mean() for b in shown]),
    )


def _compared(run: RunFigures) -> list[tuple[str, np.ndarray]]:
    """The curves a classification figure compares: the ensemble's and the best member's."""
    return [
        ("ensemble", run.ensemble_test),
        (f"best member ({run.best_member})", run.member_test[run.best_member]),
    ]


def _reliability(run: RunFigures) -> Any:
    fig, ax = _figure()
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfectly calibrated")
    for label, proba in _compared(run):
        x, y = reliability_points(run.y_test, proba)
        ax.plot(x, y, marker="o", label=label)
    ax.set_xlabel("confidence (top-class probability)")
    ax.set_ylabel("accuracy")
    ax.set_title("Reliability, held-out")
    ax.legend(loc="lower right")
    return fig


def _roc(run: RunFigures) -> Any:
    from sklearn.metrics import auc, roc_curve

    fig, ax = _figure()
    for label, proba in _compared(run):
        fpr, tpr, _ = roc_curve(run.y_test, proba[:, 1])
        ax.plot(fpr, tpr, label=f"{label} (AUC {auc(fpr, tpr):.3f})")
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":")
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title(f"ROC, held-out (positive: {run.classes[1]})")
    ax.legend(loc="lower right")
    return fig


def _precision_recall(run: RunFigures) -> Any:
    from sklearn.metrics import average_precision_score, precision_recall_curve

    fig, ax = _figure()
    for label, proba in _compared(run):
        precision, recall, _ = precision_recall_curve(run.y_test, proba[:, 1])
        ap = average_precision_score(run.y_test, proba[:, 1])
        ax.plot(recall, precision, label=f"{label} (AP {ap:.3f})")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_title(f"Precision-recall, held-out (positive: {run.classes[1]})")
    ax.legend(loc="lower left")
    return fig


def _predicted(run: RunFigures) -> Any:
    fig, ax = _figure()
    ax.scatter(run.y_test, run.ensemble_test, s=12, alpha=0.7)
    low = float(min(run.y_test.min(), run.ensemble_test.min()))
    high = float(max(run.y_test.max(), run.ensemble_test.max()))
    ax.plot([low, high], [low, high], color="grey", linestyle=":")
    ax.set_xlabel("actual")
    ax.set_ylabel("predicted (ensemble)")
    ax.set_title(f"Predicted against actual, held-out ({len(run.y_test)} rows)")
    return fig


def _residuals(run: RunFigures) -> Any:
    fig, ax = _figure()
    ax.scatter(run.ensemble_test, run.y_test - run.ensemble_test, s=12, alpha=0.7)
    ax.axhline(0.0, color="grey", linestyle=":")
    ax.set_xlabel("predicted (ensemble)")
    ax.set_ylabel("actual - predicted")
    ax.set_title("Residuals, held-out")
    return fig


def _weights(run: RunFigures) -> Any:
    weights = dict(run.weights or {})
    names = sorted(weights, key=lambda n: -weights[n])
    fig, ax = _figure(5.0, 1.0 + 0.35 * max(1, len(names)))
    ax.barh(names[::-1], [weights[n] for n in names[::-1]])
    ax.set_xlabel("weight")
    ax.set_title("Member weights" if names else "Member weights (stacking: a meta-learner)")
    return fig


def oof_errors(run: RunFigures) -> dict[str, np.ndarray]:
    """Each member's out-of-fold error per row: 1 - p(true class), or prediction - actual."""
    if run.task == "classification":
        return {n: 1.0 - p[np.arange(len(run.y_oof)), run.y_oof] for n, p in run.member_oof.items()}
    return {n: p - run.y_oof for n, p in run.member_oof.items()}


def error_correlation(run: RunFigures) -> tuple[list[str], np.ndarray]:
    """The members' names and the Pearson correlation matrix of their out-of-fold errors."""
    errors = oof_errors(run)
    names = list(errors)
    if len(names) < 2:
        return names, np.ones((len(names), len(names)))
    return names, np.corrcoef(np.vstack([errors[n] for n in names]))


def _correlation(run: RunFigures) -> Any:
    names, matrix = error_correlation(run)
    k = len(names)
    fig, ax = _figure(3.5 + 0.45 * k, 3.0 + 0.45 * k)
    ax.imshow(matrix, vmin=-1, vmax=1, cmap="RdBu_r")
    for i in range(k):
        for j in range(k):
            ax.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center", fontsize=8)
    ax.set_xticks(range(k), names, rotation=45, ha="right")
    ax.set_yticks(range(k), names)
    ax.set_title("Correlation of out-of-fold errors")
    return fig


def _leaderboard(run: RunFigures) -> Any:
    rows = [r for r in run.leaderboard if r.get(run.primary) is not None]
    fig, ax = _figure(5.5, 1.0 + 0.35 * max(1, len(rows)))
    names = [str(r["model"]) for r in rows][::-1]
    ax.barh(names, [float(r[run.primary]) for r in rows][::-1])
    ax.set_xlabel(f"held-out {run.primary}")
    ax.set_title("Leaderboard")
    return fig


def _importance(run: RunFigures, top: int = 20) -> Any:
    features = list((run.importance or {}).get("features", {}).items())[:top]
    fig, ax = _figure(5.5, 1.0 + 0.3 * max(1, len(features)))
    names = [f for f, _ in features][::-1]
    ax.barh(
        names,
        [e["importance"] for _, e in features][::-1],
        xerr=[e["stddev"] for _, e in features][::-1],
    )
    metric = (run.importance or {}).get("metric", run.primary)
    ax.set_xlabel(f"{metric} increase when shuffled")
    ax.set_title("Permutation importance, held-out")
    return fig


def figures(run: RunFigures) -> dict[str, Any]:
    """Every figure of the run by file stem, in the order a report shows them."""
    out: dict[str, Any] = {}
    if run.task == "classification":
        out["confusion_matrix"] = _confusion(run)
        out["reliability"] = _reliability(run)
        if len(run.classes) == 2:
            out["roc"] = _roc(run)
            out["precision_recall"] = _precision_recall(run)
    else:
        out["predicted_vs_actual"] = _predicted(run)
        out["residuals"] = _residuals(run)
    out["weights"] = _weights(run)
    out["error_correlation"] = _correlation(run)
    out["leaderboard"] = _leaderboard(run)
    if run.importance:
        out["importance"] = _importance(run)
    return out


def draw(run: RunFigures) -> dict[str, bytes]:
    """Every figure as PNG bytes by its path in the version: ``figures/<stem>.png``."""
    return {f"{FIGURE_DIR}/{stem}.png": png(fig) for stem, fig in figures(run).items()}

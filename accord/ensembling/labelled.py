"""Score a labelled table against a published ensemble: the training leaderboard, on new rows.

Why: a model meets data it was not trained on; its owner wants the same figures as the
training run (ensemble, members, baselines, ``vs ensemble``) on that data.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from accord.ensembling.ensemble import Ensemble
from accord.ensembling.losses import paired_gap, row_losses
from accord.ensembling.metrics import score
from accord.errors import DataError


def labels_of(model: Ensemble, values: pd.Series) -> np.ndarray:
    """`values` as the model's targets: class indices in ``classes_`` order, or floats.

    Raises:
        DataError: missing labels, labels the model never saw (named), or non-numbers for a
            regression target.
    """
    name = values.name
    missing = int(values.isna().sum())
    if missing:
        raise DataError(f"label column {name!r}: {missing} rows have no label; drop them or fill them in.")
    if model.task == "classification":
        index = {_key(c): i for i, c in enumerate(model.schema.classes)}
        unknown = sorted({_key(v) for v in values} - set(index))
        if unknown:
            raise DataError(
                f"label column {name!r}: labels {unknown[:10]} are not among the model's classes "
                f"{list(index)[:20]}; score only rows of those classes."
            )
        return np.array([index[_key(v)] for v in values], dtype=int)
    numbers = pd.to_numeric(values, errors="coerce")
    bad = values[numbers.isna()]
    if len(bad):
        raise DataError(
            f"label column {name!r}: expected numbers for regression; found {bad.iloc[0]!r} "
            f"(and {len(bad) - 1} more). Convert the column or pick another with --target."
        )
    return numbers.to_numpy(dtype=float)


def _key(label: Any) -> str:
    """A label as text to match classes by: ``2.0`` (an integer column read with gaps) is ``2``."""
    if isinstance(label, float | np.floating) and float(label).is_integer():
        return str(int(label))
    return str(label)


def label_column(model: Ensemble, frame: pd.DataFrame, target: str | None) -> str:
    """The label column: `target`, else the one the model was trained on.

    Raises:
        DataError: the table has no such column.
    """
    name = target or model.schema.target
    if name not in frame.columns:
        raise DataError(
            f"the table has no label column {name!r}; its columns are "
            f"{[str(c) for c in frame.columns][:30]}. "
            "Add the labels, or name the column with --target."
        )
    return name


def score_labelled(model: Ensemble, frame: pd.DataFrame, target: str | None = None) -> dict[str, Any]:
    """The leaderboard of `model` on a labelled table: ensemble, loaded members and baselines.

    Args:
        model: A loaded ensemble (every member loaded: ``weighted_only=False``).
        frame: The table: the model's feature columns and a label column.
        target: The label column; default: the model's target.

    Returns:
        ``{"ref", "rows", "weights", "metrics": {"ensemble", "members", "baselines"}, "vs_ensemble"}``
        in the shape of a training run's result: baselines ``equal_vote`` (the members'
        plain average) and ``best_cv_member`` (the member best by the run's cross-validation).

    Raises:
        DataError: no label column, or labels the model cannot score.
        SchemaError: the features do not match the model's schema.
    """
    column = label_column(model, frame, target)
    y = labels_of(model, frame[column])
    predictions = model.member_predictions(frame.drop(columns=[column]))
    names = list(predictions)
    used, rule = model.rule.over_used(len(names))
    combined = rule.combine([predictions[names[i]] for i in used])
    task, k = model.schema.task, len(model.schema.classes)
    equal = np.mean([predictions[n] for n in names], axis=0)
    members = {n: score(task, y, p, k) for n, p in predictions.items()}
    baselines: dict[str, dict[str, Any]] = {"equal_vote": {"metrics": score(task, y, equal, k)}}
    reference = row_losses(task, y, combined)
    gaps = {n: paired_gap(row_losses(task, y, p), reference) for n, p in predictions.items()}
    vs_ensemble = {"baseline:equal_vote": paired_gap(row_losses(task, y, equal), reference), **gaps}
    best = model.manifest.get("metrics", {}).get("baselines", {}).get("best_cv_member", {}).get("member")
    if best in members:
        baselines["best_cv_member"] = {"member": best, "metrics": members[best]}
        vs_ensemble["baseline:best_cv_member"] = gaps[best]
    return {
        "ref": model.manifest.get("ref"),
        "rows": len(y),
        "weights": model.weights or {},
        "metrics": {"ensemble": score(task, y, combined, k), "members": members, "baselines": baselines},
        "vs_ensemble": vs_ensemble,
    }

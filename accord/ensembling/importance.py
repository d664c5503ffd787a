"""Permutation feature importance of an ensemble on its held-out rows.

Why: a user wants to know which columns the model leans on; shuffling one column and
measuring how much the held-out loss grows answers it for any model, an ensemble included,
in the unit of the loss the leaderboard shows.

A feature's importance is the mean over repeats of (loss with that column shuffled)
minus (loss as it is), with the primary metric (log loss, or RMSE): positive means the
model needs the column. Each (feature, repeat) shuffle is seeded by the run's seed, the
feature's position and the repeat, so the figures do not depend on how the work is split.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from accord.ensembling.ensemble import IMPORTANCE_FILE, Ensemble
from accord.ensembling.losses import log_loss

__all__ = ["IMPORTANCE_FILE", "document", "loss", "permuted_losses", "ranked", "work"]
DEFAULT_REPEATS = 5


def loss(model: Ensemble, X: pd.DataFrame, y: np.ndarray) -> float:
    """The primary loss (log loss or RMSE, `accord.ensembling.metrics.PRIMARY`) on a conformed table."""
    pred = model.combine_conformed(X)
    if model.schema.task == "classification":
        return log_loss(y, pred)
    return float(np.sqrt(np.mean((np.asarray(y, dtype=float) - pred) ** 2)))


def permuted_losses(
    model: Ensemble, X: pd.DataFrame, y: np.ndarray, pairs: Sequence[tuple[str, int]], seed: int
) -> list[float]:
    """The primary loss with each pair's feature shuffled (seeded by `seed`, feature, repeat), in order."""
    conformed = model.schema.conform(X)
    names = list(conformed.columns)
    out = []
    for feature, repeat in pairs:
        rng = np.random.default_rng([seed, names.index(feature), repeat])
        shuffled = conformed.copy()
        shuffled[feature] = conformed[feature].to_numpy()[rng.permutation(len(conformed))]
        out.append(loss(model, shuffled, y))
    return out


def work(features: Sequence[str], repeats: int, groups: int) -> list[list[tuple[str, int]]]:
    """Every (feature, repeat) pair, cut into at most `groups` contiguous groups of near equal size."""
    pairs = [(f, r) for f in features for r in range(repeats)]
    count = max(1, min(groups, len(pairs)))
    size, extra = divmod(len(pairs), count)
    ends = np.cumsum([size + (i < extra) for i in range(count)])
    return [pairs[end - (size + (i < extra)) : end] for i, end in enumerate(ends.tolist())]


def document(
    metric: str, baseline: float, pairs: Sequence[tuple[str, int]], losses: Sequence[float], rows: int
) -> dict[str, Any]:
    """``importance.json``: per feature the mean and spread of the loss increase, largest first."""
    by_feature: dict[str, list[float]] = {}
    for (feature, _), value in zip(pairs, losses, strict=True):
        by_feature.setdefault(str(feature), []).append(value - baseline)
    features = {
        name: {
            "importance": float(np.mean(d)),
            "stddev": float(np.std(d, ddof=1)) if len(d) > 1 else 0.0,
            "n": len(d),
        }
        for name, d in by_feature.items()
    }
    ordered = dict(sorted(features.items(), key=lambda kv: -kv[1]["importance"]))
    return {"metric": metric, "baseline": baseline, "rows": rows, "split": "held-out", "features": ordered}


def ranked(doc: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """An ``importance.json`` document's features, largest importance first (ties by name).

    The stored document's keys are sorted by name (the version's JSON is written so).
    """
    return sorted(doc["features"].items(), key=lambda fe: (-fe[1]["importance"], fe[0]))

"""Fit the ensemble on out-of-fold predictions and score everything on the test split."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from accord.data.split import Prepared
from accord.ensembling.losses import loss, paired_gap, row_losses
from accord.ensembling.metrics import primary_metric, score
from accord.ensembling.weights import EnsembleWeights, fit_weights, weighted_sum
from accord.training.fit import RefitResult


@dataclass(frozen=True)
class Report:
    """Weights, cross-validated losses and held-out metrics of one run."""

    task: str
    primary: str
    rule: EnsembleWeights
    members: list[str]
    cv_loss: dict[str, float]
    ensemble_cv_loss: float
    test: dict[str, dict[str, float | None]]
    ensemble: dict[str, float | None]
    baselines: dict[str, dict[str, Any]]
    vs_ensemble: dict[str, dict[str, float]] = field(default_factory=dict)
    """Leaderboard model -> its held-out loss minus the ensemble's, per row, with a standard error."""
    timings: dict[str, dict[str, float | None]] = field(default_factory=dict)
    """Model -> ``fit_seconds`` (every fold fit and the refit) and ``predict_seconds`` (the test split)."""

    @property
    def weights(self) -> dict[str, float] | None:
        """Member name -> weight (None for stacking)."""
        if self.rule.weights is None:
            return None
        return {n: float(w) for n, w in zip(self.members, self.rule.weights, strict=True)}

    @property
    def guard(self) -> dict[str, Any]:
        """The weights' guard (`accord.ensembling.weights.guard`), its member named; {} without one."""
        record = self.rule.guard
        if not record:
            return {}
        return {
            "shrink": record["shrink"],
            "best": self.members[record["best"]],
            "folds": record["folds"],
            "nested_cv_loss": record["nested_loss"],
        }

    def metrics(self) -> dict[str, Any]:
        """JSON-ready metrics: ensemble, members, baselines, cross-validation, the weights' guard.

        Only what the predictions determine: the same seed gives the same metrics. Wall-clock
        `timings` are kept apart (the manifest's ``timings``).
        """
        return {
            "primary": self.primary,
            "ensemble": self.ensemble,
            "members": self.test,
            "baselines": self.baselines,
            "cv_loss": {**self.cv_loss, "ensemble": self.ensemble_cv_loss},
            "vs_ensemble": self.vs_ensemble,
            **({"guard": self.guard} if self.guard else {}),
        }

    def leaderboard(self) -> list[dict[str, Any]]:
        """Rows sorted by the primary metric: the ensemble, baselines and members.

        Each row but the ensemble's also holds ``loss_vs_ensemble`` and ``loss_vs_ensemble_se``
        (see `vs_ensemble`).
        """
        rows: list[dict[str, Any]] = [{"model": "ensemble", "kind": self.rule.method, **self.ensemble}]
        for name, b in self.baselines.items():
            kind = b.get("member") or b.get("kind", "vote")
            rows.append({"model": f"baseline:{name}", "kind": kind, **b["metrics"]})
        for name in self.members:
            rows.append({"model": name, "kind": "member", **self.test[name]})
        if self.vs_ensemble:
            for row in rows:
                gap = self.vs_ensemble.get(row["model"], {})  # the ensemble's own row: none
                row["loss_vs_ensemble"], row["loss_vs_ensemble_se"] = gap.get("gap"), gap.get("se")
        sign = 1 if self.primary in ("log_loss", "rmse") else -1
        return sorted(rows, key=lambda r: sign * float(r[self.primary]))


PRIOR = "baseline:prior"
"""The trivial baseline's name on the leaderboard; no version that fails to beat it is promoted."""


def prior_predictions(data: Prepared) -> np.ndarray:
    """The trivial baseline's predictions for the test rows, learned from the training rows only.

    Classification: every row gets the training split's class frequencies; regression:
    the training mean. A model that does not beat this learned nothing usable.
    """
    n = len(data.y_test)
    if data.task == "classification":
        counts = np.bincount(np.asarray(data.y_train, dtype=int), minlength=data.n_classes)
        return np.tile(counts / counts.sum(), (n, 1))
    return np.full(n, float(np.mean(data.y_train)))


def evaluate(
    data: Prepared,
    oof: dict[str, np.ndarray],
    refits: dict[str, RefitResult],
    method: str,
    steps: int = 25,
    fold_seconds: Mapping[str, float] | None = None,
) -> Report:
    """Fit weights on out-of-fold predictions; score members, ensemble and baselines on the test split.

    Args:
        data: The run's prepared data.
        oof: Member name -> out-of-fold predictions.
        refits: Member name -> its refit on the whole training split.
        method: How the weights are fitted (`accord.ensembling.weights.fit_weights`).
        steps: Greedy selection steps (``caruana``).
        fold_seconds: Member name -> seconds its fold fits took, summed (for ``timings``).
    """
    names = list(oof)
    task = data.task
    k = data.n_classes
    oof_list = [oof[n] for n in names]
    rule = fit_weights(oof_list, data.y_train, task, method, n_classes=k, steps=steps)
    cv_loss = {n: loss(task, data.y_train, oof[n]) for n in names}
    ensemble_cv = loss(task, data.y_train, rule.combine(oof_list))

    test_preds = [refits[n].test_predictions for n in names]
    test = {n: score(task, data.y_test, refits[n].test_predictions, k) for n in names}
    combined = rule.combine(test_preds)
    ensemble = score(task, data.y_test, combined, k)
    equal = weighted_sum(test_preds, np.full(len(names), 1.0 / len(names)))
    best = min(names, key=lambda n: cv_loss[n])
    prior = prior_predictions(data)
    baselines: dict[str, dict[str, Any]] = {
        "prior": {"kind": "prior", "metrics": score(task, data.y_test, prior, k)},
        "equal_vote": {"metrics": score(task, data.y_test, equal, k)},
        "best_cv_member": {"member": best, "metrics": test[best]},
    }
    reference = row_losses(task, data.y_test, combined)
    gaps = {
        n: paired_gap(row_losses(task, data.y_test, p), reference)
        for n, p in zip(names, test_preds, strict=True)
    }
    vs_ensemble = {
        PRIOR: paired_gap(row_losses(task, data.y_test, prior), reference),
        "baseline:equal_vote": paired_gap(row_losses(task, data.y_test, equal), reference),
        "baseline:best_cv_member": dict(gaps[best]),  # that member's own predictions and gap
        **gaps,
    }
    report = Report(
        task, primary_metric(task), rule, names, cv_loss, ensemble_cv, test, ensemble, baselines, vs_ensemble
    )
    return replace(report, timings=timings(report, refits, fold_seconds or {}))


def timings(
    report: Report, refits: Mapping[str, RefitResult], fold_seconds: Mapping[str, float]
) -> dict[str, dict[str, float | None]]:
    """Each member's and the ensemble's fit and predict seconds, for the leaderboard.

    A member's ``fit_seconds`` is every fit it cost: its fold fits (each with its
    out-of-fold predictions) and its refit (with saving it), without predicting the test
    split; its ``predict_seconds`` is predicting the test split (None when not timed
    apart). The ensemble's are the members' fits summed, and the predictions of those it
    weighs.
    """
    out: dict[str, dict[str, float | None]] = {}
    for name in report.members:
        refit = refits[name]
        out[name] = {
            "fit_seconds": fold_seconds.get(name, 0.0) + refit.seconds - (refit.predict_seconds or 0.0),
            "predict_seconds": refit.predict_seconds,
        }
    weights = report.weights
    used = [n for n in report.members if weights is None or weights[n] > 0]
    predicts = [out[n]["predict_seconds"] for n in used]
    out["ensemble"] = {
        "fit_seconds": sum(float(v["fit_seconds"] or 0.0) for v in out.values()),
        "predict_seconds": None
        if any(p is None for p in predicts)
        else sum(float(p or 0.0) for p in predicts),
    }
    return out

"""Ensemble weights fitted on out-of-fold predictions.

Methods:
    caruana: greedy forward selection with replacement (Caruana et al. 2004), keeping
        the best prefix of the trajectory; weights are counts / prefix length.
    optimize: weights on the simplex minimising the loss (SLSQP), started from caruana.
    stacking: a meta-learner (multinomial logistic regression / non-negative linear
        regression) on the members' predictions; its coefficients are saved as numbers.
    equal: soft voting with equal weights.
    hard: majority vote (classification only).

The combined prediction is ``sum_i w_i * p_i`` for every method with weights. For
classification, ``caruana`` and ``optimize`` then apply one temperature ``T`` fitted on
the same out-of-fold predictions (``p_c ∝ p_c ** (1 / T)``): a weighted average of
members is less confident than it should be, and a single number recalibrates it without
changing which class wins. ``T = 1`` (no change) is kept unless it lowers the loss.

``caruana`` and ``optimize`` are guarded: a nested cross-validation over the out-of-fold
rows (`guard`) measures, on rows the weights were not fitted on, mixes of the fitted
weights with the CV-best member alone, and keeps the mix that loses least. Weights fitted
on a few hundred rows can fit their noise and end worse than the best member; on many rows
the guard keeps the fitted weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from accord.ensembling.losses import PROBA_FLOOR, loss, row_losses, true_class, true_class_losses
from accord.errors import ConfigError
from accord.types import Task

METHODS: tuple[str, ...] = ("caruana", "optimize", "stacking", "equal", "hard")


@dataclass(frozen=True)
class EnsembleWeights:
    """Fitted combination rule: a method, member weights and (stacking) meta coefficients."""

    method: str
    task: Task
    weights: np.ndarray | None
    n_classes: int = 0
    meta: dict[str, Any] = field(default_factory=dict)
    temperature: float = 1.0
    guard: dict[str, Any] = field(default_factory=dict)
    """What `guard` measured: ``shrink`` (the fitted weights' share; the CV-best member has the
    rest), ``best`` (that member's index), ``folds`` and ``nested_loss`` per share tried."""

    def combine(self, predictions: list[np.ndarray]) -> np.ndarray:
        """Combine member predictions (same order as the weights) into the ensemble's."""
        if self.method == "stacking":
            return _stacking_predict(self.meta, predictions, self.task, self.n_classes)
        assert self.weights is not None
        if self.method == "hard":
            return _vote(predictions, self.weights, self.n_classes)
        combined = weighted_sum(predictions, self.weights)
        if self.task == "classification" and self.temperature != 1.0:
            return with_temperature(combined, self.temperature)
        return combined

    def used(self, n_members: int) -> list[int]:
        """Indices of the members `combine` reads: those with a weight above 0 (all for stacking).

        A member with weight 0 adds nothing to a weighted sum or a vote, so its prediction
        need not be computed: caruana often leaves several members at 0, and a zero-weight
        knn or forest can cost more to predict than the members that count.
        """
        if self.weights is None:
            return list(range(n_members))
        return [i for i, w in enumerate(self.weights) if w]

    def restricted(self, used: Sequence[int]) -> EnsembleWeights:
        """This rule over the members at `used` alone (see `used`); it combines to the same values.

        Raises:
            ValueError: A member left out has a weight above 0, or the rule is stacking's.
        """
        if self.weights is None:
            raise ValueError("a stacking rule reads every member; it cannot be restricted")
        dropped = np.delete(self.weights, list(used))
        if dropped.any():
            raise ValueError(f"members left out must have weight 0; found weights {dropped.tolist()}")
        return replace(self, weights=self.weights[list(used)])

    def over_used(self, n_members: int) -> tuple[list[int], EnsembleWeights]:
        """`used` and the rule over those members alone (this rule itself when it reads them all)."""
        used = self.used(n_members)
        return used, self if len(used) == n_members else self.restricted(used)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready mapping."""
        return {
            "method": self.method,
            "task": self.task,
            "weights": None if self.weights is None else [float(w) for w in self.weights],
            "n_classes": self.n_classes,
            "meta": self.meta,
            "temperature": self.temperature,
            "guard": self.guard,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EnsembleWeights:
        """Rebuild from `to_dict` output."""
        return cls(
            data["method"],
            data["task"],
            None if data["weights"] is None else np.asarray(data["weights"], dtype=float),
            int(data.get("n_classes", 0)),
            dict(data.get("meta", {})),
            float(data.get("temperature", 1.0)),  # versions published before temperatures: none
            dict(data.get("guard", {})),  # versions published before the guard: none
        )


def weighted_sum(predictions: list[np.ndarray], weights: np.ndarray) -> np.ndarray:
    """Return ``sum_i w_i * p_i``."""
    out = np.zeros_like(predictions[0], dtype=float)
    for w, p in zip(weights, predictions, strict=True):
        if w:
            out = out + w * p
    return out


def with_temperature(proba: np.ndarray, temperature: float) -> np.ndarray:
    """Rescale class probabilities: ``p_c ** (1 / T)``, renormalised per row."""
    logits = np.log(np.clip(proba, PROBA_FLOOR, 1.0)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    out = np.exp(logits)
    return np.asarray(out / out.sum(axis=1, keepdims=True))


def fit_temperature(proba: np.ndarray, y: np.ndarray) -> float:
    """The temperature in [0.2, 5] minimising the log loss of `proba` on `y`; 1.0 unless it helps.

    The loss at a temperature is that of `with_temperature`'s probabilities, computed from
    the log-probabilities taken once, because the bounded search evaluates it many times
    over every row. Measurements: docs/performance.md.

    Args:
        proba: Class probabilities, shape (n, K).
        y: Class indices, one per row of `proba`.

    Returns:
        The temperature, rounded to six decimals, or 1.0 where none in the range lowers the
        log loss.
    """
    from scipy.optimize import minimize_scalar

    log_p = np.log(np.clip(proba, PROBA_FLOOR, 1.0))
    log_p -= log_p.max(axis=1, keepdims=True)  # each row's largest is 0: exp never overflows
    log_p = np.asfortranarray(log_p)  # a class's column is contiguous: row sums add columns
    picked = true_class(y, log_p)

    def objective(log_t: float) -> float:
        t = float(np.exp(log_t))
        return float(np.mean(true_class_losses(np.exp(picked / t) / np.exp(log_p / t).sum(axis=1))))

    result = minimize_scalar(objective, bounds=(np.log(0.2), np.log(5.0)), method="bounded")
    best = float(np.exp(result.x))
    return round(best, 6) if objective(np.log(round(best, 6))) < objective(0.0) - 1e-9 else 1.0


def _vote(predictions: list[np.ndarray], weights: np.ndarray, n_classes: int) -> np.ndarray:
    """Vote shares per class: each member votes for its most probable class."""
    n = predictions[0].shape[0]
    shares = np.zeros((n, n_classes))
    for w, p in zip(weights, predictions, strict=True):
        shares[np.arange(n), np.argmax(p, axis=1)] += w
    return shares


def caruana(predictions: list[np.ndarray], y: np.ndarray, task: Task, steps: int = 25) -> np.ndarray:
    """Greedy forward selection with replacement; returns weights on the simplex.

    Ties are broken deterministically: a member already chosen first, then the
    lowest index. The returned weights come from the prefix of the trajectory
    with the lowest loss, so the first pick (the best single member) bounds it.
    """
    m = len(predictions)
    if task == "classification":
        # A mix's log loss reads each row's true class only, and a mix of the members'
        # probabilities of it is the mix's: select them once, not for every candidate.
        predictions = [true_class(y, p) for p in predictions]

        def mix_loss(mix: np.ndarray) -> float:
            return float(np.mean(true_class_losses(mix)))
    else:

        def mix_loss(mix: np.ndarray) -> float:
            return loss(task, y, mix)

    counts = np.zeros(m)
    running = np.zeros_like(predictions[0], dtype=float)
    best_loss, best_counts = np.inf, counts.copy()
    for step in range(1, steps + 1):
        candidates = [mix_loss((running + p) / step) for p in predictions]
        lowest = min(candidates)
        tied = [i for i, c in enumerate(candidates) if c <= lowest + 1e-12]
        chosen = min(tied, key=lambda i: (counts[i] == 0, i))
        counts[chosen] += 1
        running = running + predictions[chosen]
        if lowest < best_loss - 1e-12:
            best_loss, best_counts = lowest, counts.copy()
    return best_counts / best_counts.sum()


def optimize(predictions: list[np.ndarray], y: np.ndarray, task: Task, start: np.ndarray) -> np.ndarray:
    """Minimise the loss over the simplex with SLSQP, starting from `start`.

    The start is kept when the optimiser does not improve on it, so the result is
    never worse than the start on the out-of-fold data.
    """
    from scipy.optimize import minimize

    m = len(predictions)

    def objective(w: np.ndarray) -> float:
        return loss(task, y, weighted_sum(predictions, np.clip(w, 0.0, None)))

    result = minimize(
        objective,
        start,
        method="SLSQP",
        bounds=[(0.0, 1.0)] * m,
        constraints=[{"type": "eq", "fun": lambda w: float(np.sum(w) - 1.0)}],
        options={"maxiter": 200, "ftol": 1e-10},
    )
    w = np.clip(np.asarray(result.x, dtype=float), 0.0, None)
    w[w < 1e-6] = 0.0
    if w.sum() <= 0:
        return start
    w = w / w.sum()
    return w if objective(w) <= objective(start) else start


def _stacking_features(predictions: list[np.ndarray], task: Task) -> np.ndarray:
    if task == "classification":
        return np.hstack([np.log(np.clip(p, PROBA_FLOOR, 1.0)) for p in predictions])
    return np.column_stack(predictions)


def _stacking_fit(predictions: list[np.ndarray], y: np.ndarray, task: Task, n_classes: int) -> dict[str, Any]:
    Z = _stacking_features(predictions, task)
    if task == "classification":
        from sklearn.linear_model import LogisticRegression

        lr = LogisticRegression(C=1.0, max_iter=2000).fit(Z, y)
        return {
            "coef": lr.coef_.tolist(),
            "intercept": lr.intercept_.tolist(),
            "classes": lr.classes_.tolist(),
        }
    from sklearn.linear_model import LinearRegression

    lin = LinearRegression(positive=True).fit(Z, y)
    return {"coef": [lin.coef_.tolist()], "intercept": [float(lin.intercept_)]}


def _stacking_predict(
    meta: dict[str, Any], predictions: list[np.ndarray], task: Task, n_classes: int
) -> np.ndarray:
    Z = _stacking_features(predictions, task)
    coef = np.asarray(meta["coef"], dtype=float)
    intercept = np.asarray(meta["intercept"], dtype=float)
    scores = Z @ coef.T + intercept
    if task == "regression":
        return scores.reshape(-1)
    if coef.shape[0] == 1:  # binary: one logit for the second class
        p1 = 1.0 / (1.0 + np.exp(-scores.reshape(-1)))
        return np.column_stack([1.0 - p1, p1])
    scores = scores - scores.max(axis=1, keepdims=True)
    e = np.exp(scores)
    proba = np.zeros((Z.shape[0], n_classes))
    proba[:, np.asarray(meta["classes"], dtype=int)] = e / e.sum(axis=1, keepdims=True)
    return proba


def check_method(method: str, task: Task) -> None:
    """Refuse a method that does not exist or does not fit the task."""
    if method not in METHODS:
        raise ConfigError(f"unknown ensemble method {method!r}; expected one of {list(METHODS)}.")
    if method == "hard" and task == "regression":
        raise ConfigError(
            "ensemble method 'hard' (majority vote) needs classes, but the task is regression; "
            "use --method caruana, optimize, stacking or equal."
        )


def fit_weights(
    predictions: list[np.ndarray],
    y: np.ndarray,
    task: Task,
    method: str = "caruana",
    *,
    n_classes: int = 0,
    steps: int = 25,
    guarded: bool = True,
) -> EnsembleWeights:
    """Fit a combination rule on out-of-fold predictions (one array per member).

    Args:
        predictions: Out-of-fold predictions, (n, K) probabilities or (n,) values each.
        y: True targets (class indices or values) of the same rows.
        task: Classification or regression.
        method: One of `METHODS`.
        n_classes: Number of classes (classification).
        steps: Greedy steps for ``caruana`` (and its start for ``optimize``).
        guarded: Check ``caruana``'s and ``optimize``'s weights by `guard` and shrink them
            toward the CV-best member where that loses less on held-back rows.

    Returns:
        The fitted rule; deterministic for the same inputs.
    """
    check_method(method, task)
    if not predictions:
        raise ConfigError("at least one member is needed to fit ensemble weights.")
    m = len(predictions)
    equal = np.full(m, 1.0 / m)
    if method == "equal":
        return EnsembleWeights(method, task, equal, n_classes)
    if method == "hard":
        return EnsembleWeights(method, task, equal, n_classes)
    if method == "stacking":
        meta = _stacking_fit(predictions, y, task, n_classes)
        return EnsembleWeights(method, task, None, n_classes, meta)
    weights = _simplex(predictions, y, task, method, steps)
    record: dict[str, Any] = {}
    if guarded and m > 1:
        record = guard(predictions, y, task, method, steps)
        weights = _shrunk(weights, record["shrink"], record["best"])
    temperature = 1.0
    if task == "classification":
        temperature = fit_temperature(weighted_sum(predictions, weights), y)
    return EnsembleWeights(method, task, weights, n_classes, temperature=temperature, guard=record)


GUARD_FOLDS = 5
"""Nested folds over the out-of-fold rows that `guard` holds back in turn."""
SHRINKS: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)
"""The fitted weights' shares that `guard` compares; the CV-best member has the rest."""
GUARD_MIN_ROWS = 4 * GUARD_FOLDS
"""Fewer rows than this leave too few per held-back fold to measure anything: no guard."""


def guard(
    predictions: list[np.ndarray], y: np.ndarray, task: Task, method: str, steps: int = 25
) -> dict[str, Any]:
    """How much of the fitted weights to keep, measured on rows they were not fitted on.

    The out-of-fold rows are split into `GUARD_FOLDS` folds (a fixed shuffle, dealt class
    by class for classification). Holding back each fold in turn, the weights and the
    CV-best member are chosen again on the other folds, and every mix
    ``s * weights + (1 - s) * best`` for ``s`` in `SHRINKS` (with its own temperature, for
    classification) predicts the held-back rows. The share with the lowest loss over all
    held-back rows is kept; a tie keeps the larger share.

    Why: the weights and the best member are both chosen on these rows, so their loss here
    flatters them; only held-back rows show whether the mix beats its best member.

    Returns:
        ``{"shrink", "best", "folds", "nested_loss"}``: the share kept, the CV-best member's
        index over all rows, the folds, and each share's loss on held-back rows (keys are the
        shares as text). With fewer than `GUARD_MIN_ROWS` rows: share 1 and ``folds`` 0.
    """
    y = np.asarray(y)
    best = int(np.argmin([loss(task, y, p) for p in predictions]))
    n = len(y)
    if n < GUARD_MIN_ROWS:
        return {"shrink": 1.0, "best": best, "folds": 0, "nested_loss": {}}
    fold = _guard_folds(y, task)
    held_losses = {s: np.zeros(n) for s in SHRINKS}
    for g in range(GUARD_FOLDS):
        fit_rows, held = fold != g, fold == g
        inner = [p[fit_rows] for p in predictions]
        y_fit = y[fit_rows]
        weights = _simplex(inner, y_fit, task, method, steps)
        inner_best = int(np.argmin([loss(task, y_fit, p) for p in inner]))
        for s in SHRINKS:
            mixed = _shrunk(weights, s, inner_best)
            out = weighted_sum([p[held] for p in predictions], mixed)
            if task == "classification":
                t = fit_temperature(weighted_sum(inner, mixed), y_fit)
                out = with_temperature(out, t) if t != 1.0 else out
            held_losses[s][held] = row_losses(task, y[held], out)
    nested = {s: float(held_losses[s].mean()) for s in SHRINKS}
    shrink = min(SHRINKS, key=lambda s: (nested[s], -s))
    return {
        "shrink": shrink,
        "best": best,
        "folds": GUARD_FOLDS,
        "nested_loss": {str(s): v for s, v in nested.items()},
    }


def _guard_folds(y: np.ndarray, task: Task) -> np.ndarray:
    """Each row's nested fold: a fixed shuffle, sorted by class for classification, dealt in turn."""
    order = np.random.default_rng(0).permutation(len(y))
    if task == "classification":
        order = order[np.argsort(y[order], kind="stable")]
    fold = np.empty(len(y), dtype=int)
    fold[order] = np.arange(len(y)) % GUARD_FOLDS
    return fold


def _simplex(predictions: list[np.ndarray], y: np.ndarray, task: Task, method: str, steps: int) -> np.ndarray:
    """``caruana``'s weights, refined by SLSQP for ``optimize``."""
    weights = caruana(predictions, y, task, steps)
    return optimize(predictions, y, task, weights) if method == "optimize" else weights


def _shrunk(weights: np.ndarray, share: float, best: int) -> np.ndarray:
    """``share * weights``, with the rest on member `best`."""
    if share == 1.0:
        return weights
    out = share * weights
    out[best] += 1.0 - share
    return out

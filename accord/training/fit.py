"""Plain functions the training tasks wrap: fit a member on a fold, refit it on the whole split."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from accord.config import MemberSpec
from accord.data.split import Prepared
from accord.members import member_class
from accord.members.bagged import bag_files, bag_info
from accord.settings import setting
from accord.training.cluster import fit_on_cluster, is_distributed, on_worker
from accord.training.memory import release_free_memory


def threads_per_task() -> int:
    """Library threads one task may use: ``$ACCORD_THREADS_PER_TASK`` or 1 (one Dask thread = one core)."""
    return setting("threads_per_task")


def _member(spec: MemberSpec, data: Prepared, seed: int) -> Any:
    cls = member_class(spec.kind)
    return cls(data.task, spec.params, n_classes=data.n_classes, seed=seed, threads=threads_per_task())


@dataclass(frozen=True)
class RefitResult:
    """A member refitted on the whole training split: its files and test predictions."""

    member: str
    kind: str
    info: dict[str, Any]
    files: dict[str, bytes]
    test_predictions: np.ndarray
    seconds: float
    extra: dict[str, Any] = field(default_factory=dict)
    predict_seconds: float | None = None  # predicting the test split (None: not timed apart)


@dataclass(frozen=True)
class FoldResult:
    """Out-of-fold predictions of one member on one fold; with `model`, the fold's fitted model too.

    `model` (kept when the run bags) holds the fold model's files, info and test-split
    predictions, as a refit's would.
    """

    member: str
    fold: int
    predictions: np.ndarray
    seconds: float
    model: RefitResult | None = None


def _needs_features(data: Prepared, spec: MemberSpec) -> None:
    if data.partitioned:
        raise RuntimeError(
            f"member {spec.name!r} ({spec.kind}): the features of {data.source!r} stay in the source "
            "and are read by Dask workers; run it on a Dask cluster (train_ensemble), not in this process."
        )


def fit_fold(spec: MemberSpec, data: Prepared, fold: int, seed: int) -> FoldResult:
    """Fit a member on all folds but `fold` and predict the held-out fold.

    The fitted model is dropped once it has predicted, and the memory the fit freed goes
    back to the operating system (`accord.training.memory`): a worker runs many fits in turn.
    """
    try:
        return _fit_fold(spec, data, fold, seed)
    finally:
        release_free_memory()


def _fit_fold(spec: MemberSpec, data: Prepared, fold: int, seed: int) -> FoldResult:
    start = time.perf_counter()
    if is_distributed(spec.kind) and on_worker():
        _, pred = fit_on_cluster(spec, data, fold, seed, threads_per_task())
        return FoldResult(spec.label, fold, pred, time.perf_counter() - start)
    _needs_features(data, spec)
    train, valid = data.folds[fold]
    member = _member(spec, data, seed)
    member.fit(data.X_train.iloc[train], data.y_train[train], data.schema)
    pred = member.predict(data.X_train.iloc[valid])
    model = _kept(spec, member, data, start) if data.bag else None
    return FoldResult(spec.label, fold, pred, time.perf_counter() - start, model)


def _kept(spec: MemberSpec, member: Any, data: Prepared, start: float) -> RefitResult:
    """A fitted member as a run keeps it: its test-split predictions (timed), files and info."""
    predicting = time.perf_counter()
    test_pred = member.predict(data.X_test)
    predict_seconds = time.perf_counter() - predicting
    files = member.save()
    seconds = time.perf_counter() - start
    return RefitResult(spec.label, spec.kind, member.info(), files, test_pred, seconds, {}, predict_seconds)


def bag_of(results: list[FoldResult]) -> RefitResult:
    """One member's K fold models as the member a bagging run publishes (`accord.members.bagged`).

    Its files are each fold model's under ``fold-<k>/``; its info is the first fold model's
    with ``bag``, every fold model's info in fold order; its test predictions are the fold
    models' averaged, as the bag predicts.

    Raises:
        ValueError: a fold result kept no model (the run did not bag).
    """
    models = []
    for r in sorted(results, key=lambda r: r.fold):
        if r.model is None:
            raise ValueError(f"member {r.member!r} fold {r.fold} kept no model; bagging needs every fold's")
        models.append(r.model)
    first = models[0]
    return RefitResult(
        first.member,
        first.kind,
        bag_info([m.info for m in models]),
        bag_files([m.files for m in models]),
        np.mean([m.test_predictions for m in models], axis=0),
        sum(r.seconds for r in results),
        {},
        sum(m.predict_seconds or 0.0 for m in models),
    )


def fit_full(spec: MemberSpec, data: Prepared, seed: int) -> RefitResult:
    """Refit a member on the whole training split, serialise it and predict the test split.

    As in `fit_fold`, the memory the fit freed goes back to the operating system; the
    result holds the model's files, not the model.
    """
    try:
        return _fit_full(spec, data, seed)
    finally:
        release_free_memory()


def _fit_full(spec: MemberSpec, data: Prepared, seed: int) -> RefitResult:
    start = time.perf_counter()
    if is_distributed(spec.kind) and on_worker():
        member, test_pred = fit_on_cluster(spec, data, None, seed, threads_per_task())
        files, seconds = member.save(), time.perf_counter() - start
        return RefitResult(spec.label, spec.kind, member.info(), files, test_pred, seconds, {}, None)
    _needs_features(data, spec)
    member = _member(spec, data, seed)
    member.fit(data.X_train, data.y_train, data.schema)
    return _kept(spec, member, data, start)


def out_of_fold(data: Prepared, results: list[FoldResult]) -> np.ndarray:
    """Assemble one member's fold predictions into predictions for every training row."""
    n = len(data.y_train)
    first = results[0].predictions
    oof = np.zeros((n, *first.shape[1:]), dtype="float64")
    seen = np.zeros(n, dtype=bool)
    for r in results:
        valid = data.folds[r.fold][1]
        oof[valid] = r.predictions
        seen[valid] = True
    if not seen.all():
        missing = sorted({r.fold for r in results} ^ set(range(len(data.folds))))
        raise RuntimeError(f"member {results[0].member!r}: folds {missing} have no predictions.")
    return oof


def fit_all(data: Prepared, seed: int) -> tuple[dict[str, np.ndarray], dict[str, RefitResult]]:
    """Every member's out-of-fold predictions and refit, one after another in this process.

    The same work the flow spreads over a Dask cluster; for tests, benchmarks and debugging.
    """
    oof: dict[str, np.ndarray] = {}
    refits: dict[str, RefitResult] = {}
    for spec in data.members:
        name = spec.label
        folds = [fit_fold(spec, data, k, seed) for k in range(len(data.folds))]
        oof[name] = out_of_fold(data, folds)
        refits[name] = bag_of(folds) if data.bag else fit_full(spec, data, seed)
    return oof, refits

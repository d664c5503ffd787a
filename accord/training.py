"""Plain functions the training tasks wrap: prepare data, fit a member on a fold, refit it.

`prepare` does every check that bad input can fail, before any training. The
result (`Prepared`) is what travels to the cluster, once.
"""

from __future__ import annotations

import os
import re
import time
import uuid
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import KFold, StratifiedKFold, train_test_split

from accord.config import MemberSpec, TrainConfig
from accord.data import Dataset, Task, load_dataset
from accord.distributed import fit_on_cluster, is_distributed, is_parquet, on_worker
from accord.errors import DataError
from accord.members import check_member_specs, member_class
from accord.members.base import FitShape
from accord.memory import release_free_memory
from accord.schema import Schema
from accord.weights import check_method


@dataclass(frozen=True)
class Prepared:
    """Validated training data with its holdout split and folds (targets encoded)."""

    X_train: pd.DataFrame
    y_train: np.ndarray
    X_test: pd.DataFrame
    y_test: np.ndarray
    folds: tuple[tuple[np.ndarray, np.ndarray], ...]
    schema: Schema
    fingerprint: str
    source: str
    members: tuple[MemberSpec, ...] = ()
    train_rows: np.ndarray | None = None  # source row of each training row (sorted)
    test_rows: np.ndarray | None = None  # source row of each test row (sorted)
    partitioned: bool = False  # features stay in the source (X frames have no columns); workers read them

    @property
    def task(self) -> Task:
        """Classification or regression."""
        return self.schema.task

    @property
    def n_classes(self) -> int:
        """Number of classes (0 for regression)."""
        return len(self.schema.classes)


def encode_target(y: pd.Series, dataset: Dataset) -> np.ndarray:
    """Class labels -> indices into the sorted classes; regression values as floats."""
    if dataset.task == "regression":
        return y.to_numpy(dtype="float64")
    lookup = {c: i for i, c in enumerate(dataset.classes)}
    return np.asarray([lookup[v] for v in y.tolist()], dtype="int64")


def _check_class_counts(y: np.ndarray, classes: tuple[Any, ...], folds: int, where: str, target: str) -> None:
    counts = np.bincount(y, minlength=len(classes))
    for idx, count in enumerate(counts):
        if count < folds:
            raise DataError(
                f"class {classes[idx]!r} of target column {target!r} has {count} rows in {where}; "
                f"{folds}-fold cross-validation needs at least {folds} per class. "
                "Lower --folds, lower --test-size, or add rows of that class."
            )


def split(dataset: Dataset, folds: int, test_size: float, seed: int) -> Prepared:
    """Hold out a test split and make K folds (stratified for classification, seeded)."""
    y = encode_target(dataset.y, dataset)
    n = len(y)
    classification = dataset.task == "classification"
    if classification:
        counts = np.bincount(y, minlength=len(dataset.classes))
        smallest = int(counts.min())
        if smallest < 2:
            label = dataset.classes[int(np.argmin(counts))]
            raise DataError(
                f"class {label!r} of target column {dataset.schema.target!r} has {smallest} row; "
                "at least 2 are needed to hold out a stratified test split "
                f"(and {folds} in training for {folds} folds). Add rows or drop the class."
            )
    n_test = int(np.ceil(n * test_size))
    if n - n_test < folds or n_test < 1:
        raise DataError(
            f"{n} rows cannot give a test split of {test_size:.0%} and {folds} training folds; "
            "add rows or lower --folds / --test-size."
        )
    index = np.arange(n)
    try:
        train_idx, test_idx = train_test_split(
            index, test_size=test_size, random_state=seed, stratify=y if classification else None
        )
    except ValueError as e:
        raise DataError(f"cannot hold out a test split of {test_size}: {e}") from e
    train_idx, test_idx = np.sort(train_idx), np.sort(test_idx)
    y_train = y[train_idx]
    if classification:
        _check_class_counts(y_train, dataset.classes, folds, "the training split", dataset.schema.target)
        splitter: Any = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    else:
        splitter = KFold(n_splits=folds, shuffle=True, random_state=seed)
    # Row indices as int32 (while they fit): they are the largest part of a partitioned
    # run's prepared data, which a worker holds through the run.
    index_dtype = np.int32 if n < 2**31 else np.int64
    train_idx, test_idx = train_idx.astype(index_dtype), test_idx.astype(index_dtype)
    fold_idx = tuple(
        (tr.astype(index_dtype), va.astype(index_dtype))
        for tr, va in splitter.split(np.zeros(len(y_train)), y_train)
    )
    return Prepared(
        X_train=dataset.X.iloc[train_idx].reset_index(drop=True),
        y_train=y_train,
        X_test=dataset.X.iloc[test_idx].reset_index(drop=True),
        y_test=y[test_idx],
        folds=fold_idx,
        schema=dataset.schema,
        fingerprint=dataset.fingerprint,
        source=dataset.source,
        train_rows=train_idx,
        test_rows=test_idx,
    )


def prepare(config: TrainConfig) -> Prepared:
    """Load, validate and split the data of a run, and check its members and method.

    Raises:
        DataError: the data cannot be trained on.
        ConfigError: a member kind, parameter or the method does not fit the task.
    """
    partitioned = is_partitioned_run(config)
    if partitioned:
        from accord.partitioned import describe_parquet

        dataset = describe_parquet(config.data, config.target, config.task)
    else:
        dataset = load_dataset(config.data, config.target, config.task)
    check_method(config.method, dataset.task)
    check_member_specs(((s.label, s.kind, s.params) for s in config.members), dataset.task)
    resolved = tuple(
        spec.model_copy(
            update={"params": member_class(spec.kind).resolve_params(spec.label, spec.params, dataset.schema)}
        )
        for spec in config.members
    )
    prepared = split(dataset, config.folds, config.test_size, config.seed)
    return replace(prepared, members=resolved, partitioned=partitioned)


def is_partitioned_run(config: TrainConfig) -> bool:
    """Whether no process needs the whole feature table.

    True when every member trains across the cluster and the source is Parquet, which
    the workers read in partitions.
    """
    return (
        bool(config.members)
        and all(is_distributed(s.kind) for s in config.members)
        and is_parquet(config.data)
    )


Work = list[tuple[MemberSpec, int | None]]


def fit_shape(data: Prepared, fold: int | None) -> FitShape:
    """The size of one member fit on `data`: fold `fold`'s rows, or the whole training split (None)."""
    if fold is None:
        rows, predict_rows = len(data.y_train), len(data.y_test)
    else:
        train, valid = data.folds[fold]
        rows, predict_rows = len(train), len(valid)
    return FitShape(rows, predict_rows, len(data.schema.names), data.n_classes)


def estimated_seconds(spec: MemberSpec, data: Prepared, fold: int | None) -> float:
    """The member kind's estimate of one fit's seconds on one core (`Member.fit_seconds`)."""
    cls = member_class(spec.kind)
    params = {**cls.default_params(data.task), **spec.params}
    return cls.fit_seconds(data.task, params, fit_shape(data, fold))


def work_order(members: tuple[MemberSpec, ...] | list[MemberSpec], data: Prepared) -> Work:
    """Every member x fold fit and refit, longest first by its estimated seconds.

    Dask starts the tasks by this order (a priority each), so the fits that come last
    decide how long one worker waits for another at the end: the cheapest go there.
    The estimate weighs the kind, its parameters and the table: at 30k rows a random
    forest's fold took 28 s and a histogram boosting's 6.5 s, at 1,000 rows of 10 classes
    the boosting is the costlier. Ordered by kind alone (boosting first), bench/parallel's
    forests and extra trees ran late at 30k rows, and one worker idled 3.6 s at the end.
    Equal estimates keep the members' order, each member's refit (the most rows) first.
    """
    work = [(s, k) for s in members for k in (None, *range(len(data.folds)))]
    return sorted(work, key=lambda w: -estimated_seconds(w[0], data, w[1]))  # stable


def work_phases(
    members: tuple[MemberSpec, ...] | list[MemberSpec], data: Prepared
) -> list[tuple[Work, bool]]:
    """The work in the phases a run submits it: ``(work in `work_order`, one task at a time)``.

    Members that span the whole cluster (xgboost_dask) run first and alone: a worker busy
    with another member would let Dask move their per-worker training tasks elsewhere.
    They also run one task at a time. Their fits take turns on a cluster-wide lock
    anyway, and a task waiting for it holds a worker thread of its own. Each such thread
    kept its own malloc arena of the fit's freed memory: with all four of a member's tasks
    submitted at once, the worker driving them held 366 MiB at 1M rows instead of 207.
    The other members' tasks are all submitted at once.
    """
    work = work_order(members, data)
    return [
        ([w for w in work if is_distributed(w[0].kind)], True),
        ([w for w in work if not is_distributed(w[0].kind)], False),
    ]


def task_key(spec: MemberSpec, fold: int | None) -> str:
    """A unique Dask key for one member task, whose prefix names the member and the fold/refit.

    Dask estimates a task's duration from earlier tasks with the same key prefix
    (`dask.utils.key_split`) and places and steals work by those estimates. Under one
    prefix for every member (the task function's name), a 40 ms logistic regression
    counted as much as a 2 s forest, so a worker holding two forest folds looked no busier
    than one holding two regressions, and nothing was stolen until a worker ran dry.
    ``fold_<member>`` and ``refit_<member>`` give each member's folds and refit durations
    of their own, and the dashboard shows each member apart.
    """
    stem = re.sub(r"[^0-9A-Za-z_]", "_", spec.label)
    return f"{'refit' if fold is None else 'fold'}_{stem}-{uuid.uuid4().hex}"


def threads_per_task() -> int:
    """Library threads one task may use: ``$ACCORD_THREADS_PER_TASK`` or 1 (one Dask thread = one core)."""
    return max(1, int(os.environ.get("ACCORD_THREADS_PER_TASK", "1")))


def _member(spec: MemberSpec, data: Prepared, seed: int) -> Any:
    cls = member_class(spec.kind)
    return cls(data.task, spec.params, n_classes=data.n_classes, seed=seed, threads=threads_per_task())


@dataclass(frozen=True)
class FoldResult:
    """Out-of-fold predictions of one member on one fold."""

    member: str
    fold: int
    predictions: np.ndarray
    seconds: float


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


def _needs_features(data: Prepared, spec: MemberSpec) -> None:
    if data.partitioned:
        raise RuntimeError(
            f"member {spec.name!r} ({spec.kind}): the features of {data.source!r} stay in the source "
            "and are read by Dask workers; run it on a Dask cluster (train_ensemble), not in this process."
        )


def fit_fold(spec: MemberSpec, data: Prepared, fold: int, seed: int) -> FoldResult:
    """Fit a member on all folds but `fold` and predict the held-out fold.

    The fitted model is dropped once it has predicted, and the memory the fit freed goes
    back to the operating system (`accord.memory`): a worker runs many fits in turn.
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
    return FoldResult(spec.label, fold, pred, time.perf_counter() - start)


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
    predict_seconds = None
    if is_distributed(spec.kind) and on_worker():
        member, test_pred = fit_on_cluster(spec, data, None, seed, threads_per_task())
    else:
        _needs_features(data, spec)
        member = _member(spec, data, seed)
        member.fit(data.X_train, data.y_train, data.schema)
        predicting = time.perf_counter()
        test_pred = member.predict(data.X_test)
        predict_seconds = time.perf_counter() - predicting
    files = member.save()
    seconds = time.perf_counter() - start
    return RefitResult(spec.label, spec.kind, member.info(), files, test_pred, seconds, {}, predict_seconds)


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
        oof[name] = out_of_fold(data, [fit_fold(spec, data, k, seed) for k in range(len(data.folds))])
        refits[name] = fit_full(spec, data, seed)
    return oof, refits

"""The training split: validated data, its held-out test rows and its K folds (`Prepared`).

`Prepared` is what travels to the cluster, once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import KFold, StratifiedKFold, train_test_split

from accord.config import MemberSpec
from accord.data.dataset import Dataset
from accord.data.schema import Schema
from accord.errors import DataError
from accord.types import Task


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
    bag: bool = False  # members predict with their fold models averaged (TrainConfig.final "bag"), no refit
    privacy: dict[str, Any] | None = None  # what was and was not DP (accord.training.privacy)

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

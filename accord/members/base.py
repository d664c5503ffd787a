"""The member protocol: build, fit, predict, save, load.

Every kind answers the same protocol, so the training tasks, the ensemble and
the store never branch on the kind. Inputs are schema-conformed DataFrames;
targets are class indices ``0..K-1`` (classification) or floats (regression).
`predict` returns class probabilities of shape ``(n, K)`` for classification
and values of shape ``(n,)`` for regression.
"""

from __future__ import annotations

import difflib
import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Self

import numpy as np
import pandas as pd

from accord.data.schema import Schema
from accord.errors import ConfigError
from accord.types import Task


@dataclass(frozen=True)
class FitShape:
    """The size of one fit: rows it trains on, rows it predicts, input columns, classes (0: regression)."""

    rows: int
    predict_rows: int
    features: int
    classes: int

    @property
    def trees_per_round(self) -> int:
        """Trees a boosting round grows: one per class for more than two classes, else one."""
        return self.classes if self.classes > 2 else 1


class Member(ABC):
    """A base model with its own preprocessing.

    Args:
        task: Classification or regression.
        params: Model parameters; merged over the kind's defaults.
        n_classes: Number of classes (classification only).
        seed: Random seed.
        threads: Threads the model may use (BLAS, OpenMP, XGBoost, TensorFlow).
    """

    kind: ClassVar[str]
    # Parameters the kind's estimator has but accord cannot honour -> why; refused by name.
    not_supported: ClassVar[Mapping[str, str]] = {}

    def __init__(
        self,
        task: Task,
        params: Mapping[str, Any] | None = None,
        *,
        n_classes: int = 0,
        seed: int = 0,
        threads: int = 1,
    ) -> None:
        self.task = task
        self.params = {**self.default_params(task), **dict(params or {})}
        self.n_classes = n_classes
        self.seed = seed
        self.threads = threads

    # -- parameters -------------------------------------------------------------------------
    @classmethod
    @abstractmethod
    def default_params(cls, task: Task) -> dict[str, Any]:
        """Defaults accord uses for this kind (may be a subset of what is allowed)."""

    @classmethod
    @abstractmethod
    def allowed_params(cls, task: Task) -> set[str]:
        """Every parameter name the kind accepts."""

    @classmethod
    def check_params(cls, member: str, task: Task, params: Mapping[str, Any]) -> None:
        """Refuse unknown or invalid parameters before any training.

        Raises:
            ConfigError: naming the member, the parameter and the accepted ones (or, for a
                parameter in `not_supported`, why accord cannot honour it).
        """
        refused = sorted(set(cls.not_supported) & set(params))
        if refused:
            key = refused[0]
            raise ConfigError(
                f"member {member!r} (kind {cls.kind}): parameter {key!r} is not supported: "
                f"{cls.not_supported[key]}. Remove it."
            )
        allowed = cls.allowed_params(task)
        for key in params:
            if key not in allowed:
                close = difflib.get_close_matches(key, sorted(allowed), n=1)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                raise ConfigError(
                    f"member {member!r} (kind {cls.kind}): unknown parameter {key!r} for {task}; "
                    f"expected one of {sorted(allowed)}.{hint}"
                )
        cls.check_values(member, task, {**cls.default_params(task), **dict(params)})

    @classmethod
    def resolve_params(
        cls,
        member: str,
        params: Mapping[str, Any],
        schema: Schema,
        trusted: Mapping[str, bytes] | None = None,
    ) -> dict[str, Any]:
        """Resolve references in parameters before training (transfer kinds pin their parent here).

        `trusted` (public keys by fingerprint) is what a parent's version must be signed by
        (`accord.members.parents.resolve_parent`); kinds without a parent ignore it.
        """
        return dict(params)

    @classmethod
    def check_values(cls, member: str, task: Task, params: Mapping[str, Any]) -> None:
        """Validate parameter values; kinds override this where they can check early (optional hook)."""
        return None

    @classmethod
    def is_private(cls, params: Mapping[str, Any]) -> bool:
        """Whether a member of these parameters trains with differential privacy (`accord.members.dp`)."""
        return False

    # -- scheduling -------------------------------------------------------------------------
    @classmethod
    def fit_seconds(cls, task: Task, params: Mapping[str, Any], shape: FitShape) -> float:
        """Rough seconds one fit (training and predicting) takes on one core, to order work longest first.

        Only the order of the estimates matters: a run starts its costliest fits first, so
        that cheap ones fill the end and no worker waits long for another. `params` are the
        member's merged over the kind's defaults. A kind that cannot tell answers infinity:
        its fits start first, where a long one cannot end a run alone.
        """
        return math.inf

    # -- learning ---------------------------------------------------------------------------
    @abstractmethod
    def fit(self, X: pd.DataFrame, y: np.ndarray, schema: Schema) -> Self:
        """Fit preprocessing and model on a schema-conformed table."""

    @abstractmethod
    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """Probabilities ``(n, K)`` for classification, values ``(n,)`` for regression."""

    # -- persistence ------------------------------------------------------------------------
    @abstractmethod
    def save(self) -> dict[str, bytes]:
        """Serialise to files in safe formats (no pickle), keyed by file name."""

    @classmethod
    @abstractmethod
    def load(cls, files: Mapping[str, bytes], info: Mapping[str, Any]) -> Self:
        """Rebuild a fitted member from `save` output and `info` (already verified)."""

    def info(self) -> dict[str, Any]:
        """JSON-ready description saved beside the files."""
        return {
            "kind": self.kind,
            "task": self.task,
            "params": self.params,
            "n_classes": self.n_classes,
            "seed": self.seed,
        }

    @classmethod
    def from_info(cls, info: Mapping[str, Any]) -> Self:
        """Construct an unfitted member from `info` output."""
        return cls(
            info["task"], info.get("params"), n_classes=info.get("n_classes", 0), seed=info.get("seed", 0)
        )

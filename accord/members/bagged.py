"""A bagged member: the K models a member fitted on the folds, predicting as their average.

Why: the ensemble's weights (and temperature) are fitted on out-of-fold predictions,
which the fold models made; predicting with the same models, averaged, keeps the
ensemble consistent with what its weights were fitted on, and saves the refit.

Published as the member's usual folder with one sub-folder per fold::

    members/<name>/member.json        the first fold model's info, plus "bag": [each fold's info]
    members/<name>/fold-<k>/<files>   fold k's model, in its kind's own safe format
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Self

import numpy as np
import pandas as pd

from accord.data.schema import Schema
from accord.errors import IntegrityError
from accord.members.base import Member
from accord.types import Task

_FOLD = re.compile(r"fold-(\d+)/(.+)")


def bag_info(infos: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The bagged member's info: the first fold model's, with ``bag`` listing every fold's."""
    return {**dict(infos[0]), "bag": [dict(i) for i in infos]}


def bag_files(files: Sequence[Mapping[str, bytes]]) -> dict[str, bytes]:
    """The fold models' files, each under ``fold-<k>/``."""
    return {f"fold-{k}/{name}": data for k, own in enumerate(files) for name, data in own.items()}


def is_bag(info: Mapping[str, Any]) -> bool:
    """Whether a member's info describes a bag of fold models."""
    return bool(info.get("bag"))


class Bagged(Member):
    """Fold models of one kind, predicting as the mean of their predictions.

    Built by `load` from published files; a bag is assembled from fold fits
    (`accord.training.fit.bag_of`), never fitted itself.
    """

    kind = "bagged"

    def __init__(self, models: Sequence[Member], info: Mapping[str, Any]) -> None:
        first = models[0]
        super().__init__(first.task, first.params, n_classes=first.n_classes, seed=first.seed)
        self.kind = first.kind  # type: ignore[misc]  # a bag answers as its members' kind
        self.models = list(models)
        self._info = dict(info)

    @classmethod
    def default_params(cls, task: Task) -> dict[str, Any]:
        return {}

    @classmethod
    def allowed_params(cls, task: Task) -> set[str]:
        return set()

    def fit(self, X: pd.DataFrame, y: np.ndarray, schema: Schema) -> Self:
        raise TypeError("a bagged member is assembled from fold fits; it is not fitted itself")

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """The fold models' predictions, averaged."""
        return np.asarray(np.mean([m.predict(X) for m in self.models], axis=0))

    def save(self) -> dict[str, bytes]:
        return bag_files([m.save() for m in self.models])

    def info(self) -> dict[str, Any]:
        return dict(self._info)

    @classmethod
    def load(cls, files: Mapping[str, bytes], info: Mapping[str, Any]) -> Self:
        """Rebuild every fold model with its kind's own `load`, from verified files.

        Raises:
            IntegrityError: the files and the info's fold list do not match.
        """
        from accord.members import member_class

        folds: list[dict[str, bytes]] = [{} for _ in info["bag"]]
        for path, data in files.items():
            if path == "member.json":
                continue
            match = _FOLD.fullmatch(path)
            if match is None or int(match.group(1)) >= len(folds):
                raise IntegrityError(f"bagged member file {path!r} belongs to no fold of {len(folds)}.")
            folds[int(match.group(1))][match.group(2)] = data
        models = [
            member_class(fold_info["kind"]).load(own, fold_info)
            for own, fold_info in zip(folds, info["bag"], strict=True)
        ]
        return cls(models, info)


def load_member(kind: str, files: Mapping[str, bytes], info: Mapping[str, Any]) -> Member:
    """A published member of `kind`: its kind's `load`, or a `Bagged` of them when `info` is a bag's."""
    from accord.members import member_class

    if is_bag(info):
        return Bagged.load(files, info)
    return member_class(kind).load(files, info)


class Deferred:
    """A published member deserialised on first use; every other attribute, and its class, is the member's.

    Why: `accord.ensembling.ensemble.load` keeps the members the weights leave at 0 in
    ``members`` but never predicts with them, so loading need not import their libraries
    (TensorFlow for ``keras_mlp``, XGBoost) nor build their models. Their files were
    verified with the rest of the version before this was made.

    Args:
        kind: The member's kind.
        files: The member's own files (`load_member`).
        info: Its ``member.json``.
    """

    def __init__(self, kind: str, files: Mapping[str, bytes], info: Mapping[str, Any]) -> None:
        self.kind = kind
        self._files = dict(files)
        self._info = dict(info)
        self._member: Member | None = None

    @property
    def loaded(self) -> Member:
        """The member, deserialised now if it was not yet."""
        if self._member is None:
            self._member = load_member(self.kind, self._files, self._info)
        return self._member

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.loaded, name)

    def __reduce__(self) -> tuple[Any, ...]:  # pickled as it is, still deferred (not by its class)
        return (Deferred, (self.kind, self._files, self._info))

    @property  # type: ignore[misc]
    def __class__(self) -> type:  # isinstance(member, Bagged) sees the member, loading it
        return type(self.loaded)

    def __repr__(self) -> str:
        state = "loaded" if self._member is not None else "not loaded yet"
        return f"Deferred({self.kind!r}, {state})"

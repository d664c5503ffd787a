"""The member zoo: every kind accord can train, behind one protocol (`Member`).

Kinds are looked up by name and their modules imported on first use, so loading a
model imports only the libraries its members need, and a member that is itself a
published ensemble (`published`) needs no import cycle.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Iterator, Mapping

from accord.errors import ConfigError
from accord.members.base import Member
from accord.types import Task

_WHERE: dict[str, str] = {
    "logreg": "accord.members.sklearn_kinds:LogReg",
    "svc": "accord.members.sklearn_kinds:SupportVector",
    "random_forest": "accord.members.sklearn_kinds:RandomForest",
    "extra_trees": "accord.members.sklearn_kinds:ExtraTrees",
    "hist_gb": "accord.members.sklearn_kinds:HistGB",
    "knn": "accord.members.sklearn_kinds:KNN",
    "xgboost": "accord.members.xgboost_kind:XGBoostMember",
    "xgboost_dask": "accord.members.xgboost_dask:XGBoostDaskMember",
    "keras_mlp": "accord.members.keras_kind:KerasMLP",
    "keras_cnn": "accord.members.keras_kind:KerasCNN",
    "keras_transfer": "accord.members.transfer:KerasTransfer",
    "xgboost_continue": "accord.members.transfer:XGBoostContinue",
    "published": "accord.members.transfer:PublishedMember",
    "dp_logreg": "accord.members.dp:DPLogReg",
}


KIND_MODULES: tuple[str, ...] = tuple(dict.fromkeys(where.split(":")[0] for where in _WHERE.values()))
"""Every module that defines a kind: what a worker imports ahead of its first fit."""


class _Kinds(Mapping[str, type[Member]]):
    """Kind name -> member class, importing the class's module on first access."""

    def __getitem__(self, kind: str) -> type[Member]:
        module, name = _WHERE[kind].split(":")
        cls: type[Member] = getattr(importlib.import_module(module), name)
        return cls

    def __iter__(self) -> Iterator[str]:
        return iter(_WHERE)

    def __len__(self) -> int:
        return len(_WHERE)


KINDS: Mapping[str, type[Member]] = _Kinds()


def member_class(kind: str) -> type[Member]:
    """Return the class of a member kind.

    Raises:
        ConfigError: the kind is unknown.
    """
    if kind not in _WHERE:
        raise ConfigError(f"unknown member kind {kind!r}; expected one of {sorted(KINDS)}.")
    return KINDS[kind]


def check_member_specs(specs: Iterable[tuple[str, str, dict[str, object]]], task: Task) -> None:
    """Validate ``(name, kind, params)`` triples for a task before any training."""
    for name, kind, params in specs:
        member_class(kind).check_params(name, task, params)


__all__ = ["KINDS", "Member", "check_member_specs", "member_class"]

"""The member zoo: every kind accord can train, behind one protocol (`Member`)."""

from __future__ import annotations

from collections.abc import Iterable

from accord.errors import ConfigError
from accord.members.base import Member
from accord.members.keras_kind import KerasCNN, KerasMLP
from accord.members.sklearn_kinds import SKLEARN_KINDS
from accord.members.transfer import KerasTransfer, PublishedMember, XGBoostContinue
from accord.members.xgboost_dask import XGBoostDaskMember
from accord.members.xgboost_kind import XGBoostMember
from accord.types import Task

KINDS: dict[str, type[Member]] = {
    **{cls.kind: cls for cls in SKLEARN_KINDS},
    XGBoostMember.kind: XGBoostMember,
    XGBoostDaskMember.kind: XGBoostDaskMember,
    KerasMLP.kind: KerasMLP,
    KerasCNN.kind: KerasCNN,
    XGBoostContinue.kind: XGBoostContinue,
    KerasTransfer.kind: KerasTransfer,
    PublishedMember.kind: PublishedMember,
}


def member_class(kind: str) -> type[Member]:
    """Return the class of a member kind.

    Raises:
        ConfigError: the kind is unknown.
    """
    try:
        return KINDS[kind]
    except KeyError:
        raise ConfigError(f"unknown member kind {kind!r}; expected one of {sorted(KINDS)}.") from None


def check_member_specs(specs: Iterable[tuple[str, str, dict[str, object]]], task: Task) -> None:
    """Validate ``(name, kind, params)`` triples for a task before any training."""
    for name, kind, params in specs:
        member_class(kind).check_params(name, task, params)


__all__ = ["KINDS", "Member", "check_member_specs", "member_class"]

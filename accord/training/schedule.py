"""The work of a run: every member x fold fit and refit, its estimated cost, order and Dask key."""

from __future__ import annotations

import re
import uuid

from accord.config import MemberSpec
from accord.data.split import Prepared
from accord.members import member_class
from accord.members.base import FitShape
from accord.training.cluster import is_distributed

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
    The estimate (`estimated_seconds`) weighs the kind, its parameters and the table, since
    which kind costs most depends on the table, not on the kind alone. Equal estimates keep
    the members' order, each member's refit (the most rows) first. Measurements:
    docs/performance.md.

    Args:
        members: The run's members.
        data: The prepared data, whose folds and splits give each fit's size.

    Returns:
        ``(member, fold)`` pairs, fold None for the refit (none when the run bags),
        costliest first.
    """
    folds = tuple(range(len(data.folds)))
    fits: tuple[int | None, ...] = folds if data.bag else (None, *folds)
    work = [(s, k) for s in members for k in fits]
    return sorted(work, key=lambda w: -estimated_seconds(w[0], data, w[1]))  # stable


def work_phases(
    members: tuple[MemberSpec, ...] | list[MemberSpec], data: Prepared
) -> list[tuple[Work, bool]]:
    """The work in the phases a run submits it: ``(work in `work_order`, one task at a time)``.

    Members that span the whole cluster (xgboost_dask) run first and alone: a worker busy
    with another member would let Dask move their per-worker training tasks elsewhere.
    They also run one task at a time: their fits take turns on a cluster-wide lock anyway,
    and each task waiting for it would hold a worker thread, and that thread a malloc arena
    of freed memory, of its own. The other members' tasks are all submitted at once.
    Measurements: docs/performance.md.

    Args:
        members: The run's members.
        data: The prepared data.

    Returns:
        The cluster-wide members' work (one task at a time), then the others' (all at once).
    """
    work = work_order(members, data)
    return [
        ([w for w in work if is_distributed(w[0].kind)], True),
        ([w for w in work if not is_distributed(w[0].kind)], False),
    ]


def task_key(spec: MemberSpec, fold: int | None) -> str:
    """A unique Dask key for one member task, whose prefix names the member and the fold/refit.

    Dask estimates a task's duration from earlier tasks with the same key prefix
    (`dask.utils.key_split`) and places and steals work by those estimates, so members of
    very different costs must not share a prefix. ``fold_<member>`` and ``refit_<member>``
    give each member's folds and refit durations of their own, and the dashboard shows each
    member apart. Measurements: docs/performance.md.

    Args:
        spec: The member.
        fold: The fold, or None for the refit.

    Returns:
        ``fold_<member>-<uuid>`` or ``refit_<member>-<uuid>``, the member's label made safe
        for a key.
    """
    stem = re.sub(r"[^0-9A-Za-z_]", "_", spec.label)
    return f"{'refit' if fold is None else 'fold'}_{stem}-{uuid.uuid4().hex}"

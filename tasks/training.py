"""Tasks that prepare data and train members; the work lives in `accord.training`."""

from __future__ import annotations

import os

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from accord.config import MemberSpec, TrainConfig
from accord.data.split import Prepared
from accord.training.fit import FoldResult, RefitResult, fit_fold, fit_full
from accord.training.prepare import column_notes, prepare


def log_placement(what: str) -> None:
    """Log which Dask worker (and process) runs this task, so placement is visible in the UI."""
    try:
        from distributed import get_worker

        where = get_worker().address
    except ValueError:
        where = "flow process"
    get_run_logger().info("%s on worker %s (pid %d)", what, where, os.getpid())


class MemberFailed(RuntimeError):
    """A member could not be fitted; the message names the member and fold."""


@task(name="prepare-data", cache_policy=NO_CACHE, persist_result=False)
def prepare_data(config: TrainConfig) -> Prepared:
    """Load, validate and split the data; check members and method (no training).

    Columns left out or turned from dates into numbers are logged (`column_notes`).
    """
    data = prepare(config)
    for note in column_notes(data.schema):
        get_run_logger().warning(note)
    return data


@task(name="stage-data", cache_policy=NO_CACHE, persist_result=False)
def stage_data(data: Prepared) -> Prepared:
    """Hold the prepared data on the cluster, so member tasks receive it from there."""
    return data


@task(
    name="fit-fold",
    task_run_name="fit-{spec.name}-fold-{fold}",
    cache_policy=NO_CACHE,
    persist_result=False,
)
def fit_member_fold(spec: MemberSpec, data: Prepared, fold: int, seed: int) -> FoldResult:
    """Fit one member on K-1 folds and predict the held-out fold."""
    log_placement(f"fit {spec.name} fold {fold}")
    try:
        return fit_fold(spec, data, fold, seed)
    except Exception as e:
        raise MemberFailed(
            f"member {spec.name!r} ({spec.kind}) failed on fold {fold}: {type(e).__name__}: {e}"
        ) from e


@task(name="refit-member", task_run_name="refit-{spec.name}", cache_policy=NO_CACHE, persist_result=False)
def refit_member(spec: MemberSpec, data: Prepared, seed: int) -> RefitResult:
    """Refit one member on the whole training split; return its files and test predictions."""
    log_placement(f"refit {spec.name}")
    try:
        return fit_full(spec, data, seed)
    except Exception as e:
        raise MemberFailed(
            f"member {spec.name!r} ({spec.kind}) failed on refit: {type(e).__name__}: {e}"
        ) from e

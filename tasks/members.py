"""Every member fit of a run, submitted to the task runner: cached results reused, the rest trained.

The train flow's one call for its members (`fit_members`); it keeps the flow a list of
steps. Fits run in the order of `accord.training.schedule.work_phases`, longest first.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import dask
import numpy as np
from prefect.futures import as_completed

from accord.config import TrainConfig
from accord.data.split import Prepared
from accord.faults import failpoint
from accord.registry.cache import ResultCache, result_key
from accord.training.fit import FoldResult, RefitResult, out_of_fold
from accord.training.progress import FitProgress, tell
from accord.training.schedule import estimated_seconds, task_key, work_phases
from tasks.training import MemberFailed, fit_member_fold, refit_member, stage_data


@dataclass
class Fits:
    """What a run's members produced: each member's fold results and its refit."""

    folds: dict[tuple[str | None, int], FoldResult] = field(default_factory=dict)
    refits: dict[str, RefitResult] = field(default_factory=dict)

    def keep(self, name: str, fold: int | None, result: Any) -> None:
        """Record the result of member `name`'s fold `fold`, or its refit (None)."""
        if fold is None:
            self.refits[name] = result
        else:
            self.folds[(name, fold)] = result

    def out_of_fold(self, data: Prepared) -> dict[str, np.ndarray]:
        """Each member's out-of-fold predictions, in training-row order."""
        return {
            n: out_of_fold(data, [self.folds[(n, k)] for k in range(len(data.folds))]) for n in _names(data)
        }

    def fold_seconds(self, data: Prepared) -> dict[str, float]:
        """Each member's fit seconds summed over its folds."""
        return {n: sum(self.folds[(n, k)].seconds for k in range(len(data.folds))) for n in _names(data)}

    def __len__(self) -> int:
        return len(self.folds) + len(self.refits)


def _names(data: Prepared) -> list[str]:
    return [spec.name for spec in data.members if spec.name]


def _what(fold: int | None) -> str:
    return "refit" if fold is None else f"fold {fold}"


def _result(future: Any, what: str) -> Any:
    """Return a member task's result, naming the member on any failure.

    Failures inside the task already name it; this covers those outside it, e.g. Dask
    giving up after the workers running it died.
    """
    try:
        return future.result()
    except MemberFailed:
        raise
    except Exception as e:
        raise MemberFailed(f"{what} failed: {type(e).__name__}: {e}") from e


def fit_members(
    runner: Any, data: Prepared, config: TrainConfig, cache: ResultCache, split: str, logger: Any
) -> Fits:
    """Fit every member on every fold and refit it, on `runner`, reusing `cache`'s results.

    Args:
        runner: The entered task runner of the flow.
        data: The prepared run; its members are fitted.
        config: The run's options (seed, cluster).
        cache: Where each fit's result is looked up first and stored once done.
        split: `accord.registry.cache.split_digest` of `data`, the start of every cache key.
        logger: The flow's logger: progress and reuse are logged with the run.

    Returns:
        Every fold result and refit. The data is staged on the cluster only if something
        must be trained.

    Raises:
        MemberFailed: a fit failed; the message names the member and the fold.
    """
    fits = Fits()
    phases = work_phases(data.members, data)
    total = sum(len(work) for work, _ in phases)
    estimates = {(s.label, k): estimated_seconds(s, data, k) for work, _ in phases for s, k in work}
    workers = None if config.dask_address or config.cluster_class else config.workers
    progress = FitProgress(total, sum(estimates.values()), workers)
    tell(progress, False, logger.info)

    def collect(future: Any, name: str, k: int | None, key: str) -> None:
        result = _result(future, f"member {name!r} {_what(k)}")
        logger.debug("member %r %s: fitted in %.2f s", name, _what(k), result.seconds)
        progress.finished(estimates[(name, k)])
        tell(progress, True, logger.info)
        fits.keep(name, k, result)
        try:
            cache.put_refit(key, result) if k is None else cache.put_fold(key, result)
        except Exception as e:  # a cache that cannot be written costs a retrain later, not this run
            logger.warning("could not cache member %r %s: %s", name, _what(k), e)
        if 2 * len(fits) >= total:
            failpoint("train:mid-training")

    staged = None
    for phase, one_at_a_time in phases:
        pending: dict[Any, tuple[str, int | None, str]] = {}
        for position, (spec, k) in enumerate(phase):  # longest first; reuses a crashed run's results
            name = spec.label
            key = result_key(split, spec, k, config.seed)
            cached = cache.get_refit(key) if k is None else cache.get_fold(key)
            if cached is not None:
                fits.keep(name, k, cached)
                logger.info("reused the cached result of member %r %s", name, _what(k))
                progress.finished(estimates[(name, k)], reused=True)
                tell(progress, True, logger.info)
                continue
            if staged is None:
                staged = runner.submit(stage_data, {"data": data})
            # Dask runs tasks submitted together in no set order; a priority per task keeps
            # the longest-first order of `work_order`.
            with dask.annotate(priority=len(phase) - position):
                if k is None:
                    params = {"spec": spec, "data": staged, "seed": config.seed}
                    future = runner.submit(refit_member, params, key=task_key(spec, k))
                else:
                    params = {"spec": spec, "data": staged, "fold": k, "seed": config.seed}
                    future = runner.submit(fit_member_fold, params, key=task_key(spec, k))
            if one_at_a_time:
                collect(future, name, k, key)
            else:
                pending[future] = (name, k, key)
        for future in as_completed(list(pending)):
            collect(future, *pending[future])
    return fits


def prune_cache(cache: ResultCache, keep: float, store: str, logger: logging.Logger | Any) -> None:
    """Drop cached results older than `keep` seconds; a failure is logged, never raised.

    The version is published by then: an old entry left behind costs storage only.
    """
    try:
        pruned = cache.prune(keep)
    except Exception as e:
        logger.warning("could not prune old cached member results in %s: %s", store, e)
    else:
        if pruned:
            logger.info("pruned %d cached member results older than %g days", pruned, keep / 86400)

"""Every member fit of a run, submitted to the task runner: cached results reused, the rest trained.

The train flow's one call for its members (`fit_members`); it keeps the flow a list of
steps. Fits run in the order of `accord.training.schedule.work_phases`, longest first.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import dask
import numpy as np
from distributed import as_completed as distributed_as_completed

from accord.config import TrainConfig
from accord.data.split import Prepared
from accord.faults import failpoint
from accord.registry.cache import ResultCache, result_key
from accord.training.budget import plan
from accord.training.fit import FoldResult, RefitResult, bag_of, out_of_fold
from accord.training.progress import FitProgress, tell
from accord.training.schedule import estimated_seconds, task_key, work_phases
from tasks.training import MemberFailed, fit_member_fold, refit_member, stage_data


@dataclass
class Fits:
    """What a run's members produced: each member's fold results and refit, and who was left out."""

    folds: dict[tuple[str, int], FoldResult] = field(default_factory=dict)
    refits: dict[str, RefitResult] = field(default_factory=dict)
    left_out: dict[str, str] = field(default_factory=dict)

    def keep(self, name: str, fold: int | None, result: Any) -> None:
        """Record the result of member `name`'s fold `fold`, or its refit (None)."""
        if fold is None:
            self.refits[name] = result
        else:
            self.folds[(name, fold)] = result

    def finished(self, data: Prepared) -> Prepared:
        """`data` with only the members that were not left out (all of them without a time limit)."""
        return replace(data, members=tuple(s for s in data.members if s.label not in self.left_out))

    def out_of_fold(self, data: Prepared) -> dict[str, np.ndarray]:
        """Each member's out-of-fold predictions, in training-row order."""
        return {
            n: out_of_fold(data, [self.folds[(n, k)] for k in range(len(data.folds))]) for n in _names(data)
        }

    def fold_seconds(self, data: Prepared) -> dict[str, float]:
        """Each member's fit seconds summed over its folds."""
        return {n: sum(self.folds[(n, k)].seconds for k in range(len(data.folds))) for n in _names(data)}

    def bagged(self, data: Prepared) -> Fits:
        """When the run bags, each whole member's fold models as its refit (`bag_of`); self."""
        if data.bag:
            for name in _names(data):
                if name not in self.left_out:
                    self.refits[name] = bag_of([self.folds[(name, k)] for k in range(len(data.folds))])
        return self

    @property
    def cut_short(self) -> bool:
        """Whether fits were abandoned at the deadline while running (they still hold workers)."""
        return any(why.startswith("cut short") for why in self.left_out.values())

    def used_refits(self) -> dict[str, RefitResult]:
        """The refits of the members not left out."""
        return {n: r for n, r in self.refits.items() if n not in self.left_out}

    def __len__(self) -> int:
        return len(self.folds) + len(self.refits)


def _names(data: Prepared) -> list[str]:
    return [spec.name for spec in data.members if spec.name]


def _what(fold: int | None) -> str:
    return "refit" if fold is None else f"fold {fold}"


def _result(future: Any, what: str, timeout: float | None = None) -> Any:
    """Return a member task's result, naming the member on any failure.

    Failures inside the task already name it; this covers those outside it, e.g. Dask
    giving up after the workers running it died.
    """
    try:
        return future.result(timeout=timeout)
    except MemberFailed:
        raise
    except Exception as e:  # a TimeoutError too: the deadline is `DeadlinePassed`, never this
        raise MemberFailed(f"{what} failed: {type(e).__name__}: {e}") from e


def fit_members(
    runner: Any,
    data: Prepared,
    config: TrainConfig,
    cache: ResultCache,
    split: str,
    logger: Any,
    deadline: float | None = None,
) -> Fits:
    """Fit every member on every fold and refit it, on `runner`, reusing `cache`'s results.

    Args:
        runner: The entered task runner of the flow.
        data: The prepared run; its members are fitted.
        config: The run's options (seed, cluster).
        cache: Where each fit's result is looked up first and stored once done.
        split: `accord.registry.cache.split_digest` of `data`, the start of every cache key.
        logger: The flow's logger: progress and reuse are logged with the run.
        deadline: `time.monotonic()` by which fits must end (`accord.training.budget`), or None.
            Members whose fits would not end by then are not started; fits still running
            then are abandoned. Either way the member is in `Fits.left_out`, with the reason.

    Returns:
        Every fold result and refit. The data is staged on the cluster only if something
        must be trained.

    Raises:
        MemberFailed: a fit failed; the message names the member and the fold; or a time
            limit left no member whole.
    """
    fits = Fits()
    phases = work_phases(data.members, data)
    estimates = {(s.label, k): estimated_seconds(s, data, k) for work, _ in phases for s, k in work}
    total = len(estimates)
    workers = None if config.dask_address or config.cluster_class else config.workers
    progress = FitProgress(total, sum(estimates.values()), workers)
    tell(progress, False, logger.info)
    to_train: list[tuple[list[tuple[Any, int | None, str]], bool]] = []
    for phase, one_at_a_time in phases:  # cached results first: they cost no time
        todo = []
        for spec, k in phase:
            key = result_key(split, spec, k, config.seed, data.bag)
            cached = cache.get_refit(key) if k is None else cache.get_fold(key)
            if cached is None:
                todo.append((spec, k, key))
            else:
                fits.keep(spec.label, k, cached)
                logger.info("reused the cached result of member %r %s", spec.label, _what(k))
                progress.finished(estimates[(spec.label, k)], reused=True)
                tell(progress, True, logger.info)
        to_train.append((todo, one_at_a_time))
    if not any(todo for todo, _ in to_train):
        return fits.bagged(data)
    staged = runner.submit(stage_data, {"data": data})
    if deadline is not None:
        _plan_within(fits, to_train, estimates, data, slots(runner), deadline, logger)

    def collect(future: Any, name: str, k: int | None, key: str, timeout: float | None = None) -> None:
        result = _result(future, f"member {name!r} {_what(k)}", timeout)
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

    def capacity(one_at_a_time: bool, todo: int) -> Callable[[], int]:
        # Under a deadline, no more fits run than the cluster has slots (counted again as it
        # grows; twice that with `adapt`, so Dask sees work waiting and scales up), started in
        # the plan's order: what `budget.plan` counted on, and nothing queued behind a long fit.
        if one_at_a_time:
            return lambda: 1
        if deadline is None:
            return lambda: todo
        return lambda: slots(runner) * (2 if config.adapt else 1)

    def launch(spec: Any, k: int | None, priority: int) -> Any:
        # Dask runs tasks submitted together in no set order; a priority per task keeps
        # the longest-first order of `work_order`.
        with dask.annotate(priority=priority):
            if k is None:
                params = {"spec": spec, "data": staged, "seed": config.seed}
                return runner.submit(refit_member, params, key=task_key(spec, k))
            params = {"spec": spec, "data": staged, "fold": k, "seed": config.seed}
            return runner.submit(fit_member_fold, params, key=task_key(spec, k))

    for todo, one_at_a_time in to_train:  # longest first; reuses a crashed run's results
        queue = deque((spec, k, key, len(todo) - i) for i, (spec, k, key) in enumerate(todo))
        pending: dict[Any, tuple[str, int | None, str]] = {}
        try:
            for future in _gated(
                queue, capacity(one_at_a_time, len(todo)), launch, pending, fits.left_out, deadline
            ):
                collect(future, *pending.pop(future))
        except DeadlinePassed:
            _abandon(fits, pending, logger)
            _not_started(fits, queue, logger)
        except BaseException:  # a failed fit fails the run: nothing of it keeps running on the cluster
            for future in pending:
                future.wrapped_future.cancel()
            raise
    if len(fits.left_out) == len(data.members):
        raise MemberFailed(
            f"no member finished within the time limit of {config.time_limit:.0f} s "
            f"({'; '.join(f'{n}: {why}' for n, why in fits.left_out.items())}). Raise time_limit."
        )
    return fits.bagged(data)


class DeadlinePassed(Exception):
    """The run's fits deadline passed with fits still running or not started (`_gated`)."""


def _gated(
    queue: deque[tuple[Any, int | None, str, int]],
    capacity: Callable[[], int],
    launch: Any,
    pending: dict[Any, tuple[str, int | None, str]],
    left_out: dict[str, str],
    deadline: float | None,
) -> Iterator[Any]:
    """Launch `queue`'s fits in order, at most `capacity()` at a time; yield each future as it ends.

    A fit whose member is in `left_out` is skipped. `pending` holds the futures in flight
    (the caller pops each one yielded) and `queue` what is not launched yet. Once `deadline`
    passes nothing more is launched; fits that ended by then are still yielded, then
    `DeadlinePassed` is raised with `pending` and `queue` holding what to give up.
    Waits on the Dask futures: Prefect's own ``as_completed(timeout=...)`` arms an alarm
    that can interrupt the caller's code while the generator is suspended.
    """
    done: Any = None
    by_dask: dict[Any, Any] = {}
    while queue or pending:
        late = deadline is not None and time.monotonic() >= deadline
        while queue and not late and len(pending) < capacity():
            spec, k, key, priority = queue.popleft()
            if spec.label in left_out:
                continue
            future = launch(spec, k, priority)
            pending[future] = (spec.label, k, key)
            by_dask[future.wrapped_future] = future
            if done is None:
                loop = future.wrapped_future.client.loop
                done = distributed_as_completed([], loop=loop, timeout=_left(deadline))
            done.add(future.wrapped_future)
        if not pending:
            if late and queue:
                raise DeadlinePassed
            return
        try:
            ended = next(done)  # ended fits first; TimeoutError only once none is left and time is up
        except TimeoutError:
            raise DeadlinePassed from None
        yield by_dask.pop(ended)


def _left(deadline: float | None) -> float | None:
    """Seconds until `deadline` (at least a millisecond), or None for no deadline."""
    return None if deadline is None else max(1e-3, deadline - time.monotonic())


def slots(runner: Any) -> int:
    """Fits the cluster runs at once: its workers' threads (at least 1)."""
    workers = runner.client.scheduler_info(n_workers=-1)["workers"].values()
    return max(1, sum(int(w.get("nthreads", 1)) for w in workers))


def _plan_within(
    fits: Fits,
    to_train: list[tuple[list[tuple[Any, int | None, str]], bool]],
    estimates: dict[tuple[str, int | None], float],
    data: Prepared,
    slots: int,
    deadline: float,
    logger: Any,
) -> None:
    """Leave out the members whose fits still to train would not end by `deadline` (`budget.plan`)."""
    remaining: dict[str, list[float]] = {spec.label: [] for spec in data.members}
    for todo, _ in to_train:
        for spec, k, _key in todo:
            remaining[spec.label].append(estimates[(spec.label, k)])
    chosen = plan([s.label for s in data.members], remaining, slots, deadline - time.monotonic())
    for name, why in chosen.left_out.items():
        fits.left_out[name] = why
        logger.warning("member %r left out: %s", name, why)


def _abandon(fits: Fits, pending: dict[Any, tuple[str, int | None, str]], logger: Any) -> None:
    """Give up on fits still running or waiting at the deadline; leave their members out."""
    for future, (name, k, _key) in pending.items():
        future.wrapped_future.cancel()
        if name not in fits.left_out:
            fits.left_out[name] = f"cut short: its {_what(k)} had not ended at the time limit"
            logger.warning("member %r left out: %s", name, fits.left_out[name])


def _not_started(fits: Fits, queue: deque[tuple[Any, int | None, str, int]], logger: Any) -> None:
    """Leave out the members with a fit not yet launched at the deadline."""
    for spec, k, _key, _priority in queue:
        if spec.label not in fits.left_out:
            fits.left_out[spec.label] = f"cut short: its {_what(k)} had not started at the time limit"
            logger.warning("member %r left out: %s", spec.label, fits.left_out[spec.label])


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

"""Train an ensemble: members x folds in parallel on Dask, weights on out-of-fold predictions, publish.

Run it with ``python -m flows.train --config run.yaml`` or ``accord train ...``.
"""

from __future__ import annotations

import sys
from typing import Any

import dask
from prefect import flow, get_run_logger
from prefect.context import get_run_context
from prefect.futures import as_completed

from accord.config import TrainConfig
from accord.faults import failpoint
from accord.registry.cache import ResultCache, keep_seconds, result_key, run_key, split_digest
from accord.registry.refs import parse_ref
from accord.training.fit import FoldResult, RefitResult, out_of_fold
from accord.training.progress import FitProgress, tell
from accord.training.schedule import estimated_seconds, task_key, work_phases
from runtime.local_workers import start_ahead
from runtime.runner import task_runner_for
from tasks.ensemble import fit_ensemble, promote_version, publish_version, report_artifacts
from tasks.training import MemberFailed, fit_member_fold, prepare_data, refit_member, stage_data


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


def _what(fold: int | None) -> str:
    return "refit" if fold is None else f"fold {fold}"


def _keep(
    folds: dict[tuple[str | None, int], FoldResult],
    refits: dict[str, RefitResult],
    name: str,
    fold: int | None,
    result: Any,
) -> None:
    if fold is None:
        refits[name] = result
    else:
        folds[(name, fold)] = result


@flow(name="train-ensemble", log_prints=True, validate_parameters=True)
def train_ensemble(config: TrainConfig) -> dict[str, Any]:
    """Train, weight, evaluate and publish an ensemble described by `config`.

    Returns:
        ``{"ref", "version", "weights", "metrics": {"ensemble", "members", "baselines"}, "unchanged",
        "promotion", "vs_ensemble", "timings"}``; ``unchanged`` is True when an identical earlier run had
        published the version returned (nothing new was published); ``vs_ensemble`` maps each
        other leaderboard model to its held-out loss minus the ensemble's, per row, with a
        standard error (`accord.ensembling.losses.paired_gap`).
    """
    logger = get_run_logger()
    # A LocalCluster's workers fork from a server process that imports their code (about
    # 2.5 CPU-seconds): started now, those imports run on another core while the data loads.
    start_ahead(config.dask_address, config.cluster_class)
    keep = keep_seconds()  # a bad ACCORD_CACHE_DAYS fails here, before any training
    data = prepare_data(config)  # in this process: bad input fails here, before any cluster starts
    logger.info(
        "data %s: %d training rows, %d test rows, %d folds, task %s",
        data.source,
        len(data.y_train),
        len(data.y_test),
        len(data.folds),
        data.task,
    )
    cache = ResultCache(config.store)
    split = split_digest(data)  # hashed once; every cache key and the run key start from it
    fold_results: dict[tuple[str | None, int], FoldResult] = {}
    refits: dict[str, RefitResult] = {}
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
        _keep(fold_results, refits, name, k, result)
        try:
            cache.put_refit(key, result) if k is None else cache.put_fold(key, result)
        except Exception as e:  # a cache that cannot be written costs a retrain later, not this run
            logger.warning("could not cache member %r %s: %s", name, _what(k), e)
        if 2 * (len(fold_results) + len(refits)) >= total:
            failpoint("train:mid-training")

    with task_runner_for(config) as runner:
        staged = None
        for phase, one_at_a_time in phases:
            pending: dict[Any, tuple[str, int | None, str]] = {}
            for position, (spec, k) in enumerate(phase):  # longest first; reuses a crashed run's results
                name = spec.label
                key = result_key(split, spec, k, config.seed)
                cached = cache.get_refit(key) if k is None else cache.get_fold(key)
                if cached is not None:
                    _keep(fold_results, refits, name, k, cached)
                    logger.info("reused the cached result of member %r %s", name, _what(k))
                    progress.finished(estimates[(name, k)], reused=True)
                    tell(progress, True, logger.info)
                    continue
                if staged is None:  # the cluster starts only if something must be trained
                    staged = runner.submit(stage_data, {"data": data})
                # Dask runs tasks submitted within 100 ms of each other in no set order; a
                # priority per task keeps the longest-first order of `work_order`.
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
    names = [spec.name for spec in data.members if spec.name]
    oof = {n: out_of_fold(data, [fold_results[(n, k)] for k in range(len(data.folds))]) for n in names}
    fold_seconds = {n: sum(fold_results[(n, k)].seconds for k in range(len(data.folds))) for n in names}
    report = fit_ensemble(data, oof, refits, config.method, config.ensemble_size, fold_seconds)
    run_id = str(get_run_context().flow_run.id)  # type: ignore[union-attr]
    key = run_key(split, data, config.method, config.ensemble_size, config.seed)
    ref, new = publish_version(
        config.store, config.model_name, data, refits, report, config.model_dump(mode="json"), run_id, key
    )
    report_artifacts(report, ref, config.model_name)
    failpoint("promote:before-alias")
    decision = promote_version(config.store, ref, data, report, config.alias, config.promote)
    try:
        pruned = cache.prune(keep)
    except Exception as e:  # the version is published; an old entry left behind costs storage only
        logger.warning("could not prune old cached member results in %s: %s", config.store, e)
    else:
        if pruned:
            logger.info("pruned %d cached member results older than %g days", pruned, keep / 86400)
    logger.info(
        "%s %s (ensemble %s %.4f)",
        "published" if new else "unchanged: an identical run already published",
        ref,
        report.primary,
        report.ensemble[report.primary],
    )
    return {
        "ref": ref,
        "version": parse_ref(ref).version,
        "weights": report.weights,
        "metrics": {"ensemble": report.ensemble, "members": report.test, "baselines": report.baselines},
        "unchanged": not new,
        "promotion": decision.to_dict(),
        "vs_ensemble": report.vs_ensemble,
        "timings": report.timings,
    }


if __name__ == "__main__":
    from deployments.cli import console

    console(["train", *sys.argv[1:]])

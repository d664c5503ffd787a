"""Train an ensemble: members x folds in parallel on Dask, weights on out-of-fold predictions, publish.

Run it with ``accord train ...`` or ``python -m flows.train --config run.yaml``.
"""

from __future__ import annotations

import sys
from typing import Any

from prefect import flow, get_run_logger
from prefect.context import get_run_context

from accord.config import TrainConfig
from accord.faults import failpoint
from accord.registry.cache import ResultCache, keep_seconds, run_key, split_digest
from accord.registry.signing import checked_signing_key, fingerprint, public_key_of
from accord.training.budget import fits_deadline, reserve
from runtime.entry import run_from_command_line
from runtime.local_workers import start_ahead
from runtime.runner import task_runner_for
from tasks.ensemble import (
    fit_ensemble,
    promote_version,
    publish_version,
    report_artifacts,
    run_summary,
    version_figures,
)
from tasks.importance import already_published, importance_to_publish
from tasks.members import fit_members, prune_cache
from tasks.training import prepare_data


@flow(name="train-ensemble", log_prints=True, validate_parameters=True)
def train_ensemble(config: TrainConfig) -> dict[str, Any]:
    """Train, weight, evaluate and publish an ensemble described by `config`.

    Returns:
        `tasks.ensemble.run_summary`: the version's reference, weights, held-out metrics,
        whether it was already published, and the promotion decision.
    """
    logger = get_run_logger()
    deadline = fits_deadline(config.time_limit)  # the clock starts with the run
    start_ahead(config.dask_address, config.cluster_class)  # workers' imports overlap the data's load
    keep = keep_seconds()  # a bad ACCORD_CACHE_DAYS fails here, before any training
    signer = checked_signing_key()  # and a bad ACCORD_SIGNING_KEY
    data = prepare_data(config)  # in this process: bad input fails here, before any cluster starts
    logger.info(
        "data %s: %d training rows, %d test rows, %d folds, task %s",
        *(data.source, len(data.y_train), len(data.y_test), len(data.folds), data.task),
    )
    cache = ResultCache(config.store)
    split = split_digest(data)  # hashed once; every cache key and the run key start from it
    with task_runner_for(config) as runner:
        fits = fit_members(runner, data, config, cache, split, logger, deadline)
        data = fits.finished(data)  # without members a time limit left out
        oof, seconds, refits = fits.out_of_fold(data), fits.fold_seconds(data), fits.used_refits()
        report = fit_ensemble(data, oof, refits, config.method, config.ensemble_size, seconds)
        key = run_key(split, data, config.method, config.ensemble_size, config.seed)
        if signer is not None:  # a signed rerun of an unsigned version is a new version, signed
            key = f"{key}-signed-{fingerprint(public_key_of(signer))[:16]}"
        settings, name = config.model_dump(mode="json"), config.model_name
        fresh = not already_published(config.store, name, key)  # a rerun publishes nothing new
        until = None if deadline is None else deadline + reserve(config.time_limit or 0) / 2
        busy = fits.cut_short  # fits cut at the limit still run on the workers
        importance = (
            importance_to_publish(runner, data, refits, report, config.seed, logger, until, busy)
            if fresh
            else None
        )
    figures = version_figures(data, oof, refits, report, importance) if fresh else None
    run_id = str(get_run_context().flow_run.id)  # type: ignore[union-attr]
    ref, new = publish_version(
        config.store, name, data, refits, report, settings, run_id, key, fits.left_out, importance, figures
    )
    report_artifacts(report, ref, name, importance, figures)
    failpoint("promote:before-alias")
    decision = promote_version(config.store, ref, data, report, config.alias, config.promote)
    prune_cache(cache, keep, config.store, logger)
    logger.info(
        "%s %s (ensemble %s %.4f)",
        "published" if new else "unchanged: an identical run already published",
        *(ref, report.primary, report.ensemble[report.primary]),
    )
    return run_summary(report, ref, new, decision, fits.left_out)


if __name__ == "__main__":
    run_from_command_line(train_ensemble, TrainConfig, sys.argv[1:])

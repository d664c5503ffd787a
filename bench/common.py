"""Helpers shared by the benchmarks: running accord's member x fold work on a Dask client."""

from __future__ import annotations

import time
from typing import Any

from distributed import Client, LocalCluster

from accord.config import TrainConfig
from accord.evaluation import Report, evaluate
from accord.training import Prepared, fit_fold, fit_full, out_of_fold, work_order
from flows.runtime import WorkerNanny, worker_env


def local_cluster(workers: int = 2) -> LocalCluster:
    """A LocalCluster configured as accord's flow configures it."""
    return LocalCluster(
        n_workers=workers,
        threads_per_worker=1,
        processes=True,
        worker_class=WorkerNanny,
        dashboard_address=":0",
        env=worker_env(),
        silence_logs=40,
    )


def run_on_client(client: Client, config: TrainConfig, data: Prepared) -> tuple[Report, float, float]:
    """accord's training graph (member x fold, refits, weights) via plain `client.submit`.

    Returns:
        The report, the wall time and the sum of the fits' own seconds on the workers.
    """
    start = time.perf_counter()
    oof, refit_results, fit_seconds = fit_members(client, config, data)
    report = evaluate(data, oof, refit_results, config.method, config.ensemble_size)
    return report, time.perf_counter() - start, fit_seconds


def fit_members(
    client: Client, config: TrainConfig, data: Prepared
) -> tuple[dict[str, Any], dict[str, Any], float]:
    """Out-of-fold predictions and refits of every member computed on the cluster, and the fits' seconds."""
    staged = client.scatter(data, broadcast=False)
    members = data.members or tuple(config.members)
    folds: dict[Any, Any] = {}
    refits: dict[Any, Any] = {}
    for s, k in work_order(members, len(data.folds)):  # the same order as the flow
        if k is None:
            refits[s.name] = client.submit(fit_full, s, staged, config.seed, pure=False)
        else:
            folds[(s.name, k)] = client.submit(fit_fold, s, staged, k, config.seed, pure=False)
    fold_results = {key: f.result() for key, f in folds.items()}
    refit_results = {name: f.result() for name, f in refits.items()}
    names = [s.name for s in members]
    oof = {n: out_of_fold(data, [fold_results[(n, k)] for k in range(len(data.folds))]) for n in names}
    seconds = sum(r.seconds for r in fold_results.values()) + sum(r.seconds for r in refit_results.values())
    return oof, refit_results, seconds


def run_sequential(config: TrainConfig, data: Prepared) -> tuple[Report, float, float]:
    """The same fits one after another in this process: report, wall time, the fits' own seconds."""
    start = time.perf_counter()
    oof: dict[str, Any] = {}
    refits: dict[str, Any] = {}
    seconds = 0.0
    for spec in data.members:
        name = spec.name or spec.kind
        folds = [fit_fold(spec, data, k, config.seed) for k in range(len(data.folds))]
        oof[name] = out_of_fold(data, folds)
        refits[name] = fit_full(spec, data, config.seed)
        seconds += sum(f.seconds for f in folds) + refits[name].seconds
    report = evaluate(data, oof, refits, config.method, config.ensemble_size)
    return report, time.perf_counter() - start, seconds

"""Helpers shared by the benchmarks: running accord's member x fold work on a Dask client."""

from __future__ import annotations

import time
from typing import Any

from distributed import Client, LocalCluster

from accord.config import TrainConfig
from accord.evaluation import Report, evaluate
from accord.training import Prepared, fit_all, fit_fold, fit_full, out_of_fold, work_order
from flows.runtime import worker_env


def local_cluster(workers: int = 2) -> LocalCluster:
    """A LocalCluster configured as accord's flow configures it."""
    return LocalCluster(
        n_workers=workers,
        threads_per_worker=1,
        processes=True,
        dashboard_address=":0",
        env=worker_env(),
        silence_logs=40,
    )


def run_on_client(client: Client, config: TrainConfig, data: Prepared) -> tuple[Report, float]:
    """accord's training graph (member x fold, refits, weights) via plain `client.submit`."""
    start = time.perf_counter()
    oof, refit_results = fit_members(client, config, data)
    report = evaluate(data, oof, refit_results, config.method, config.ensemble_size)
    return report, time.perf_counter() - start


def fit_members(client: Client, config: TrainConfig, data: Prepared) -> tuple[dict[str, Any], dict[str, Any]]:
    """Out-of-fold predictions and refits of every member, computed on the cluster."""
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
    return oof, refit_results


def run_sequential(config: TrainConfig, data: Prepared) -> tuple[Report, float]:
    """The same fits one after another in this process."""
    start = time.perf_counter()
    oof, refits = fit_all(data, config.seed)
    report = evaluate(data, oof, refits, config.method, config.ensemble_size)
    return report, time.perf_counter() - start

"""Parallel speed: the same member x fold fits sequentially, through accord on Dask, and as plain Dask.

Three runs of one workload in one session:

1. sequential: every fit one after another in this process;
2. plain Dask: `client.submit` of the same functions on a LocalCluster of 2 workers
   (cluster start-up included);
3. accord: the `train_ensemble` flow (Prefect tasks on a DaskTaskRunner with a
   LocalCluster of 2 workers, start-up, weights and publishing to memory:// included).

Prints the speedups and Prefect's overhead per task. Targets on 2 cores: >= 1.8x over
sequential on >= 60 CPU-seconds of work; accord within 1.10x of plain Dask.

It also prints where a speedup short of 2x goes: the fits' own seconds summed over the
workers against the same sum in one process (two fits at once on two cores each run
slower: shared caches, memory bandwidth, clocks), the cluster's start-up, and the
scheduling (wall time against the ideal split of the summed fit seconds).

    python -m bench.parallel [--rows 10000]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # the sequential baseline uses one core, as each worker does

from distributed import Client

from accord.config import make_config
from accord.training import prepare
from bench.common import local_cluster, run_on_client, run_sequential
from flows.server import prefect_api


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10000)
    parser.add_argument("--folds", type=int, default=5)
    args = parser.parse_args()
    config = make_config(
        {
            "data": f"synthetic:classification?n_rows={args.rows}&n_features=30&n_classes=3&seed=0",
            "folds": args.folds,
            "store": "memory://bench-parallel",
            "name": "parallel",
            "workers": 2,
            "members": [
                {"kind": "random_forest", "params": {"n_estimators": 300}},
                {"kind": "extra_trees", "params": {"n_estimators": 300}},
                {"kind": "hist_gb", "params": {"max_iter": 300}},
                {"kind": "xgboost", "params": {"n_estimators": 400}},
                {"kind": "logreg"},
                {"kind": "knn"},
            ],
        }
    )
    data = prepare(config)
    n_tasks = len(config.members) * (args.folds + 1)

    _, t_seq, fits_seq = run_sequential(config, data)
    print(f"sequential: {t_seq:7.1f}s for {n_tasks} fits (the workload: {t_seq:.0f} CPU-seconds)", flush=True)

    start = time.perf_counter()
    with local_cluster(2) as cluster, Client(cluster) as client:
        t_start = time.perf_counter() - start
        _, t_compute, fits_dask = run_on_client(client, config, data)
    t_dask = time.perf_counter() - start
    print(f"plain dask: {t_dask:7.1f}s (2 workers, start-up included)", flush=True)

    with prefect_api(log=False) as url:
        from prefect.settings import PREFECT_API_URL, temporary_settings

        with temporary_settings({PREFECT_API_URL: url}):
            from flows.train import train_ensemble

            start = time.perf_counter()
            train_ensemble(config)
            t_accord = time.perf_counter() - start
    print(f"accord:     {t_accord:7.1f}s (Prefect flow on a DaskTaskRunner, 2 workers)", flush=True)

    print()
    print(f"speedup plain dask / sequential: {t_seq / t_dask:.2f}x")
    print(f"speedup accord / sequential:     {t_seq / t_accord:.2f}x   (target >= 1.8x)")
    print(f"accord / plain dask:             {t_accord / t_dask:.3f}   (target <= 1.10)")
    print(
        f"Prefect overhead per task:       {1000 * (t_accord - t_dask) / n_tasks:.0f} ms over {n_tasks} tasks"
    )
    print()
    print("where plain Dask's speedup goes (2 workers on 2 cores):")
    print(f"  fits' own seconds, summed: {fits_seq:6.1f}s in one process, {fits_dask:6.1f}s on the workers "
          f"(each fit {fits_dask / fits_seq:.2f}x slower when two run at once)")  # fmt: skip
    print(f"  cluster start-up:          {t_start:6.1f}s")
    print(f"  scheduling: compute {t_compute:.1f}s vs ideal split {fits_dask / 2:.1f}s "
          f"({t_compute / (fits_dask / 2):.3f})")  # fmt: skip
    print(f"  ceiling from contention alone: {2 * fits_seq / fits_dask:.2f}x")


if __name__ == "__main__":
    main()

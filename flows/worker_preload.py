"""Dask worker preload: import what member tasks run before the first task arrives.

Each worker of accord's LocalCluster imports Prefect's task engine and accord's training
code while the cluster starts, all workers at once. Otherwise the first member task on
each worker pays for those imports (about 2 s here) and the worker that runs the staging
task first holds up the others. Passed as ``preload=["flows.worker_preload"]``; a
cluster a user brings can name it in its own worker options.
"""

from __future__ import annotations

import prefect.task_engine  # noqa: F401  (runs every Prefect task on a worker)

import accord.training  # noqa: F401  (the fits; imports scikit-learn, XGBoost, pandas)
import tasks.training  # noqa: F401  (the member tasks themselves)

"""Dask worker preload: import what member tasks run before the first task arrives.

Each worker of accord's LocalCluster imports Prefect's task engine and accord's training
code while the cluster starts, all workers at once. Otherwise the first member task on
each worker pays for those imports (about 2 s here) and the worker that runs the staging
task first holds up the others. Passed as ``preload=["runtime.preload"]``; a
cluster a user brings can name it in its own worker options.

Those imports leave about 240,000 objects that live as long as the worker, and Python's
cyclic garbage collector kept walking all of them: during the imports (2.3 s with it
paused, against 2.7 s), and as the worker's process exits, where the interpreter's last
collections took 0.7 s (0.07 s with the objects frozen). A LocalCluster's close waits
for every worker's process to end. So the collector is paused while these modules
import, and a worker whose process a nanny owns freezes its objects (`gc.freeze`) after
the imports and again as it closes; the collector skips them from then on. A LocalCluster
of two workers with this preload started in 3.50 s and closed in 0.09 s, against 4.12 s
and 0.90 s before (means of 6 each, alternating). The imports' cyclic garbage, about 4,700
objects, stays frozen with the rest (collecting it first cost 0.2 s per worker); a process
about to exit frees all its memory anyway.

accord's own LocalCluster forks its workers from a server process that imported this
module once (`runtime.local_workers.start_fork_server`): there the imports run, and in each
worker only ``dask_setup``, which also rereads Prefect's settings from the worker's own
environment.
"""

from __future__ import annotations

import gc
import os
from typing import Any

_collecting = gc.isenabled()
gc.disable()
try:
    import prefect.context
    import prefect.task_engine  # runs every Prefect task on a worker
    import skops.io  # noqa: F401  (every refit saves with it: 0.9 s at a worker's first save)
    import xgboost.dask  # noqa: F401  (xgboost_dask's fits run its functions: 0.4 s, and Dask DataFrame)

    import accord.training.fit  # noqa: F401  (the fits; imports scikit-learn, XGBoost, pandas)
    import tasks.training  # noqa: F401  (the member tasks themselves)
    from runtime.cores import PIN_ENV, claim_cores
    from runtime.local_workers import UNSET_ENV
finally:
    if _collecting:
        gc.enable()

_IMPORTED_IN = os.getpid()


def dask_setup(worker: Any) -> None:
    """Ready a worker that runs in a process of its own (a nanny's); leave a client's process alone.

    A worker forked from the fork server that imported this module (see
    `runtime.local_workers.start_fork_server`) first removes the variables its nanny names in
    ``UNSET_ENV`` (those the flow process has removed since the fork server started), then
    rereads Prefect's settings: Prefect read them on import, from that server's environment,
    and the worker's (the Prefect API among it) is the one its nanny handed it. A worker
    whose nanny set ``PIN_ENV`` claims cores of its own (`runtime.cores`). Then the imports'
    objects are frozen, so the collector no longer walks them during fits.
    """
    if getattr(worker, "nanny", None) is None:
        return
    for key in filter(None, os.environ.pop(UNSET_ENV, "").split(",")):
        os.environ.pop(key, None)  # the flow process no longer has it; the fork server still had
    if os.getpid() != _IMPORTED_IN:
        prefect.context.refresh_global_settings_context()
    if os.environ.get(PIN_ENV) == "1":
        claim_cores(worker.state.nthreads)
    gc.freeze()


def dask_teardown(worker: Any) -> None:
    """Freeze everything left, so the process, which exits right after, ends without walking it."""
    if getattr(worker, "nanny", None) is not None:
        gc.freeze()

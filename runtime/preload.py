"""Dask worker preload: import what member tasks run before the first task arrives.

Passed as ``preload=["runtime.preload"]`` (a cluster you run can name it in its own
worker options). Each worker imports the modules in `WARM` while the cluster starts,
all workers at once, so no member task pays for them and no worker holds up the
others. The cyclic garbage collector is paused while they import, and a worker whose
process a nanny owns freezes their objects (`gc.freeze`) after the imports and again
as it closes, so the collector skips them during fits and at exit.

accord's own LocalCluster forks its workers from a server process that imported this
module once (`runtime.local_workers.start_fork_server`); each worker then runs only
``dask_setup``. Measurements: docs/performance.md.
"""

from __future__ import annotations

import gc
import importlib
import os
from typing import Any

WARM = (
    "prefect.task_engine",  # runs every Prefect task on a worker
    "skops.io",  # every refit saves with it
    "xgboost.dask",  # xgboost_dask's fits run its functions, and Dask DataFrame
    "accord.training.fit",  # the fits: scikit-learn, XGBoost, pandas
    "tasks.training",  # the member tasks themselves
)
"""Modules every worker imports as it starts, with every member kind's (`accord.members.KIND_MODULES`)."""

_collecting = gc.isenabled()
gc.disable()
try:
    import prefect.context

    from accord.members import KIND_MODULES

    for _module in (*WARM, *KIND_MODULES):
        importlib.import_module(_module)
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

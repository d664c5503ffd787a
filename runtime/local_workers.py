"""How accord's local Dask workers start: their environment, preload and fork server.

Kept apart from `runtime.runner` so that the command line can start the fork server before
it imports Prefect (see `start_ahead`).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.forkserver
import os
import threading
from collections.abc import Callable, Iterator
from typing import Any

import dask
from distributed.utils import get_mp_context

from accord.settings import setting
from runtime.warm import warm_dask_address

# Each Dask worker thread runs one task; the libraries inside it get one core each.
WORKER_THREAD_ENV = {
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "TF_NUM_INTRAOP_THREADS": "1",
    "TF_NUM_INTEROP_THREADS": "1",
    "ACCORD_THREADS_PER_TASK": "1",
    "TF_CPP_MIN_LOG_LEVEL": "2",
}


# Imported by each local worker as it starts (see runtime/preload.py).
WORKER_PRELOAD = ["runtime.preload"]

# glibc's malloc thresholds for local workers (why: `runtime.runner.WorkerNanny`).
WORKER_MALLOC = {"MALLOC_MMAP_THRESHOLD_": 4 * 2**20, "MALLOC_TRIM_THRESHOLD_": 16 * 2**20}

# How accord's local workers start: forked from one server process that imported Dask and
# the preload once, instead of each spawning an interpreter that imports them all again, so
# workers start sooner and share the imports' memory with the server. `accord train` starts
# that server before its Prefect server and flow, so the imports overlap them. The server
# stays as long as the process that started it. Measurements: docs/performance.md.
FORK_METHOD = {"distributed.worker.multiprocessing-method": "forkserver"}


def _user_set(key: str) -> bool:
    """Whether the user chose `key`: a ``DASK_*`` variable names it, or it differs from Dask's default."""
    if f"DASK_{key.upper().replace('.', '__').replace('-', '_')}" in os.environ:
        return True
    default = dask.config.get(key, config=dask.config.merge(*dask.config.defaults), default=None)
    return bool(dask.config.get(key, default=None) != default)


def unless_user_set(settings: dict[str, Any]) -> dict[str, Any]:
    """`settings` less those the user chose."""
    return {k: v for k, v in settings.items() if not _user_set(k)}


def fork_method() -> dict[str, Any]:
    """`FORK_METHOD`, unless the user chose a method or this platform has no fork servers (Windows)."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return {}
    return unless_user_set(FORK_METHOD)


class SharedSettings:
    """Dask settings held while any of overlapping blocks runs: set by the first in, undone by the last out.

    Dask's config is one per process, and a cluster starts (or scales) across awaits, so
    two such blocks may overlap and end in any order (a scale while the cluster still
    starts, two clusters in one process). Nested ``dask.config.set`` blocks that end out of
    order leave the inner one's values behind for good.
    """

    def __init__(self, settings: Callable[[], dict[str, Any]]) -> None:
        """`settings` computes the values as the first block enters."""
        self._settings = settings
        self._lock = threading.Lock()
        self._users = 0
        self._set: Any = None

    @contextlib.contextmanager
    def __call__(self) -> Iterator[None]:
        """Hold the settings for the block."""
        with self._lock:
            if self._users == 0:
                self._set = dask.config.set(self._settings())  # applies now; undone below
            self._users += 1
        try:
            yield
        finally:
            with self._lock:
                self._users -= 1
                if self._users == 0:
                    self._set.__exit__(None, None, None)
                    self._set = None


# Worker processes started within fork from the fork server (`fork_method`).
fork_server_method = SharedSettings(fork_method)


def malloc_settings() -> dict[str, Any]:
    """Dask config that gives worker processes `WORKER_MALLOC` (a variable the user set wins)."""
    key = "distributed.nanny.pre-spawn-environ"
    return {f"{key}.{k}": v for k, v in WORKER_MALLOC.items()}


def forking() -> bool:
    """Whether worker processes started now fork from a server process rather than spawn."""
    return dask.config.get("distributed.worker.multiprocessing-method") != "spawn"


@contextlib.contextmanager
def _environ(values: dict[str, str]) -> Iterator[None]:
    """This process's environment with `values` set, restored on exit."""
    before = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# Names of the variables this process had whenever it (re)started the fork server. A union:
# a name it never had only makes `removed_since_fork_server` name a variable that is not there.
_SERVER_ENV_KEYS: set[str] = set()

# The variable in which a forked worker's nanny names the variables to remove (see
# `runtime.preload.dask_setup`), comma-separated.
UNSET_ENV = "ACCORD_WORKER_UNSET_ENV"


def removed_since_fork_server(env: dict[str, str]) -> list[str]:
    """Variables the fork server started with that this process has since removed, less those in `env`.

    A forked worker inherits the fork server's environment; its nanny then adds and
    overwrites variables (`env`), but cannot remove any.
    """
    return sorted(_SERVER_ENV_KEYS - set(os.environ) - set(env))


def start_fork_server() -> None:
    """Start the process local workers fork from, having imported Dask and `WORKER_PRELOAD`.

    A no-op if it already runs (then its modules are what it imported then; a worker imports
    the rest as its preload). Its environment is fixed at start, and some of it is read only
    as a process or a library starts: so it starts with the workers' thread limits (read
    as OpenBLAS and OpenMP load), malloc settings (read as the process starts) and Python's
    hash seed, the one Dask's nanny gives every spawned worker so that all hash alike.
    A no-op too where worker processes do not start by fork server (`fork_method`).
    """
    with dask.config.set(fork_method()):
        if dask.config.get("distributed.worker.multiprocessing-method") != "forkserver":
            return
        context = get_mp_context()  # Dask's; its first call sets its own preload list
    with dask.config.set(malloc_settings()):
        pre_spawn = dict(dask.config.get("distributed.nanny.pre-spawn-environ"))
    env = {k: os.environ.get(k, str(v)) for k, v in pre_spawn.items() if v is not None}
    if env.get("PYTHONHASHSEED") in (None, "0"):
        env["PYTHONHASHSEED"] = "6640"  # distributed.nanny's choice (dask/distributed#8400)
    context.set_forkserver_preload(["distributed", *WORKER_PRELOAD])
    _SERVER_ENV_KEYS.update(os.environ)  # not what it adds below: every worker gets those anyway
    with _environ({**env, **WORKER_THREAD_ENV}):
        multiprocessing.forkserver.ensure_running()


def start_ahead(dask_address: str | None, cluster_class: str | None = None) -> None:
    """Start the fork server now if the run starts a LocalCluster (no address, cluster class, warm stack).

    Its imports then run on a core of their own while the command line starts a Prefect
    server and the flow, not after, when the flow starts its cluster. Measurements:
    docs/performance.md.

    Args:
        dask_address: The scheduler address the run was given, if any.
        cluster_class: The cluster class the run was given, if any.
    """
    if not (dask_address or setting("dask_address") or cluster_class or warm_dask_address()):
        start_fork_server()

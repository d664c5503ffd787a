"""The Dask task runner a run asks for: a LocalCluster of worker processes, or a scheduler address."""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import logging
import os
import sys
from typing import Any, Protocol

import dask
from distributed import LocalCluster, Nanny
from prefect.context import SettingsContext
from prefect_dask import DaskTaskRunner
from prefect_dask.task_runners import PrefectDaskFuture
from pydantic import PrivateAttr

from accord.config import AdaptOptions
from accord.errors import ConfigError
from accord.settings import setting
from runtime.cores import pin_env
from runtime.local_workers import (
    UNSET_ENV,
    WORKER_PRELOAD,
    WORKER_THREAD_ENV,
    SharedSettings,
    fork_server_method,
    forking,
    malloc_settings,
    removed_since_fork_server,
    start_fork_server,
    unless_user_set,
)
from runtime.warm import warm_dask_address

# Dask housekeeping of accord's local cluster that costs fits' time when every core runs a fit.
QUIET_CONFIG: dict[str, Any] = {
    "distributed.worker.profile.enabled": False,
    "distributed.admin.tick.interval": "1s",
    "distributed.admin.system-monitor.interval": "2s",
}


# How accord's local scheduler hands out member tasks. Under Dask's default worker saturation
# a task group is queued on the scheduler once it outgrows the cluster, but its first tasks go
# straight to a worker and run before queued tasks of higher priority: the runs' longest-first
# order (`accord.training.work_order`) would not hold. Without queuing every worker runs what it
# holds by priority and idle workers steal the rest. Member tasks last seconds to minutes and
# return small results, which is not what queuing guards against. Stealing runs more often
# than Dask's default, so an idle worker waits less for a task. Measurements: docs/performance.md.
SCHEDULER_CONFIG: dict[str, Any] = {
    "distributed.scheduler.worker-saturation": float("inf"),
    "distributed.scheduler.work-stealing-interval": "100ms",
}


class WorkerNanny(Nanny):
    """The nanny of accord's local workers: malloc settings and quiet housekeeping for busy cores.

    Dask's nanny sets a low ``MALLOC_TRIM_THRESHOLD_`` in every worker so freed memory goes
    back to the OS sooner. That also pins glibc's mmap threshold low, so every larger array
    is a fresh mmap whose pages fault in again and the fits run slower than in one process;
    glibc's adaptive thresholds instead raise ``xgboost_dask``'s peak per worker. This nanny
    gives its workers `runtime.local_workers.WORKER_MALLOC`: arrays under its mmap threshold
    come from the heap, which keeps up to its trim threshold free at its top; larger ones are
    mmapped and returned when freed.

    Each worker also samples its running task's stack for the dashboard's profile, checks
    its event loop and reads system metrics, each several times a second. With a fit on every core
    those wake-ups take their CPU from the fits. `QUIET_CONFIG` turns the profiler off and
    slows the other two (`AccordLocalCluster` quiets the scheduler too); the dashboard loses
    its profile page. A setting the user chose (a ``DASK_*`` variable, or a config file's
    value other than Dask's default) is kept, and a cluster a user brings (an address,
    ``cluster_class``) keeps its own config. Measurements: docs/performance.md.

    A worker forked from the fork server (`AccordLocalCluster`) gets this process's
    environment as it is when the nanny starts, as a spawned one would: the fork server's
    own dates from its start. A variable since removed from this process is named in
    ``UNSET_ENV`` and removed by the worker's preload before it rereads Prefect's settings
    (too late for Dask's own config, which the worker reads as it starts: a ``DASK_*``
    variable removed since keeps its effect there).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if forking():
            # The fork server took this process's environment when it started, perhaps
            # runs ago: hand the worker the environment as it is now, as a spawn would.
            env = {**os.environ, **(kwargs.get("env") or {})}
            removed = removed_since_fork_server(env)
            if removed:
                env[UNSET_ENV] = ",".join(removed)
            kwargs["env"] = env
        settings: dict[str, Any] = malloc_settings()
        settings.update(unless_user_set(QUIET_CONFIG))
        with dask.config.set(settings):
            super().__init__(*args, **kwargs)
            # The nanny hands its worker a shallow copy of the config, whose nested dicts
            # `dask.config.set` restores in place on exit: keep a deep one of these settings.
            self.config = copy.deepcopy(self.config)


# What `AccordLocalCluster` sets while its scheduler starts.
_cluster_settings = SharedSettings(lambda: unless_user_set({**QUIET_CONFIG, **SCHEDULER_CONFIG}))


class AccordLocalCluster(LocalCluster):
    """accord's LocalCluster: a scheduler with its workers' quiet housekeeping and `SCHEDULER_CONFIG`.

    The scheduler (and the client beside it) runs in the flow's process, on the cores
    the workers' fits use, so its housekeeping is quieted as the workers' is (`QUIET_CONFIG`).
    Settings the user chose are kept (see `WorkerNanny`). Measurements: docs/performance.md.

    Workers fork from a server process that has imported what they run
    (`runtime.local_workers.start_fork_server`), unless the user chose how Dask starts worker
    processes (``distributed.worker.multiprocessing-method``) or the platform has no fork
    servers (Windows). A worker a nanny restarts after a crash spawns, as Dask's own do.
    """

    async def _start(self) -> None:
        # SpecCluster._start builds the scheduler (distributed 2026.8); the test in
        # tests/test_runtime.py reads the scheduler's intervals, so a change there shows.
        with _cluster_settings():  # read as it starts
            await super()._start()

    async def _correct_state_internal(self) -> None:
        # Where SpecCluster starts and stops workers, at start and as it scales.
        with fork_server_method():
            start_fork_server()
            await super()._correct_state_internal()


# The `Settings` this process built from settings a flow shipped with its tasks, by digest.
_SHIPPED_SETTINGS: dict[str, Any] = {}


def settings_from(digest: str, data: dict[str, Any]) -> Any:
    """The `prefect.settings.Settings` of serialised settings `data`, built once per process.

    Where a task's pickled settings context turns back into settings, in the process that
    unpickles it: Dask's scheduler, or a worker (`ShippedSettings`). `digest` names `data`:
    equal settings share one object, which Prefect never changes (settings changed in the
    flow are a new context, shipped under a new digest).
    """
    settings = _SHIPPED_SETTINGS.get(digest)
    if settings is None:
        from prefect.settings import Settings

        if len(_SHIPPED_SETTINGS) >= 16:  # a long-lived scheduler serving many flows' settings
            _SHIPPED_SETTINGS.clear()
        settings = _SHIPPED_SETTINGS[digest] = Settings(**data)
    return settings


class ShippedSettings(dict[str, Any]):
    """Serialised settings, as Prefect ships them with a task, that are built once per process.

    Prefect turns the settings it ships with every task (`prefect.context.hydrated_context`)
    back into a `Settings` object through pydantic-settings, which reads the environment,
    ``.env`` files and TOML files again for each of its sections: most of a worker's time
    for a task that does nothing. Unpickled, this mapping becomes
    that object, built once per process and digest (`settings_from`), and Prefect takes a
    built object as it is. Dask's scheduler unpickles each task and pickles it again for
    its worker, so the object is built there and reaches the worker built (unpickling it
    skips pydantic-settings); where the worker unpickles it first, it is built there.
    Strings, not paths, cross from the flow's machine, as in Prefect's own form. Where
    nothing is pickled (a worker thread in the flow's process) it is Prefect's mapping.
    Measurements: docs/performance.md.

    Args:
        data: The serialised settings, as Prefect ships them.
    """

    def __init__(self, data: dict[str, Any]) -> None:
        super().__init__(data)
        self.digest = hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()

    def __reduce_ex__(self, protocol: Any) -> tuple[Any, ...]:
        return settings_from, (self.digest, dict(self))


class _SettingsSerializedOnce(SettingsContext):
    """A copy of a settings context that Prefect serialises once, not for every task.

    prefect-dask serialises the current settings to ship them with each task
    (`prefect.context.serialize_context`), most of the flow process's CPU per submit, taken
    from the cores the workers' fits run on. Its settings reach each worker as one object
    per process (`ShippedSettings`). Measurements: docs/performance.md.
    """

    _source: SettingsContext | None = PrivateAttr(None)
    _serialized: dict[str, Any] = PrivateAttr(default_factory=dict)

    @classmethod
    def of(cls, source: SettingsContext) -> _SettingsSerializedOnce:
        """The settings of `source`, serialised now, in a context that hands that out."""
        made = cls(profile=source.profile, settings=source.settings)
        made._source = source
        serialized = SettingsContext.serialize(made, include_secrets=True)
        made._serialized = {**serialized, "settings": ShippedSettings(serialized["settings"])}
        return made

    def copies(self, source: SettingsContext) -> bool:
        """Whether this context was made from `source`."""
        return self._source is source

    def serialize(self, include_secrets: bool = True) -> dict[str, Any]:
        """`SettingsContext.serialize`, from the form computed once (the dict is only pickled)."""
        if not include_secrets:
            return super().serialize(include_secrets=False)
        return dict(self._serialized)


class AccordDaskTaskRunner(DaskTaskRunner):
    """prefect-dask's `DaskTaskRunner`, submitting each task to Dask with ``pure=False``.

    prefect-dask submits with Dask's default ``pure=True``: Dask then tokenizes the task,
    its parameters and Prefect's serialized context to name the key, although every
    submission carries a new task run id and so a new key anyway (PrefectHQ/prefect#18191),
    and that CPU is taken from the cores the workers' fits run on. The flow's settings are
    serialised once per settings context (`_SettingsSerializedOnce`), not once per task.
    Everything else is prefect-dask's own `submit`. Measurements: docs/performance.md.
    """

    _settings_once: _SettingsSerializedOnce | None = None

    def submit(  # type: ignore[override]
        self,
        task: Any,
        parameters: dict[str, Any],
        wait_for: Any = None,
        dependencies: Any = None,
        key: str | None = None,
    ) -> PrefectDaskFuture[Any]:
        """Submit `task` with `parameters` as prefect-dask does, without tokenizing them.

        `key` names the Dask task (`accord.training.task_key`); by default Dask names it
        after the task's function.
        """
        if not self._started:
            raise RuntimeError("The task runner must be started before submitting work.")
        with self._settings_serialized_once():
            future = self.client.submit(
                task,
                parameters=self._optimize_futures(parameters),
                wait_for=self._optimize_futures(wait_for) if wait_for else None,
                dependencies=dependencies,
                return_type="state",
                pure=False,
                key=key,
            )
        return PrefectDaskFuture[Any](wrapped_future=future, task_run_id=future.task_run_id)

    def _settings_serialized_once(self) -> contextlib.AbstractContextManager[Any]:
        """The current settings, to enter for one submit, in a form serialised once per settings context."""
        current = SettingsContext.get()
        if current is None:
            return contextlib.nullcontext()
        if self._settings_once is None or not self._settings_once.copies(current):
            self._settings_once = _SettingsSerializedOnce.of(current)  # new settings: serialise anew
        return self._settings_once.model_copy()  # a copy: a context is entered by one thread at a time


def worker_env() -> dict[str, str]:
    """Environment for local worker processes: thread limits plus the Prefect API they must share."""
    env = dict(WORKER_THREAD_ENV)
    for key in ("PREFECT_API_URL", "PREFECT_API_KEY", "PREFECT_HOME", "PREFECT_API_SSL_CERT_FILE"):
        if os.environ.get(key):
            env[key] = os.environ[key]
    return env


class ClusterOptions(Protocol):
    """What a run says about its cluster (`TrainConfig`, `PretrainConfig`, `PredictConfig`)."""

    @property
    def workers(self) -> int:
        """Worker processes of a LocalCluster."""

    @property
    def dask_address(self) -> str | None:
        """Address of an existing scheduler, or None."""


def task_runner_for(config: ClusterOptions) -> AccordDaskTaskRunner:
    """A `DaskTaskRunner` (`AccordDaskTaskRunner`) for the run.

    In order: the scheduler at ``config.dask_address`` (or ``$ACCORD_DASK_ADDRESS``); a
    cluster of ``config.cluster_class`` (Dask Kubernetes, dask-jobqueue) built with
    ``config.cluster_kwargs``; the warm stack's cluster (`runtime.warm`), whose workers
    ``config.workers`` does not change, unless the run scales with ``config.adapt``; else a
    LocalCluster of ``config.workers`` processes. With
    ``config.adapt`` the started cluster scales between its minimum and maximum. The
    cluster starts lazily, on the first submitted task, so a run whose input is refused
    never starts one.
    """
    address = config.dask_address or setting("dask_address")
    if address:
        return AccordDaskTaskRunner(address=address)
    adapt = getattr(config, "adapt", None)
    adapt_kwargs = {"minimum": adapt.minimum, "maximum": adapt.maximum} if adapt else None
    cluster_class = getattr(config, "cluster_class", None)
    warm = None if adapt or cluster_class else warm_dask_address()
    if warm:
        print(f"accord: running on the warm stack's Dask cluster at {warm}", file=sys.stderr)
        return AccordDaskTaskRunner(address=warm)
    if cluster_class:
        kwargs = dict(getattr(config, "cluster_kwargs", None) or {})
        try:
            return AccordDaskTaskRunner(
                cluster_class=cluster_class, cluster_kwargs=kwargs, adapt_kwargs=adapt_kwargs
            )
        except (ImportError, AttributeError, ValueError) as e:
            package = cluster_class.split(".")[0].replace("_", "-")
            raise ConfigError(
                f"cluster_class {cluster_class!r} cannot be imported ({type(e).__name__}: {e}); "
                f"install its package (e.g. pip install {package}) or leave cluster_class empty."
            ) from e
    logging.getLogger("distributed").setLevel(logging.WARNING)  # keep progress readable
    return AccordDaskTaskRunner(
        cluster_class=AccordLocalCluster,
        cluster_kwargs=local_cluster_kwargs(config.workers, adapt),
        adapt_kwargs=adapt_kwargs,
    )


def local_cluster_kwargs(workers: int, adapt: AdaptOptions | None = None) -> dict[str, Any]:
    """`AccordLocalCluster`'s arguments: `workers` processes, or `adapt`'s minimum to start with.

    One thread and one core's libraries per worker, accord's nanny, preload and environment
    (the shared Prefect API; a core each where the workers, or `adapt`'s maximum, fit:
    `runtime.cores`).
    """
    return {
        "n_workers": adapt.minimum if adapt else workers,
        "threads_per_worker": 1,
        "processes": True,
        "worker_class": WorkerNanny,
        "dashboard_address": ":0",
        "silence_logs": logging.WARNING,
        "env": {**worker_env(), **pin_env(adapt.maximum if adapt else workers)},
        "preload": WORKER_PRELOAD,
    }

"""The task runner and accord's LocalCluster: worker settings, preload, task keys, shipped settings, adapt."""

from __future__ import annotations

import os
import re
import sys
from typing import Any

import dask
import pytest
from distributed import Client, LocalCluster

from accord.config import make_config
from runtime.local_workers import (
    WORKER_MALLOC,
)
from runtime.runner import QUIET_CONFIG, SCHEDULER_CONFIG, AccordLocalCluster, task_runner_for, worker_env
from tests.support.workers import collector_state


def _malloc() -> dict[str, str | None]:
    return {k: os.environ.get(k) for k in WORKER_MALLOC}


def _clear_malloc() -> None:
    # Dask's nanny also writes these into the process that starts it, and what is set
    # there wins over any config.
    for key in WORKER_MALLOC:
        os.environ.pop(key, None)


def _housekeeping(keys: tuple[str, ...] = tuple(QUIET_CONFIG)) -> dict[str, object]:
    import dask

    return {k: dask.config.get(k) for k in keys}


def _collector_after_teardown(dask_worker: Any) -> dict[str, object]:
    import gc

    import runtime.preload

    gc.unfreeze()
    runtime.preload.dask_teardown(dask_worker)  # what the worker runs as it closes
    return collector_state()


def _scheduler_intervals(dask_scheduler: Any) -> dict[str, float]:
    found = {k: dask_scheduler.periodic_callbacks[k].callback_time for k in ("tick", "monitor", "stealing")}
    return {**found, "saturation": dask_scheduler.WORKER_SATURATION}


@pytest.mark.slow
def test_local_workers_get_accords_malloc_housekeeping_and_preload(monkeypatch):
    for key in WORKER_MALLOC:  # restored afterwards
        monkeypatch.delenv(key, raising=False)

    def _preloaded() -> list[str]:
        # A local function travels by value: running it imports nothing (a module-level one
        # would make the worker import this test module, and accord and Prefect with it).

        wanted = ("accord.training", "prefect.task_engine", "skops.io", "tasks.training", "xgboost.dask")
        return sorted(m for m in wanted if m in sys.modules)

    runner = task_runner_for(make_config({"workers": 1}))
    cluster_class, kwargs = runner.cluster_class, {**runner.cluster_kwargs, "n_workers": 1}
    assert cluster_class is AccordLocalCluster
    # A setting the user chose is kept; the others are accord's, on workers and scheduler.
    chosen = dask.config.set(
        {
            "distributed.admin.tick.interval": "50ms",
            "distributed.scheduler.worker-saturation": 1.5,
            "distributed.scheduler.work-stealing-interval": "250ms",
        }
    )
    with chosen, cluster_class(**kwargs) as cluster, Client(cluster) as client:
        assert client.submit(_housekeeping, pure=False).result() == {
            **QUIET_CONFIG,
            "distributed.admin.tick.interval": "50ms",
        }
        assert client.run_on_scheduler(_scheduler_intervals) == {
            "tick": 50,
            "monitor": 2000,
            "stealing": 250,
            "saturation": 1.5,
        }
    with cluster_class(**kwargs) as cluster, Client(cluster) as client:
        assert client.submit(_housekeeping, pure=False).result() == QUIET_CONFIG
        assert client.run_on_scheduler(_scheduler_intervals) == {
            "tick": 1000,
            "monitor": 2000,
            "stealing": 100,
            "saturation": SCHEDULER_CONFIG["distributed.scheduler.worker-saturation"],
        }
        assert client.submit(_preloaded, pure=False).result() == [
            "accord.training",
            "prefect.task_engine",
            "skops.io",
            "tasks.training",
            "xgboost.dask",
        ]
        assert client.submit(_malloc, pure=False).result() == {k: str(v) for k, v in WORKER_MALLOC.items()}
        # The collector runs again after the imports, which it no longer walks (frozen),
        # nor, once the worker closes, what the fits left (see runtime/preload.py).
        (collector,) = client.run(collector_state).values()
        assert collector["enabled"] is True and collector["frozen"] > 100_000, collector
        (collector,) = client.run(_collector_after_teardown).values()
        assert collector["enabled"] is True and collector["frozen"] > 100_000, collector
    _clear_malloc()
    try:  # what Dask's own nanny does, so the check above can fail
        with (
            LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=":0") as cluster,
            Client(cluster) as client,
        ):
            assert client.submit(_preloaded, pure=False).result() == []  # before _malloc imports this module
            assert (
                client.submit(_housekeeping, pure=False).result()["distributed.worker.profile.enabled"]
                is True
            )
            assert client.run_on_scheduler(_scheduler_intervals) == {
                "tick": 20,
                "monitor": 500,
                "stealing": 1000,
                "saturation": 1.1,
            }
            assert client.submit(_malloc, pure=False).result()["MALLOC_TRIM_THRESHOLD_"] == "65536"
            assert list(client.run(collector_state).values()) == [{"enabled": True, "frozen": 0}]
    finally:
        _clear_malloc()


@pytest.mark.slow
def test_tasks_reach_dask_without_tokenizing_their_arguments():
    from prefect import flow

    from tasks.training import stage_data

    @flow
    def submit_one() -> str:
        with task_runner_for(make_config({"workers": 1})) as runner:
            future = runner.submit(stage_data, {"data": list(range(1000))})
            assert future.result() == list(range(1000))
            return str(future.wrapped_future.key)

    # pure=False names the key with a fresh UUID; Dask's tokenize would give 32 hex digits
    key = submit_one()
    assert re.fullmatch(r"stage_data-[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}", key), key


@pytest.mark.slow
def test_dask_learns_each_members_durations_from_the_flows_task_keys(tmp_path):
    from flows.train import train_ensemble

    members = [{"kind": "random_forest", "params": {"n_estimators": 200}}, {"kind": "logreg"}]
    config = {
        "data": "synthetic:classification?n_rows=1500&n_features=12&seed=4",
        "members": members,
        "folds": 2,
        "store": (tmp_path / "registry").as_uri(),
    }
    cluster = LocalCluster(n_workers=1, threads_per_worker=1, env=worker_env(), dashboard_address=":0")
    with cluster, Client(cluster) as client:
        train_ensemble(make_config({**config, "dask_address": cluster.scheduler_address}))

        def durations(dask_scheduler: Any) -> dict[str, float]:
            return {name: p.duration_average for name, p in dask_scheduler.task_prefixes.items()}

        seen = client.run_on_scheduler(durations)
    wanted = {"fold_random_forest", "refit_random_forest", "fold_logreg", "refit_logreg"}
    assert wanted <= set(seen), seen
    # one prefix per member: Dask's estimate of a forest fold is not a logistic regression's
    assert seen["fold_random_forest"] > 3 * seen["fold_logreg"] > 0, seen


@pytest.mark.slow
def test_tasks_get_the_flows_settings_serialised_once_per_settings_context():
    from prefect import flow, task
    from prefect.context import SettingsContext
    from prefect.settings import PREFECT_TASK_DEFAULT_RETRIES, temporary_settings

    @task
    def default_retries() -> int:  # local: travels by value, as the flow's settings do
        from prefect.settings import get_current_settings

        return int(get_current_settings().tasks.default_retries)

    @flow
    def submit_some() -> dict[str, Any]:
        with task_runner_for(make_config({"workers": 1})) as runner:
            first = runner.submit(default_retries, {})
            once = runner._settings_once
            second = runner.submit(default_retries, {})
            reused = runner._settings_once is once
            current = SettingsContext.get()
            assert once is not None and current is not None
            same_form = once.serialize() == current.serialize()
            with temporary_settings(updates={PREFECT_TASK_DEFAULT_RETRIES: 7}):
                during = runner.submit(default_retries, {})
            after = runner.submit(default_retries, {})
            values = [f.result() for f in (first, second, during, after)]
            return {"values": values, "reused": reused, "same_form": same_form}

    seen = submit_some()
    # serialised once for both submits, as Prefect would serialise it; new settings are seen
    assert seen == {"values": [0, 0, 7, 0], "reused": True, "same_form": True}


def _count_settings_built(dask_worker: Any) -> None:
    """In a worker: count each `Settings` that pydantic-settings builds (a spy; it still builds)."""
    from prefect.settings import Settings

    worker, build = dask_worker, Settings.__init__

    def counted(self: Any, *args: Any, **kwargs: Any) -> None:
        worker.accord_settings_built = getattr(worker, "accord_settings_built", 0) + 1
        build(self, *args, **kwargs)

    Settings.__init__ = counted  # type: ignore[method-assign]


def _settings_built(dask_worker: Any) -> int:
    return int(getattr(dask_worker, "accord_settings_built", 0))


@pytest.mark.slow
def test_workers_do_not_rebuild_the_settings_shipped_with_every_task():
    from prefect import flow, task
    from prefect.settings import PREFECT_TASK_DEFAULT_RETRIES, temporary_settings

    @task
    def retries_seen() -> int:  # local: travels by value
        from prefect.settings import get_current_settings

        return int(get_current_settings().tasks.default_retries)

    @flow
    def submit_some() -> tuple[list[int], int]:
        with task_runner_for(make_config({"workers": 1})) as runner:
            runner.client.run(_count_settings_built)
            futures = [runner.submit(retries_seen, {}) for _ in range(3)]
            with temporary_settings(updates={PREFECT_TASK_DEFAULT_RETRIES: 7}):
                futures += [runner.submit(retries_seen, {}) for _ in range(2)]
            futures.append(runner.submit(retries_seen, {}))
            values = [f.result() for f in futures]
            return values, sum(runner.client.run(_settings_built).values())

    values, built = submit_some()
    assert values == [0, 0, 0, 7, 7, 0]  # each task ran under the flow's settings of its time
    # Prefect's own hydration built one per task (6); shipped built, at most one per settings
    assert built <= 2, built


def test_shipped_settings_unpickle_to_prefects_own_settings_built_once():
    import pickle

    from prefect.context import SettingsContext
    from prefect.settings import Settings

    from runtime.runner import ShippedSettings

    current = SettingsContext.get()
    assert current is not None
    serialized = current.serialize(include_secrets=True)
    shipped = ShippedSettings(serialized["settings"])
    assert shipped == serialized["settings"]  # Prefect's mapping where nothing is pickled
    first, second = (pickle.loads(pickle.dumps(shipped)) for _ in range(2))
    assert isinstance(first, Settings) and first is second  # built once in this process
    assert first == SettingsContext(**serialized).settings  # as Prefect itself would build it
    assert ShippedSettings({**serialized["settings"], "debug_mode": True}).digest != shipped.digest


def test_dask_address_selects_an_existing_scheduler():
    runner = task_runner_for(make_config({"dask_address": "tcp://10.0.0.5:8786"}))
    assert runner.address == "tcp://10.0.0.5:8786"
    assert not runner.cluster_kwargs


def test_adapt_options_reach_the_runner_and_are_checked():

    from accord.errors import ConfigError

    runner = task_runner_for(make_config({"adapt": {"minimum": 1, "maximum": 3}}))
    assert runner.adapt_kwargs == {"minimum": 1, "maximum": 3} and runner.cluster_kwargs["n_workers"] == 1
    local = task_runner_for(
        make_config({"cluster_class": "distributed.LocalCluster", "cluster_kwargs": {"n_workers": 3}})
    )
    assert local.cluster_kwargs == {"n_workers": 3} and not local.adapt_kwargs
    assert local.cluster_class == "distributed.LocalCluster"
    kube = make_config({"cluster_class": "dask_kubernetes.operator.KubeCluster"})  # not installed here
    with pytest.raises(
        ConfigError, match=r"cluster_class 'dask_kubernetes.operator.KubeCluster' cannot be imported"
    ):
        task_runner_for(kube)
    with pytest.raises(ConfigError, match=r"adapt.minimum \(3\) must not exceed adapt.maximum \(2\)"):
        make_config({"adapt": {"minimum": 3, "maximum": 2}})


@pytest.mark.slow
def test_an_adaptive_cluster_grows_with_the_work(tmp_path):
    import re

    from prefect import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    from accord.registry.refs import parse_ref
    from accord.registry.store import Registry
    from flows.train import train_ensemble

    # A new worker takes ~3.5 s here to start (spawn, imports, Prefect preload): with 150
    # trees the work was done in ~5 s on one worker and a loaded CI machine finished it
    # before the second joined. 400 trees make ~20 s of work on one worker.
    members = [
        {"kind": "random_forest", "params": {"n_estimators": 400}},
        {"kind": "extra_trees", "params": {"n_estimators": 400}},
        {"kind": "logreg"},
    ]
    config = make_config(
        {
            "data": "synthetic:classification?n_rows=1500&n_features=12&seed=2",
            "members": members,
            "folds": 5,
            "adapt": {"minimum": 1, "maximum": 2},
            "store": (tmp_path / "registry").as_uri(),
            "name": "adaptive",
        }
    )
    result = train_ensemble(config)
    ref = parse_ref(result["ref"])
    run_id = Registry(ref.store).read_manifest(ref.name, ref.version)["lineage"]["flow_run_id"]
    with get_client(sync_client=True) as client:
        logs = client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])), limit=200)
    workers = {m.group(1) for log in logs if (m := re.search(r"on worker (tcp://\S+)", log.message))}
    # started with one worker; the queue of 18 member tasks made Dask start the second
    assert len(workers) == 2, workers

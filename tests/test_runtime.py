"""Worker processes get the shared Prefect API and one thread per library."""

from __future__ import annotations

import json
import math
import os
import re
import ssl
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import dask
import pytest
from distributed import Client, LocalCluster

from accord.config import make_config
from accord.members import KINDS
from accord.members.base import FitShape
from accord.training.prepare import prepare
from accord.training.schedule import estimated_seconds, task_key, work_order, work_phases
from runtime.cores import PIN_ENV, _try_lock, lock_dir
from runtime.local_workers import (
    FORK_METHOD,
    WORKER_MALLOC,
    WORKER_PRELOAD,
    _user_set,
    fork_method,
    fork_server_method,
)
from runtime.runner import QUIET_CONFIG, SCHEDULER_CONFIG, AccordLocalCluster, task_runner_for, worker_env
from runtime.server import local_api_environment


def _thread_report() -> dict[str, object]:
    from threadpoolctl import threadpool_info

    from accord.members.keras_kind import import_keras
    from accord.training.fit import threads_per_task

    import_keras(threads_per_task())
    import tensorflow as tf

    return {
        "blas_openmp": sorted({i["num_threads"] for i in threadpool_info()}),
        "tf_intra": tf.config.threading.get_intra_op_parallelism_threads(),
        "accord": threads_per_task(),
        "api": os.environ.get("PREFECT_API_URL"),
        "ca": os.environ.get("PREFECT_API_SSL_CERT_FILE"),
    }


def test_local_workers_use_one_thread_per_library_and_the_shared_api():
    runner = task_runner_for(make_config({"workers": 2}))
    kwargs = runner.cluster_kwargs
    assert kwargs["n_workers"] == 2 and kwargs["threads_per_worker"] == 1 and kwargs["processes"] is True
    assert kwargs["env"]["PREFECT_API_URL"] == os.environ["PREFECT_API_URL"]
    cluster = LocalCluster(n_workers=1, threads_per_worker=1, env=worker_env(), dashboard_address=":0")
    with cluster, Client(cluster) as client:
        report = client.submit(_thread_report, pure=False).result()
    api, ca = os.environ["PREFECT_API_URL"], os.environ["PREFECT_API_SSL_CERT_FILE"]
    assert report == {"blas_openmp": [1], "tf_intra": 1, "accord": 1, "api": api, "ca": ca}


def test_clients_of_a_local_http_server_load_one_certificate(tmp_path, monkeypatch):
    monkeypatch.delenv("PREFECT_API_SSL_CERT_FILE", raising=False)
    env = local_api_environment("http://127.0.0.1:4200/api", tmp_path)
    pem = Path(env["PREFECT_API_SSL_CERT_FILE"]).read_text()
    assert pem.count("BEGIN CERTIFICATE") == 1
    ssl.create_default_context(cafile=env["PREFECT_API_SSL_CERT_FILE"])  # a file ssl accepts
    assert "PREFECT_API_SSL_CERT_FILE" not in local_api_environment("https://prefect.example/api", tmp_path)
    monkeypatch.setenv("PREFECT_API_SSL_CERT_FILE", "/etc/ssl/mine.pem")  # the user's own wins
    assert "PREFECT_API_SSL_CERT_FILE" not in local_api_environment("http://127.0.0.1:4200/api", tmp_path)


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


def _collector() -> dict[str, object]:
    import gc

    return {"enabled": gc.isenabled(), "frozen": gc.get_freeze_count()}


def _collector_after_teardown(dask_worker: Any) -> dict[str, object]:
    import gc

    import runtime.preload

    gc.unfreeze()
    runtime.preload.dask_teardown(dask_worker)  # what the worker runs as it closes
    return _collector()


def _scheduler_intervals(dask_scheduler: Any) -> dict[str, float]:
    found = {k: dask_scheduler.periodic_callbacks[k].callback_time for k in ("tick", "monitor", "stealing")}
    return {**found, "saturation": dask_scheduler.WORKER_SATURATION}


def test_local_workers_get_accords_malloc_housekeeping_and_preload(monkeypatch):
    for key in WORKER_MALLOC:  # restored afterwards
        monkeypatch.delenv(key, raising=False)

    def _preloaded() -> list[str]:
        # A local function travels by value: running it imports nothing (a module-level one
        # would make the worker import this test module, and accord and Prefect with it).
        import sys

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
        (collector,) = client.run(_collector).values()
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
            assert list(client.run(_collector).values()) == [{"enabled": True, "frozen": 0}]
    finally:
        _clear_malloc()


def _process_report() -> dict[str, object]:
    import prefect.settings

    def proc(path: str) -> list[str]:
        return Path(path).read_bytes().decode(errors="replace").split("\0")

    at_start = dict(item.split("=", 1) for item in proc("/proc/self/environ") if "=" in item)
    start_keys = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", *WORKER_MALLOC, "PYTHONHASHSEED")
    return {
        "parent": " ".join(proc(f"/proc/{os.getppid()}/cmdline")),
        "at_start": {k: at_start.get(k) for k in start_keys},  # what the process started with
        "hash": hash("accord"),
        "marker": os.environ.get("ACCORD_TEST_MARKER"),
        "api": str(prefect.settings.get_current_settings().api.url),
    }


def test_local_workers_fork_from_one_server_that_imported_their_preload(monkeypatch):
    kwargs = task_runner_for(make_config({"workers": 2})).cluster_kwargs
    forked = []
    # The fork server outlives a cluster (and may have started in an earlier test): each
    # cluster's workers must still get the environment and Prefect API of their own time.
    for marker, api in (("first", "http://127.0.0.1:9/api"), ("second", "http://127.0.0.1:10/api")):
        monkeypatch.setenv("ACCORD_TEST_MARKER", marker)
        monkeypatch.setenv("PREFECT_API_URL", api)
        with AccordLocalCluster(**{**kwargs, "env": worker_env()}) as cluster, Client(cluster) as client:
            reports = list(client.run(_process_report).values())
        assert [(r["marker"], r["api"]) for r in reports] == [(marker, api)] * 2
        forked += reports
    started_with = {
        "OMP_NUM_THREADS": "1",  # read as OpenBLAS and OpenMP load, in the fork server
        "OPENBLAS_NUM_THREADS": "1",
        **{k: str(v) for k, v in WORKER_MALLOC.items()},  # read as the process starts
        "PYTHONHASHSEED": "6640",  # Dask's nanny gives every spawned worker this seed
    }
    for report in forked:
        assert "multiprocessing.forkserver import main" in str(report["parent"]), report["parent"]
        assert "runtime.preload" in str(report["parent"])  # imported once, before the fork
        assert report["at_start"] == started_with
    # A method the user chose is kept: these spawn, as a crashed worker's nanny does, and
    # must hash strings as the forked ones do (Dask's shuffles and groupbys rely on it).
    monkeypatch.setenv("DASK_DISTRIBUTED__WORKER__MULTIPROCESSING_METHOD", "spawn")
    with AccordLocalCluster(**{**kwargs, "env": worker_env()}) as cluster, Client(cluster) as client:
        spawned = list(client.run(_process_report).values())
    for report in spawned:
        assert "forkserver" not in str(report["parent"]) and report["marker"] == "second"
        assert report["at_start"]["PYTHONHASHSEED"] == "6640"
    assert len({r["hash"] for r in forked + spawned}) == 1
    assert dask.config.get("distributed.worker.multiprocessing-method") == "spawn"  # as it was


def _in_fresh_process(code: str, timeout: int) -> str:
    """Run `code` in a new Python process, whose fork server starts there; return its stdout.

    Without this process's choice of where workers run (``ACCORD_DASK_ADDRESS``) or how
    they start (``DASK_DISTRIBUTED__WORKER__MULTIPROCESSING_METHOD``): it starts a
    LocalCluster, forked.
    """
    dropped = ("ACCORD_DASK_ADDRESS", "DASK_DISTRIBUTED__WORKER__MULTIPROCESSING_METHOD")
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_a_variable_removed_after_the_fork_server_started_is_gone_from_later_workers():
    # In a process of its own, so that its fork server starts here, with the variable set.
    code = (
        "import json, os\n"
        "from distributed import Client\n"
        "from accord.config import make_config\n"
        "from runtime.runner import AccordLocalCluster, task_runner_for, worker_env\n"
        "def probe():\n"
        "    parent = open(f'/proc/{os.getppid()}/cmdline').read()\n"
        "    return [os.environ.get('ACCORD_TEST_GONE'), 'ACCORD_WORKER_UNSET_ENV' in os.environ, parent]\n"
        "os.environ['ACCORD_TEST_GONE'] = 'stale'\n"
        "kwargs = task_runner_for(make_config({'workers': 2})).cluster_kwargs\n"
        "runs = []\n"
        "for _ in range(2):\n"
        "    with AccordLocalCluster(**{**kwargs, 'env': worker_env()}) as c, Client(c) as client:\n"
        "        runs.append(list(client.run(probe).values()))\n"
        "    os.environ.pop('ACCORD_TEST_GONE', None)  # the fork server still has it\n"
        "print(json.dumps(runs))\n"
    )
    first, second = json.loads(_in_fresh_process(code, timeout=120).strip().splitlines()[-1])
    assert all("forkserver" in parent for *_, parent in first + second)  # forked, not spawned
    assert [value for value, *_ in first] == ["stale", "stale"]
    assert [value for value, *_ in second] == [None, None]
    assert not any(left for _, left, _ in first + second)  # the hand-over variable is removed too


@pytest.mark.parametrize(("address", "starts"), [(None, True), ("tcp://127.0.0.1:8786", False)])
def test_the_fork_server_starts_ahead_only_for_a_run_on_a_local_cluster(address, starts):
    # What `accord train|pretrain|predict` call before they start a Prefect server.
    code = (
        "import psutil\n"
        "from runtime.local_workers import start_ahead\n"
        f"start_ahead({address!r})\n"
        "print('\\n'.join(' '.join(c.cmdline()) for c in psutil.Process().children()))\n"
    )
    out = _in_fresh_process(code, timeout=60)
    servers = [line for line in out.splitlines() if "multiprocessing.forkserver import main" in line]
    assert len(servers) == (1 if starts else 0), out
    assert all("runtime.preload" in line for line in servers)


def test_a_flow_on_a_local_cluster_starts_the_fork_server_before_it_loads_the_data():
    # Python callers and deployments do not pass through the command line's `start_ahead`:
    # the flow itself starts the server, so its imports overlap loading the data. A log
    # handler looks for the server as Prefect creates the task that loads the data.
    code = (
        "import json, logging, psutil\n"
        "from accord.config import make_config\n"
        "from flows.train import train_ensemble\n"
        "seen = {}\n"
        "class Look(logging.Handler):\n"
        "    def emit(self, record):\n"
        "        if 'prepare-data' in record.getMessage() and not seen:\n"
        "            lines = [' '.join(c.cmdline()) for c in psutil.Process().children()]\n"
        "            seen['servers'] = sum('multiprocessing.forkserver import main' in x for x in lines)\n"
        "logging.getLogger('prefect.task_runs').addHandler(Look())\n"
        "logging.getLogger('prefect.task_runs').setLevel(logging.DEBUG)  # 'Created task run ...'\n"
        "config = make_config({'data': 'sklearn:iris', 'members': [{'kind': 'logreg'}], 'folds': 2,\n"
        "                      'store': 'memory://ahead', 'name': 'ahead', 'workers': 1})\n"
        "train_ensemble(config)\n"
        "print(json.dumps(seen))\n"
    )
    out = _in_fresh_process(code, timeout=180)
    assert json.loads(out.strip().splitlines()[-1]) == {"servers": 1}


def test_workers_spawn_where_the_user_says_so_or_no_fork_server_exists(monkeypatch):
    import multiprocessing

    key = "DASK_DISTRIBUTED__WORKER__MULTIPROCESSING_METHOD"
    monkeypatch.delenv(key, raising=False)
    assert fork_method() == FORK_METHOD == {"distributed.worker.multiprocessing-method": "forkserver"}
    with dask.config.set({"distributed.worker.multiprocessing-method": "fork"}):
        assert fork_method() == {}  # the user's choice
    monkeypatch.setenv(key, "spawn")
    assert fork_method() == {}  # the user's choice, though it is Dask's default
    monkeypatch.delenv(key)
    monkeypatch.setattr(multiprocessing, "get_all_start_methods", lambda: ["spawn"])  # as on Windows
    assert fork_method() == {}


def test_overlapping_worker_starts_leave_dasks_start_method_as_it_was(monkeypatch):
    # A cluster scaling while it still starts, or two clusters in one process, end their
    # worker starts in any order; Dask's config is one per process.
    key = "distributed.worker.multiprocessing-method"
    monkeypatch.delenv("DASK_DISTRIBUTED__WORKER__MULTIPROCESSING_METHOD", raising=False)
    assert dask.config.get(key) == "spawn"
    first, second = fork_server_method(), fork_server_method()
    first.__enter__()
    second.__enter__()
    assert dask.config.get(key) == "forkserver"
    first.__exit__(None, None, None)
    assert dask.config.get(key) == "forkserver"  # the second still starts workers
    second.__exit__(None, None, None)
    assert dask.config.get(key) == "spawn"


def test_a_worker_in_the_clients_process_leaves_its_collector_alone():
    # Freezing is for a worker whose process ends with it; here the process is the test's.
    assert _collector() == {"enabled": True, "frozen": 0}
    cluster = LocalCluster(n_workers=1, processes=False, preload=WORKER_PRELOAD, dashboard_address=":0")
    with cluster, Client(cluster) as client:
        assert "runtime.preload" in sys.modules  # the preload ran, here
        assert list(client.run(_collector).values()) == [{"enabled": True, "frozen": 0}]
    assert _collector() == {"enabled": True, "frozen": 0}  # nor at its teardown


def _cores_of_threads() -> list[tuple[int, ...]]:
    """The distinct sets of cores this process's threads may run on."""
    return sorted({tuple(sorted(os.sched_getaffinity(int(t)))) for t in os.listdir("/proc/self/task")})


def _single_cores(affinities: dict[str, list[tuple[int, ...]]]) -> dict[str, int]:
    """Worker -> the one core all its threads run on; fails if any worker runs on more."""
    assert all(len(a) == 1 and len(a[0]) == 1 for a in affinities.values()), affinities
    return {w: a[0][0] for w, a in affinities.items()}


def test_local_workers_each_run_on_a_core_of_their_own_and_free_it_as_they_exit():
    cores = sorted(os.sched_getaffinity(0))
    n = min(2, len(cores))
    kwargs = task_runner_for(make_config({"workers": n})).cluster_kwargs
    with AccordLocalCluster(**kwargs) as cluster, Client(cluster) as client:
        first = _single_cores(client.run(_cores_of_threads))
        assert len(set(first.values())) == n  # a core each, every thread of the worker on it
        # A worker that exits frees its core: the test can lock it, and a new worker takes one.
        cluster.scale(n - 1)
        while len(client.scheduler_info()["workers"]) > n - 1:
            time.sleep(0.1)
        kept = set(_single_cores(client.run(_cores_of_threads)).values())
        (retired,) = set(first.values()) - kept
        # The scheduler lets a worker go before its process has exited, and the lock goes
        # with the process: wait for that (CI once tried the lock in between).
        deadline = time.monotonic() + 15
        while (fd := _try_lock(lock_dir() / f"{retired}.lock")) is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert fd is not None
        os.close(fd)
        cluster.scale(n)
        client.wait_for_workers(n)
        again = _single_cores(client.run(_cores_of_threads))
        assert len(set(again.values())) == n
        # Another run on this machine never shares a core with this one's workers.
        with AccordLocalCluster(**{**kwargs, "n_workers": 1}) as other, Client(other) as other_client:
            (theirs,) = other_client.run(_cores_of_threads).values()
        if len(cores) > n:
            assert len(theirs) == 1 and len(theirs[0]) == 1 and theirs[0][0] not in again.values()
        else:
            assert theirs == [tuple(cores)]  # none free: it runs where the kernel puts it
    # More workers than cores (fixed or as adaptive scaling's maximum): none is pinned.
    more = len(cores) + 1
    assert PIN_ENV in kwargs["env"]
    assert PIN_ENV not in task_runner_for(make_config({"workers": more})).cluster_kwargs["env"]
    adaptive = task_runner_for(make_config({"adapt": {"minimum": 1, "maximum": more}}))
    assert PIN_ENV not in adaptive.cluster_kwargs["env"]
    crowded = {**kwargs, "n_workers": more, "env": adaptive.cluster_kwargs["env"]}
    with AccordLocalCluster(**crowded) as cluster, Client(cluster) as client:
        assert list(client.run(_cores_of_threads).values()) == [[tuple(cores)]] * more


def _prepared(members: list[dict[str, Any]], rows: int, features: int, classes: int) -> Any:
    source = f"synthetic:classification?n_rows={rows}&n_features={features}&n_classes={classes}&seed=0"
    return prepare(make_config({"data": source, "members": members, "folds": 3}))


def test_work_order_starts_the_fits_estimated_longest_and_ends_with_the_cheapest():
    members = [
        {"kind": "logreg"},
        {"kind": "hist_gb", "params": {"max_iter": 300}},
        {"kind": "knn"},
        {"kind": "random_forest", "params": {"n_estimators": 300}},
    ]
    data = _prepared(members, 20_000, 30, 3)
    order = work_order(data.members, data)
    assert len(order) == 16 and len({(s.kind, k) for s, k in order}) == 16
    seconds = [estimated_seconds(s, data, k) for s, k in order]
    assert seconds == sorted(seconds, reverse=True)
    # bench/parallel's forest took 4x the boosting's seconds at 30k rows: it starts first
    assert order[0][0].kind == "random_forest" and order[0][1] is None  # the refit has the most rows
    assert {(s.kind, k) for s, k in order[:4]} == {("random_forest", k) for k in (None, 0, 1, 2)}
    assert (order[4][0].kind, order[4][1]) == ("hist_gb", None)
    assert {s.kind for s, _ in order[-8:]} == {"logreg", "knn"}  # the tail holds only cheap fits
    # the boosting's trees cost the same whatever the rows; a forest's shrink with them
    small = _prepared(members, 1000, 64, 10)
    assert [s.kind for s, _ in work_order(small.members, small)[:4]] == ["hist_gb"] * 4


def test_every_member_kind_estimates_its_fits_and_more_rows_cost_more():
    for kind, cls in KINDS.items():
        task = "classification"
        params = cls.default_params(task)
        small = cls.fit_seconds(task, params, FitShape(1000, 250, features=20, classes=3))
        large = cls.fit_seconds(task, params, FitShape(100_000, 25_000, features=20, classes=3))
        assert 0 < small <= large < math.inf, kind
        if kind != "published":  # fetching a version costs the same whatever the rows
            assert large > small, kind


def test_work_phases_run_cluster_wide_members_first_one_task_at_a_time():
    members = [{"kind": "logreg"}, {"kind": "xgboost_dask"}, {"kind": "hist_gb"}]
    data = _prepared(members, 300, 5, 2)
    (first, one_at_a_time), (rest, all_at_once) = work_phases(data.members, data)
    assert [(s.kind, k) for s, k in first] == [("xgboost_dask", k) for k in (None, 0, 1, 2)]
    assert one_at_a_time and not all_at_once
    assert [(s.kind, k) for s, k in rest] == [
        (s.kind, k) for s, k in work_order(data.members, data) if s.kind != "xgboost_dask"
    ]


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


def test_task_keys_name_the_member_and_the_fold_or_refit():
    from dask.utils import key_split

    member = {"kind": "logreg", "name": "logreg-c0.1", "params": {"C": 0.1}}
    spec = make_config({"members": [member]}).members[0]
    assert key_split(task_key(spec, 3)) == "fold_logreg_c0_1"
    assert key_split(task_key(spec, None)) == "refit_logreg_c0_1"
    assert task_key(spec, 3) != task_key(spec, 3)  # unique: a rerun never meets an old result


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


def test_local_server_defaults_to_a_project_local_prefect_home(tmp_path, monkeypatch):
    from runtime.server import LocalPrefectServer

    monkeypatch.delenv("PREFECT_HOME", raising=False)
    monkeypatch.chdir(tmp_path)
    server = LocalPrefectServer()  # not started: only where it would keep its database
    assert server.env["PREFECT_HOME"] == str(tmp_path / ".prefect")
    assert server.log_path.parent == tmp_path / ".prefect"


def test_adapt_options_reach_the_runner_and_are_checked():
    import pytest

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


def test_a_dask_variable_counts_as_the_users_choice_even_at_the_default(monkeypatch):
    key = "distributed.worker.profile.enabled"
    monkeypatch.delenv("DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED", raising=False)
    assert not _user_set(key)
    monkeypatch.setenv("DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED", "True")
    assert _user_set(key)
    with dask.config.set({"distributed.admin.system-monitor.interval": "3s"}):
        assert _user_set("distributed.admin.system-monitor.interval")

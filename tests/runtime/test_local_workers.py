"""Local workers: one thread per library, the shared Prefect API, the fork server and its start ahead."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import dask
import pytest
from distributed import Client, LocalCluster

from accord.config import make_config
from runtime.local_workers import (
    FORK_METHOD,
    WORKER_MALLOC,
    _user_set,
    fork_method,
    fork_server_method,
)
from runtime.runner import AccordLocalCluster, task_runner_for, worker_env


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


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
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


def test_a_dask_variable_counts_as_the_users_choice_even_at_the_default(monkeypatch):
    key = "distributed.worker.profile.enabled"
    monkeypatch.delenv("DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED", raising=False)
    assert not _user_set(key)
    monkeypatch.setenv("DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED", "True")
    assert _user_set(key)
    with dask.config.set({"distributed.admin.system-monitor.interval": "3s"}):
        assert _user_set("distributed.admin.system-monitor.interval")

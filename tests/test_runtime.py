"""Worker processes get the shared Prefect API and one thread per library."""

from __future__ import annotations

import os

from distributed import Client, LocalCluster

from accord.config import make_config
from flows.runtime import task_runner_for, worker_env


def _thread_report() -> dict[str, object]:
    from threadpoolctl import threadpool_info

    from accord.members.keras_kind import import_keras
    from accord.training import threads_per_task

    import_keras(threads_per_task())
    import tensorflow as tf

    return {
        "blas_openmp": sorted({i["num_threads"] for i in threadpool_info()}),
        "tf_intra": tf.config.threading.get_intra_op_parallelism_threads(),
        "accord": threads_per_task(),
        "api": os.environ.get("PREFECT_API_URL"),
    }


def test_local_workers_use_one_thread_per_library_and_the_shared_api():
    runner = task_runner_for(make_config({"workers": 2}))
    kwargs = runner.cluster_kwargs
    assert kwargs["n_workers"] == 2 and kwargs["threads_per_worker"] == 1 and kwargs["processes"] is True
    assert kwargs["env"]["PREFECT_API_URL"] == os.environ["PREFECT_API_URL"]
    cluster = LocalCluster(n_workers=1, threads_per_worker=1, env=worker_env(), dashboard_address=":0")
    with cluster, Client(cluster) as client:
        report = client.submit(_thread_report, pure=False).result()
    assert report == {"blas_openmp": [1], "tf_intra": 1, "accord": 1, "api": os.environ["PREFECT_API_URL"]}


def test_dask_address_selects_an_existing_scheduler():
    runner = task_runner_for(make_config({"dask_address": "tcp://10.0.0.5:8786"}))
    assert runner.address == "tcp://10.0.0.5:8786"
    assert not runner.cluster_kwargs


def test_local_server_defaults_to_a_project_local_prefect_home(tmp_path, monkeypatch):
    from flows.server import LocalPrefectServer

    monkeypatch.delenv("PREFECT_HOME", raising=False)
    monkeypatch.chdir(tmp_path)
    server = LocalPrefectServer()  # not started: only where it would keep its database
    assert server.env["PREFECT_HOME"] == str(tmp_path / ".prefect")
    assert server.log_path.parent == tmp_path / ".prefect"

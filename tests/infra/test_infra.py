"""infra/: what can be checked here is checked, and the separate-process cluster runs accord for real."""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
import yaml

import accord
from accord.config import TrainConfig, make_config
from accord.data.dataset import read_source
from tests.support import ROOT

INFRA = ROOT / "infra"
BIN = Path(sys.executable).parent
PROJECT_TEXT = (
    "\n".join(
        p.read_text() for d in ("accord", "flows", "tasks", "deployments") for p in (ROOT / d).rglob("*.py")
    )
    + (ROOT / "README.md").read_text()
)


def _yaml_documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def test_dockerfile_installs_exactly_as_make_does():
    make = re.search(r"^INSTALL := \$\(BIN\)/(pip install .+)$", (ROOT / "Makefile").read_text(), re.M)
    docker = re.search(r"^RUN (pip install .+)$", (INFRA / "Dockerfile").read_text(), re.M)
    assert make and docker and make.group(1) == docker.group(1)
    for line in (INFRA / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY ") and "--from" not in line:
            for source in shlex.split(line)[1:-1]:
                assert (ROOT / source).exists(), f"Dockerfile copies {source}, which is not in the project"


def test_compose_wires_services_that_exist():
    compose = yaml.safe_load((INFRA / "compose.yaml").read_text())
    services = compose["services"]
    assert {"postgres", "prefect-server", "prefect-worker", "dask-scheduler", "dask-worker", "minio"} <= set(
        services
    )
    ours = {name: s for name, s in services.items() if s.get("image") == "accord:latest"}
    assert set(ours) == {"prefect-server", "prefect-worker", "dask-scheduler", "dask-worker"}
    for s in ours.values():
        assert (INFRA / s["build"]["context"] / s["build"]["dockerfile"]).resolve() == INFRA / "Dockerfile"
        executable = shlex.split(s["command"])[0]
        if executable == "sh":
            executable = shlex.split(s["command"])[2].split()[0]
        assert (BIN / executable).exists(), f"{executable} is not installed by the project"
    env = services["prefect-worker"]["environment"]
    assert services["dask-worker"]["environment"] == env
    for variable in env:
        if variable.startswith(("PREFECT_", "ACCORD_", "AWS_ENDPOINT")):
            assert variable in PROJECT_TEXT, f"{variable} is not used or documented by the project"
    # ports line up: API URL -> server port, scheduler address -> scheduler port, endpoint -> MinIO
    assert env["PREFECT_API_URL"] == "http://prefect-server:4200/api"
    assert "--port 4200" in services["prefect-server"]["command"]
    assert env["ACCORD_DASK_ADDRESS"] == "tcp://dask-scheduler:8786"
    assert "--port 8786" in services["dask-scheduler"]["command"]
    assert "tcp://dask-scheduler:8786" in services["dask-worker"]["command"]
    preload = shlex.split(services["dask-worker"]["command"])
    assert importlib.util.find_spec(preload[preload.index("--preload") + 1]) is not None
    assert (
        env["AWS_ENDPOINT_URL"] == "http://minio:9000" and "--address :9000" in services["minio"]["command"]
    )
    db_url = services["prefect-server"]["environment"]["PREFECT_SERVER_DATABASE_CONNECTION_URL"]
    assert db_url.startswith("postgresql+asyncpg://prefect:") and db_url.endswith("@postgres:5432/prefect")
    assert "--pool accord" in services["prefect-worker"]["command"]
    assert (
        yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"][0]["work_pool"]["name"] == "accord"
    )


@pytest.mark.slow
def test_dask_cli_accepts_the_flags_infra_uses():
    used = {
        "scheduler": ["--port", "--dashboard-address", "--host"],
        "worker": [
            "--nworkers",
            "--nthreads",
            "--memory-limit",
            "--name",
            "--dashboard-address",
            "--no-dashboard",
            "--preload",
        ],
    }
    for command, flags in used.items():
        text = subprocess.run(
            [BIN / "dask", command, "--help"], capture_output=True, text=True, check=True
        ).stdout
        for flag in flags:
            assert flag in text, f"dask {command} has no {flag}"


def test_kubernetes_and_hpc_files_parse_and_agree():
    (cluster,) = _yaml_documents(INFRA / "kubernetes" / "dask-cluster.yaml")
    assert cluster["apiVersion"] == "kubernetes.dask.org/v1" and cluster["kind"] == "DaskCluster"
    containers = [
        *cluster["spec"]["worker"]["spec"]["containers"],
        *cluster["spec"]["scheduler"]["spec"]["containers"],
    ]
    assert {c["image"] for c in containers} == {"accord:latest"}
    service_ports = {p["port"] for p in cluster["spec"]["scheduler"]["service"]["ports"]}
    job = yaml.safe_load((INFRA / "kubernetes" / "work-pool-job-variables.yaml").read_text())
    address = job["env"]["ACCORD_DASK_ADDRESS"]
    assert address.startswith(
        f"tcp://{cluster['metadata']['name']}-scheduler.{cluster['metadata']['namespace']}."
    )
    assert int(address.rsplit(":", 1)[1]) in service_ports
    worker = yaml.safe_load((INFRA / "kubernetes" / "prefect-worker-values.yaml").read_text())
    assert worker["worker"]["config"]["type"] == "kubernetes"
    server = yaml.safe_load((INFRA / "kubernetes" / "prefect-server-values.yaml").read_text())
    assert server["postgresql"]["enabled"] is True
    for path in (INFRA / "kubernetes" / "train-kubecluster.yaml", INFRA / "hpc" / "train-slurm.yaml"):
        config = make_config(yaml.safe_load(path.read_text()))
        assert isinstance(config, TrainConfig) and config.cluster_class and config.adapt
    assert make_config(yaml.safe_load((INFRA / "hpc" / "train-slurm.yaml").read_text())).cluster_class == (
        "dask_jobqueue.SLURMCluster"
    )


def _run(args: list[str], env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, env=env, timeout=timeout, cwd=ROOT)


@pytest.fixture(scope="module")
def local_cluster(tmp_path_factory) -> Any:
    """infra/local-cluster.sh: Prefect on Postgres, a Dask scheduler, two workers, moto S3."""
    work = tmp_path_factory.mktemp("cluster")
    script = str(INFRA / "local-cluster.sh")
    started = _run([script, "start", str(work)], os.environ.copy(), timeout=300)
    try:
        assert started.returncode == 0, started.stderr
        values = dict(re.findall(r"^export (\w+)=(.*)$", (work / "env").read_text(), re.M))
        yield {**os.environ, **values}, work
    finally:
        _run([script, "stop", str(work)], os.environ.copy(), timeout=120)


@pytest.mark.slow
def test_train_and_predict_on_separate_processes(local_cluster, tmp_path):
    from distributed import Client

    env, _ = local_cluster
    assert env["PREFECT_API_URL"] != os.environ["PREFECT_API_URL"]  # not the suite's server
    with Client(env["ACCORD_DASK_ADDRESS"], timeout=10) as client:
        workers = set(client.scheduler_info()["workers"])
    assert len(workers) == 2
    done = _run(
        [str(BIN / "accord"), "train", "--data", "sklearn:wine", "--members", "logreg,random_forest,knn",
         "--folds", "3", "--dask-address", env["ACCORD_DASK_ADDRESS"], "--store", env["ACCORD_STORE"],
         "--name", "separate", "--json"],
        env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = __import__("json").loads(done.stdout)
    storage = {"endpoint_url": env["AWS_ENDPOINT_URL"], "key": env["AWS_ACCESS_KEY_ID"],
               "secret": env["AWS_SECRET_ACCESS_KEY"]}  # fmt: skip
    assert result["ref"].startswith("s3://accord/registry/separate:")
    model = accord.load(result["ref"], storage_options=storage)  # verified from S3
    frame, target = read_source("sklearn:wine")
    rows = frame.drop(columns=[target])

    # the member tasks ran on those two workers, and their logs reached the Postgres-backed server
    api = httpx.Client(base_url=env["PREFECT_API_URL"] + "/", timeout=30)
    run_id = model.manifest["lineage"]["flow_run_id"]
    logs = api.post("logs/filter", json={"logs": {"flow_run_id": {"any_": [run_id]}}, "limit": 200}).json()
    placed = {m.group(1) for entry in logs if (m := re.search(r"on worker (tcp://\S+)", entry["message"]))}
    assert placed and placed <= workers, (placed, workers)
    database = env["ACCORD_LOCAL_CLUSTER_DATABASE"]
    counts = _run(
        ["psql", database, "-t", "-A", "-c",
         f"select count(*) from task_run where flow_run_id = '{run_id}' and state_type = 'COMPLETED'"],
        env,
    )  # fmt: skip
    assert counts.returncode == 0, counts.stderr
    assert int(counts.stdout.strip()) >= 3 * 3 + 3  # every fold and refit, recorded in PostgreSQL

    source = tmp_path / "rows.parquet"
    rows.to_parquet(source, index=False)
    output = "s3://accord/predictions/wine.parquet"
    scored = _run(
        [str(BIN / "accord"), "predict", "--model", "s3://accord/registry/separate@production", "--input",
         str(source), "--output", output, "--chunk-rows", "60", "--dask-address", env["ACCORD_DASK_ADDRESS"],
         "--json"],
        env,
    )  # fmt: skip
    assert scored.returncode == 0, scored.stderr
    import s3fs

    with s3fs.S3FileSystem(**storage).open(output, "rb") as f:
        predictions = pd.read_parquet(f)
    np.testing.assert_array_equal(predictions["prediction"].to_numpy(), model.predict(rows))

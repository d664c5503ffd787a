"""Load and faults with real components: concurrent runs on S3, a Dask worker killed mid-training."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import s3fs
from distributed import Client, LocalCluster

import accord
from accord.config import make_config
from accord.registry.refs import parse_ref
from accord.registry.store import Registry
from flows.train import train_ensemble
from runtime.runner import worker_env
from tests.support.cli import ACCORD

pytestmark = pytest.mark.slow  # every test here runs a flow or starts a cluster

THREE = "logreg,random_forest,knn"


def _train_cli(store: str, steps: int, tmp_path) -> tuple[subprocess.CompletedProcess[str], float]:
    """One `accord train` run; `steps` (greedy selection steps) makes each run's version its own."""
    config = tmp_path / f"run-{steps}.json"
    config.write_text(json.dumps({"ensemble_size": steps}))
    start = time.perf_counter()
    done = subprocess.run(
        [ACCORD, "train", "--data", "sklearn:wine", "--members", THREE, "--folds", "3", "--workers", "1",
         "--store", store, "--name", "shared", "--config", str(config), "--json"],
        capture_output=True, text=True, timeout=600, env=os.environ.copy(),
    )  # fmt: skip
    return done, time.perf_counter() - start


def test_four_runs_at_once_publish_four_whole_versions(s3_store, capsys, tmp_path, report):
    _, alone = _train_cli(s3_store.replace("/registry", "/alone"), 19, tmp_path)
    start = time.perf_counter()
    with ThreadPoolExecutor(4) as pool:  # same data and seed: one split, so scores are comparable
        results = list(pool.map(lambda steps: _train_cli(s3_store, steps, tmp_path), (20, 21, 22, 23)))
    together = time.perf_counter() - start
    for done, _ in results:
        assert done.returncode == 0, done.stderr
    refs = [json.loads(done.stdout)["ref"] for done, _ in results]
    registry = Registry(s3_store)
    assert sorted(parse_ref(r).version for r in refs) == registry.versions("shared")  # four, distinct
    scores = {}
    for ref in refs:
        model = accord.load(ref)  # every file verified against its manifest
        scores[parse_ref(ref).version] = model.manifest["metrics"]["ensemble"]["log_loss"]
    # the gate (if_better, under the alias lock) leaves the alias on a best version: no update lost
    assert scores[registry.get_alias("shared", "production")] == min(scores.values())
    bucket = s3_store.split("/")[2]
    uploads = s3fs.S3FileSystem().call_s3("list_multipart_uploads", Bucket=bucket)
    assert not uploads.get("Uploads"), "an incomplete multipart upload was left behind"
    report(
        "4 `accord train` runs at once, one model name, S3",
        f"versions verified {len(scores)}/4; alias on the best; orphaned uploads 0; "
        f"wall 4 at once / 1 alone = {together:.1f}s / {alone:.1f}s = {together / alone:.2f}",
    )
    with capsys.disabled():
        print(
            f"\n[load] 4 runs at once: {together:.1f}s; one alone: {alone:.1f}s; ratio {together / alone:.2f}"
        )


MEMBERS = [
    {"kind": "logreg"},
    {"kind": "random_forest", "params": {"n_estimators": 200}},
    {"kind": "xgboost", "params": {"n_estimators": 200}},
]


def test_a_worker_killed_mid_training_changes_nothing(tmp_path, report):
    data = "synthetic:classification?n_rows=1500&n_features=12&n_classes=3&seed=5"

    def config(name: str, address: str | None = None):
        values = {
            "data": data,
            "members": MEMBERS,
            "folds": 4,
            "store": (tmp_path / name).as_uri(),
            "name": "m",
        }
        return make_config({**values, "dask_address": address, "workers": 2})

    clean = train_ensemble(config("clean"))
    cluster = LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, env=worker_env(), dashboard_address=":0"
    )
    killed: list[str] = []
    with cluster, Client(cluster) as client:

        def kill_one_worker_mid_task() -> None:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                busy = [w for w, tasks in client.processing().items() if tasks]
                if busy and len(client.scheduler_info()["workers"]) == 2:
                    time.sleep(1.0)  # well inside a member fit
                    killed.append(busy[0])
                    with contextlib.suppress(Exception):  # the worker dies before it can answer
                        client.run(os._exit, 1, workers=[busy[0]])
                    return
                time.sleep(0.05)

        killer = threading.Thread(target=kill_one_worker_mid_task)
        killer.start()
        faulty = train_ensemble(config("faulty", cluster.scheduler_address))
        killer.join()
        assert (
            killed and killed[0] not in client.scheduler_info()["workers"]
        )  # it died (its nanny restarts it)
    assert killed, "no worker was killed"
    assert faulty["weights"] == clean["weights"]
    assert json.dumps(faulty["metrics"], sort_keys=True) == json.dumps(clean["metrics"], sort_keys=True)
    assert len(Registry((tmp_path / "faulty").as_uri()).versions("m")) == 1  # one manifest, written once
    report(
        "os._exit on a Dask worker during a member fit",
        "weights and metrics identical to a clean run; manifests 1",
    )


def test_workers_killed_until_dask_gives_up_fail_the_run_naming_the_member(tmp_path, monkeypatch, report):
    from tasks.training import MemberFailed

    # Dask gives up on a task after it was running on 2 workers that died (default 3)
    monkeypatch.setenv("DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES", "1")
    import dask

    dask.config.refresh()
    store = (tmp_path / "registry").as_uri()
    members = [{"kind": "random_forest", "params": {"n_estimators": 3000}}]
    config = {"data": "synthetic:classification?n_rows=2000&seed=1", "members": members, "folds": 2}
    cluster = LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, env=worker_env(), dashboard_address=":0"
    )
    stop = threading.Event()
    kills: list[str] = []
    seen: set[str] = set()
    with cluster, Client(cluster) as client:

        def keep_killing() -> None:  # every worker that runs a member task dies, until the run ends
            while not stop.is_set():
                for worker, tasks in client.processing().items():
                    seen.update(map(str, tasks))
                    if any(key.startswith(("fold_", "refit_")) for key in map(str, tasks)):  # task_key
                        kills.append(worker)
                        with contextlib.suppress(Exception):
                            client.run(os._exit, 1, workers=[worker])
                time.sleep(0.2)

        killer = threading.Thread(target=keep_killing, daemon=True)
        killer.start()
        start = time.monotonic()
        try:
            with pytest.raises(
                MemberFailed, match=r"member 'random_forest' (fold \d|refit) failed: KilledWorker"
            ):
                train_ensemble(
                    make_config({**config, "store": store, "dask_address": cluster.scheduler_address})
                )
        finally:
            stop.set()
            killer.join()
        elapsed = time.monotonic() - start
    assert len(kills) >= 2 and elapsed < 180, (kills, elapsed, seen)
    assert Registry(store).versions("demo") == []  # nothing published
    from prefect import get_client
    from prefect.client.schemas.sorting import FlowRunSort

    with get_client(sync_client=True) as prefect_client:  # the run ended Failed, not stuck in Running
        recent = prefect_client.read_flow_runs(sort=FlowRunSort.EXPECTED_START_TIME_DESC, limit=50)
        runs = [r for r in recent if r.parameters.get("config", {}).get("store") == store]
    assert len(runs) == 1 and runs[0].state.is_failed() and "random_forest" in runs[0].state.message
    report(
        "every worker running a member task killed (allowed failures 1)",
        f"Failed in {elapsed:.1f}s naming the member; workers killed {len(kills)}; versions published 0",
    )

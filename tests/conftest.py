"""Real services for the suite: one Prefect API server and one S3 endpoint (moto) over HTTP.

Both start in `pytest_configure`, before any test module imports Prefect or
fsspec, because both read their settings from the environment when imported.
Worker processes of every Dask `LocalCluster` inherit the same environment.
"""

from __future__ import annotations

import os
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

pytest_plugins = ["tests.support.predict_tables"]  # shared fixtures, registered for every test module

_state: dict[str, object] = {}


def pytest_configure(config: pytest.Config) -> None:
    from runtime.server import LocalPrefectServer, free_port, local_api_environment

    home = Path(tempfile.mkdtemp(prefix="accord-test-prefect-"))
    os.environ["PREFECT_HOME"] = str(home)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.pop("ACCORD_STORE", None)
    # no warm stack of the developer's (~/.accord) is found by the suite's commands
    os.environ["ACCORD_HOME"] = str(Path(tempfile.mkdtemp(prefix="accord-test-home-")))
    if not os.environ.get("PREFECT_API_URL"):
        # the scheduler looks for due runs every 5 s (default 60 s), so a schedule test waits seconds
        server = LocalPrefectServer(
            env={"PREFECT_HOME": str(home), "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "5"}
        )
        os.environ.update(local_api_environment(server.start(), home))
        _state["prefect"] = server

    from moto.server import ThreadedMotoServer

    port = free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    moto.start()
    _state["moto"] = moto
    os.environ.update(
        AWS_ACCESS_KEY_ID="accord-test-key",
        AWS_SECRET_ACCESS_KEY="accord-test-secret",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}",
    )


def pytest_unconfigure(config: pytest.Config) -> None:
    if "prefect" in sys.modules:  # send buffered run logs before the server goes away
        from prefect.logging.handlers import APILogWorker

        APILogWorker.drain_all(timeout=5)
    moto = _state.pop("moto", None)
    if moto is not None:
        moto.stop()  # type: ignore[attr-defined]
    server = _state.pop("prefect", None)
    if server is not None:
        server.stop()  # type: ignore[attr-defined]


@pytest.fixture
def s3_store() -> Iterator[str]:
    """A fresh bucket on the moto S3 endpoint; yields its store URL."""
    import s3fs

    bucket = f"accord-{uuid.uuid4().hex[:12]}"
    fs = s3fs.S3FileSystem()
    fs.mkdir(bucket)
    yield f"s3://{bucket}/registry"


@pytest.fixture
def file_store(tmp_path: Path) -> str:
    """A fresh local store URL."""
    return (tmp_path / "registry").as_uri()


@pytest.fixture
def memory_store() -> str:
    """A fresh in-memory store URL."""
    return f"memory://accord-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[object, str, Path]]:
    """`accord serve` in its own process against the suite's Prefect server; yields (api, store, dir)."""
    from deployments.definitions import definitions
    from tests.support.prefect_rest import Api, serving

    work = tmp_path_factory.mktemp("serve")
    api = Api(os.environ["PREFECT_API_URL"])
    with serving(work, api, [d.full_name for d in definitions()]) as store:
        yield api, store, work


@pytest.fixture
def report(record_property):  # type: ignore[no-untyped-def]
    """Record what a reliability test injected and measured (bench/reliability.py prints it)."""

    def record(injected: str, measured: str) -> None:
        record_property("injected", injected)
        record_property("measured", measured)

    return record

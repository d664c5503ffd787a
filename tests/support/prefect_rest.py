"""The REST calls the Prefect UI makes, and `accord serve` in its own process, for tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

ACCORD = str(Path(sys.executable).parent / "accord")
TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
SMALL = {
    "data": "sklearn:iris",
    "members": [{"kind": "logreg"}, {"kind": "knn"}],
    "folds": 2,
    "workers": 1,
}


def small_config(store: str, name: str, **extra: Any) -> dict[str, Any]:
    """A training config that runs in seconds."""
    return {**SMALL, "store": store, "name": name, **extra}


class Api:
    """The REST calls the Prefect UI makes."""

    def __init__(self, url: str) -> None:
        self.http = httpx.Client(base_url=url.rstrip("/") + "/", timeout=30)

    def deployment(self, full_name: str) -> dict[str, Any]:
        r = self.http.get(f"deployments/name/{full_name}")
        r.raise_for_status()
        return dict(r.json())

    def post(self, path: str, json: Any) -> httpx.Response:
        """POST; a server error (5xx, e.g. SQLite busy) is retried twice, as Prefect's own client does."""
        for _ in range(2):
            r = self.http.post(path, json=json)
            if r.status_code < 500:
                return r
            time.sleep(2)
        return self.http.post(path, json=json)

    def create_run(self, deployment_id: str, parameters: dict[str, Any]) -> httpx.Response:
        """POST create_flow_run as the UI does."""
        return self.post(f"deployments/{deployment_id}/create_flow_run", {"parameters": parameters})

    def run(self, run_id: str) -> dict[str, Any]:
        r = self.http.get(f"flow_runs/{run_id}")
        r.raise_for_status()
        return dict(r.json())

    def wait(self, run_id: str, timeout: float = 300) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run = self.run(run_id)
            if run["state_type"] in TERMINAL:
                return run
            time.sleep(1)
        raise AssertionError(
            f"flow run {run_id} not finished after {timeout}s: {self.run(run_id)['state_name']}"
        )

    def filter(self, what: str, body: dict[str, Any]) -> list[dict[str, Any]]:
        r = self.post(f"{what}/filter", body)
        r.raise_for_status()
        return list(r.json())

    def states(self, run_id: str) -> list[str]:
        r = self.http.get("flow_run_states/", params={"flow_run_id": run_id})
        r.raise_for_status()
        return [s["name"] for s in sorted(r.json(), key=lambda s: s["timestamp"])]


@contextmanager
def serving(work: Path, api: Api, full_names: list[str]) -> Iterator[str]:
    """Run `accord serve` (store under `work`) until the deployments exist; yield the store URL."""
    store = (work / "registry").as_uri()
    env = {**os.environ, "ACCORD_STORE": store, "PREFECT_RUNNER_POLL_FREQUENCY": "2"}
    log_path = work / "serve.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [ACCORD, "serve"], cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, log_path.read_text()
            try:
                if all(api.deployment(name)["id"] for name in full_names):
                    break
            except httpx.HTTPStatusError:
                pass
            assert time.monotonic() < deadline, "deployments were not registered in 120s"
            time.sleep(1)
        yield store
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)

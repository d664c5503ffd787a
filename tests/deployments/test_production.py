"""Production mode as the README shows it: `prefect deploy` from prefect.yaml, a process pool, a worker."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from accord.registry.store import Registry
from runtime.server import LocalPrefectServer
from tests.support import ROOT
from tests.support.prefect_rest import Api, small_config

pytestmark = pytest.mark.slow  # every test here runs a flow or starts a cluster

PREFECT = str(Path(sys.executable).parent / "prefect")


def test_prefect_deploy_and_a_process_worker_run_the_yaml_deployments(tmp_path):
    home = tmp_path / "prefect-home"
    server = LocalPrefectServer(env={"PREFECT_HOME": str(home)})  # its own: deploy replaces deployments
    url = server.start()
    env = {**os.environ, "PREFECT_API_URL": url, "PREFECT_HOME": str(home)}

    def prefect(*args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [PREFECT, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done

    try:
        prefect("work-pool", "create", "accord", "--type", "process")
        prefect("--no-prompt", "deploy", "--all")
        api = Api(url)
        for name in ("train-ensemble/nightly", "pretrain/weekly", "batch-predict/daily"):
            assert api.deployment(name)["work_pool_name"] == "accord"
        store = (tmp_path / "registry").as_uri()
        config = json.dumps(small_config(store, "from-pool"))
        created = prefect("deployment", "run", "train-ensemble/nightly", "--param", f"config={config}")
        run_id = re.search(r"UUID: ([0-9a-f-]{36})", created.stdout)
        assert run_id, created.stdout
        prefect("worker", "start", "--pool", "accord", "--run-once")
        run = api.wait(run_id.group(1), timeout=60)
        assert run["state_type"] == "COMPLETED", run["state"]
        assert len(Registry(store).versions("from-pool")) == 1
        # embedded mode from the module, too: it registers (updates) every deployment
        before = {n: api.deployment(n)["updated"] for n in ("train-ensemble/nightly", "batch-predict/daily")}
        output = tmp_path / "serve.out"

        def said() -> str:
            return output.read_text(errors="replace")

        with output.open("wb") as out:
            serve = subprocess.Popen(
                [sys.executable, "-m", "deployments.serve"], cwd=ROOT, env=env, start_new_session=True,
                stdout=out, stderr=subprocess.STDOUT,
                # as `accord serve &` in a script starts it: with SIGINT ignored, which it inherits
                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
            )  # fmt: skip
        try:
            deadline = time.monotonic() + 120
            # Ctrl-C once it serves (its handler is in place from then on)
            while (
                any(api.deployment(n)["updated"] == updated for n, updated in before.items())
                or "being served" not in said()
            ):
                assert serve.poll() is None and time.monotonic() < deadline, (
                    "python -m deployments.serve failed:\n" + said()[-3000:]
                )
                time.sleep(1)
        except BaseException:
            os.killpg(serve.pid, signal.SIGKILL)
            serve.wait()
            raise
        os.killpg(serve.pid, signal.SIGINT)  # Ctrl-C stops it
        try:
            serve.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(serve.pid, signal.SIGKILL)
            serve.wait()
            raise AssertionError(
                "python -m deployments.serve did not stop within 30 s of Ctrl-C; its output:\n"
                + said()[-3000:]
            ) from None
    finally:
        server.stop()

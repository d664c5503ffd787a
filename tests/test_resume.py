"""The flow process killed (SIGTERM, SIGKILL) at four points, then rerun: nothing trained twice, same end.

The failpoints (accord/faults.py) make the process signal itself exactly at each point, so
the test is deterministic; the rerun is the same command without the failpoint.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from accord.faults import ENV, POINTS
from accord.store.registry import Registry
from tests.test_cli import ACCORD

RUN = [
    "train",
    "--data",
    "sklearn:iris",
    "--members",
    "logreg,knn",
    "--folds",
    "2",
    "--workers",
    "1",
    "--json",
]
MEMBER_RESULTS = 2 * (2 + 1)  # two members x (two folds + one refit)


def _train(store: str, failpoint: str | None = None) -> subprocess.CompletedProcess[str]:
    env = os.environ.copy()
    env.pop(ENV, None)
    if failpoint:
        env[ENV] = failpoint
    return subprocess.run(
        [ACCORD, *RUN, "--store", store, "--name", "m"], capture_output=True, text=True, timeout=600, env=env
    )


def _end_state(store: str) -> dict[str, object]:
    registry = Registry(store)
    versions = registry.versions("m")
    manifests = [registry.read_manifest("m", v) for v in versions]
    return {
        "versions": len(versions),
        "alias": registry.get_alias("m", "production") in versions,
        "weights": [m["weights"] for m in manifests],
        "metrics": [m["metrics"] for m in manifests],
    }


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> dict[str, object]:
    store = (tmp_path_factory.mktemp("clean") / "registry").as_uri()
    assert _train(store).returncode == 0
    return _end_state(store)


@pytest.mark.parametrize("signal_name", ["SIGKILL", "SIGTERM"])
@pytest.mark.parametrize("point", POINTS)
def test_a_killed_run_reruns_to_the_clean_end_state(clean, tmp_path, point, signal_name, report):
    store = (tmp_path / "registry").as_uri()
    killed = _train(store, f"{point}:{signal_name}")
    assert killed.returncode != 0, f"the run was not killed at {point}"
    visible = Registry(store).versions("m")
    assert len(visible) == (1 if point == "promote:before-alias" else 0)  # never half a version
    rerun = _train(store)
    assert rerun.returncode == 0, rerun.stderr
    reused = rerun.stderr.count("reused the cached result of member")
    if point == "train:mid-training":
        assert MEMBER_RESULTS // 2 <= reused < MEMBER_RESULTS
    else:
        assert reused == MEMBER_RESULTS  # nothing trained again
    assert _end_state(store) == clean
    assert json.loads(rerun.stdout)["version"] == Registry(store).versions("m")[0]
    report(
        f"{signal_name} to the flow process at {point}",
        f"versions visible after the kill {len(visible)}; member results reused on rerun "
        f"{reused}/{MEMBER_RESULTS}; end state equals a clean run",
    )

"""The flow process killed (SIGTERM, SIGKILL) at four points, then rerun: nothing trained twice, same end.

The failpoints (accord/faults.py) make the process signal itself exactly at each point, so
the test is deterministic; the rerun is the same command without the failpoint.

What makes that reuse safe is tested here too: results are found again only by the same
code and libraries, and a finished run prunes results older than ``ACCORD_CACHE_DAYS``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import accord
from accord.faults import ENV, POINTS
from accord.registry.cache import KEEP_DAYS_ENV, ResultCache
from accord.registry.store import Registry
from accord.training.fit import FoldResult
from tests.support.cli import ACCORD

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


def _train(
    store: str, failpoint: str | None = None, args: tuple[str, ...] = (), env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k not in (ENV, KEEP_DAYS_ENV)}
    if failpoint:
        environ[ENV] = failpoint
    return subprocess.run(
        [ACCORD, *RUN, "--store", store, "--name", "m", *args],
        capture_output=True,
        text=True,
        timeout=600,
        env={**environ, **(env or {})},
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


@pytest.mark.slow
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


# Prints the cache key of one member result and the run key of one run, in a fresh process.
KEYS = """
import json
from accord.registry.cache import result_key, run_key, split_digest
from accord.config import make_config
from accord.training.prepare import prepare
data = prepare(make_config({"data": "sklearn:iris", "members": [{"kind": "logreg"}]}))
split = split_digest(data)
print(json.dumps([result_key(split, data.members[0], 0, 0), run_key(split, data, "caruana", 25, 0)]))
"""


def _keys(where: Path, path: list[Path]) -> list[str]:
    """`KEYS` run in `where` with `path` ahead of the installed packages."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(p) for p in path)}
    done = subprocess.run(
        [sys.executable, "-c", KEYS], cwd=where, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    keys: list[str] = json.loads(done.stdout.splitlines()[-1])
    return keys


@pytest.mark.slow
def test_results_and_versions_are_reused_only_by_the_same_code_and_libraries(tmp_path):
    """An edit to accord's source, or another library version, gives new keys: nothing is reused.

    The same code in another process gives the same keys (a rerun after a crash reuses).
    """
    where = tmp_path / "run"  # not the checkout, whose accord/ would come first on sys.path
    where.mkdir()
    same = _keys(where, [])
    assert _keys(where, []) == same

    edited = tmp_path / "edited"
    shutil.copytree(
        Path(accord.__file__).parent, edited / "accord", ignore=shutil.ignore_patterns("__pycache__")
    )
    with (edited / "accord" / "ensembling" / "weights.py").open("a") as f:
        f.write("\n# an edit that is not committed, to code that trains nothing\n")
    after_edit = _keys(where, [edited])

    upgraded = tmp_path / "upgraded"  # what importlib.metadata reads first: xgboost 0.0.1
    (upgraded / "xgboost-0.0.1.dist-info").mkdir(parents=True)
    (upgraded / "xgboost-0.0.1.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: xgboost\nVersion: 0.0.1\n"
    )
    after_upgrade = _keys(where, [upgraded])

    for changed in (after_edit, after_upgrade):
        assert changed[0] != same[0]  # the member result's cache key
        assert changed[1] != same[1]  # the run key a published version is found by
    assert after_edit != after_upgrade


def _key(i: int) -> str:
    return hashlib.sha256(str(i).encode()).hexdigest()


def _put(cache: ResultCache, path: str, data: bytes) -> None:
    cache.fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)  # a local store needs the folder
    cache.fs.pipe_file(path, data)


@pytest.mark.parametrize("store", ["file_store", "s3_store", "memory_store"])
def test_prune_removes_the_entries_older_than_the_limit_and_nothing_else(request, store):
    cache = ResultCache(request.getfixturevalue(store))
    keys = [_key(0), _key(1)]
    for k in keys:
        cache.put_fold(k, FoldResult("m", 0, np.arange(6.0).reshape(3, 2), 0.5))
    unfinished = f"{cache.root}/{_key(2)}/predictions.npy"  # its writer died before entry.json
    _put(cache, unfinished, b"partial")
    other = f"{cache.root}/notes.txt"  # not an entry: never touched
    _put(cache, other, b"kept")

    assert cache.prune(3600) == 0  # all written just now
    assert all(cache.get_fold(k) is not None for k in keys)
    assert cache.prune(3600, now=time.time() + 7200) == 3  # as seen two hours later
    assert all(cache.get_fold(k) is None for k in keys)
    assert not cache.fs.exists(unfinished)
    assert cache.fs.cat_file(other) == b"kept"


def test_prune_keeps_an_entry_by_when_its_entry_file_was_written(file_store):
    cache = ResultCache(file_store)
    old, new = _key(0), _key(1)
    for k in (old, new):
        cache.put_fold(k, FoldResult("m", 0, np.zeros((2, 2)), 0.1))
    week_ago = time.time() - 8 * 86400
    os.utime(f"{cache.root}/{old}/entry.json", (week_ago, week_ago))  # its other file stays recent
    assert cache.prune(7 * 86400) == 1
    assert cache.get_fold(old) is None and cache.get_fold(new) is not None


@pytest.mark.slow
def test_a_finished_run_prunes_the_cached_results_older_than_accord_cache_days(tmp_path):
    store = (tmp_path / "registry").as_uri()
    assert _train(store).returncode == 0
    results = tmp_path / "registry" / ".cache" / "results"
    first = set(os.listdir(results))
    assert len(first) == MEMBER_RESULTS
    week_ago = time.time() - 8 * 86400
    for path in results.rglob("*"):
        os.utime(path, (week_ago, week_ago))

    second = _train(store, args=("--seed", "1"))  # other keys: nothing to reuse
    assert second.returncode == 0, second.stderr
    kept = set(os.listdir(results))
    assert len(kept) == MEMBER_RESULTS and not kept & first
    assert f"pruned {MEMBER_RESULTS} cached member results older than 7 days" in second.stderr

    refused = _train(store, args=("--seed", "2"), env={KEEP_DAYS_ENV: "a week"})
    assert refused.returncode == 2
    assert f"{KEEP_DAYS_ENV} must be a number of days >= 0" in refused.stderr and "'a week'" in refused.stderr
    assert len(Registry(store).versions("m")) == 2  # the refused run published nothing
    assert set(os.listdir(results)) == kept  # and trained nothing

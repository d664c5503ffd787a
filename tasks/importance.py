"""Permutation feature importance of a run's ensemble, computed on the cluster before it is published.

The version's files (ensemble document, schema, the members the weights use) and the
held-out rows are staged on the cluster once; each task rebuilds the ensemble from those
files, as `accord.load` would (once per worker process), and scores a group of
(feature, repeat) shuffles (`accord.ensembling.importance`). Groups, not single shuffles,
are the tasks: each task costs Prefect and Dask overhead (docs/performance.md).
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

import numpy as np
import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from accord.data.split import Prepared
from accord.ensembling.ensemble import ENSEMBLE_FILE, SCHEMA_FILE, Ensemble, build_ensemble
from accord.ensembling.evaluation import Report
from accord.ensembling.importance import DEFAULT_REPEATS, document, loss, permuted_losses, work
from accord.registry.publishing import find_published, version_payload
from accord.registry.store import Registry
from accord.training.fit import RefitResult
from tasks.members import slots

IN_PROCESS_SECONDS = 2.0
"""Shuffles estimated to take less than this run in the flow's own process: on the cluster,
staging the files and rows and rebuilding the ensemble per worker cost seconds."""
_CLUSTER_KINDS = ("keras_mlp", "keras_cnn", "keras_transfer", "published")
"""Kinds whose prediction may import TensorFlow: never rebuilt in the flow's process."""

_BUILT: dict[str, Ensemble] = {}  # per worker process: the last ensemble rebuilt, by its files' digest


def _model(files: dict[str, bytes]) -> Ensemble:
    digest = hashlib.sha256()
    for path in sorted(files):
        digest.update(path.encode() + b"\0" + hashlib.sha256(files[path]).digest())
    key = digest.hexdigest()
    if key not in _BUILT:
        _BUILT.clear()
        _BUILT[key] = build_ensemble(files, weighted_only=True)
    return _BUILT[key]


@task(name="stage-importance", cache_policy=NO_CACHE, persist_result=False)
def stage_importance(files: dict[str, bytes], X: pd.DataFrame, y: np.ndarray) -> dict[str, Any]:
    """Hold the version's files and the held-out rows on the cluster for the importance tasks."""
    return {"files": files, "X": X, "y": y}


@task(name="permutation-importance", cache_policy=NO_CACHE, persist_result=False)
def importance_group(
    staged: dict[str, Any], pairs: list[tuple[str, int]], seed: int
) -> tuple[float, list[float]]:
    """The unshuffled loss and the loss with each pair's feature shuffled, for one group of pairs."""
    model = _model(staged["files"])
    X, y = staged["X"], staged["y"]
    return loss(model, model.schema.conform(X), y), permuted_losses(model, X, y, pairs, seed)


def version_files(data: Prepared, refits: dict[str, RefitResult], report: Report) -> dict[str, bytes]:
    """The files an ensemble needs to predict: its document, schema and the members it uses."""
    files, _ = version_payload(data, refits, report, config={})
    weights = report.weights or {}
    used = [n for n in report.members if weights.get(n, 1.0) != 0.0]
    keep = (ENSEMBLE_FILE, SCHEMA_FILE, *(f"members/{n}/" for n in used))
    return {p: b for p, b in files.items() if p.startswith(keep)}


def feature_importance(
    runner: Any,
    data: Prepared,
    refits: dict[str, RefitResult],
    report: Report,
    seed: int,
    logger: Any,
    repeats: int = DEFAULT_REPEATS,
) -> dict[str, Any] | None:
    """The run's permutation importance on its held-out rows (``importance.json``), computed on `runner`.

    Returns None for a partitioned run, whose held-out rows stay in the source files.
    """
    if data.partitioned:
        logger.info("feature importance skipped: a partitioned run's held-out rows stay in its source")
        return None
    files = version_files(data, refits, report)
    if in_process(data, refits, report, repeats):
        groups = work(data.schema.names, repeats, 1)
        results = [importance_group.fn({"files": files, "X": data.X_test, "y": data.y_test}, groups[0], seed)]
    else:
        staged = runner.submit(stage_importance, {"files": files, "X": data.X_test, "y": data.y_test})
        groups = work(data.schema.names, repeats, 2 * slots(runner))  # the submit above started the cluster
        futures = [
            runner.submit(importance_group, {"staged": staged, "pairs": g, "seed": seed}) for g in groups
        ]
        results = [f.result() for f in futures]
    pairs = [p for g in groups for p in g]
    losses = [value for _, group in results for value in group]
    doc = document(report.primary, results[0][0], pairs, losses, len(data.y_test))
    top = ", ".join(f"{k} {v['importance']:+.4f}" for k, v in list(doc["features"].items())[:5])
    logger.info(
        "feature importance (%s increase when shuffled, %d repeats): %s", report.primary, repeats, top
    )
    return doc


def in_process(data: Prepared, refits: dict[str, RefitResult], report: Report, repeats: int) -> bool:
    """Whether the shuffles would take under `IN_PROCESS_SECONDS` in this process.

    By the ensemble's held-out predict seconds per shuffle; never with a member that may
    import TensorFlow (`_CLUSTER_KINDS`).
    """
    per_shuffle = report.timings.get("ensemble", {}).get("predict_seconds")
    weights = report.weights or {}
    kinds = {refits[n].kind for n in report.members if weights.get(n, 1.0) != 0.0}
    if per_shuffle is None or kinds & set(_CLUSTER_KINDS):
        return False
    return repeats * len(data.schema.names) * float(per_shuffle) < IN_PROCESS_SECONDS


def already_published(store: str, name: str, key: str) -> bool:
    """Whether a version of `name` was published from run key `key` (so this run publishes nothing new)."""
    return find_published(Registry(store), name, key) is not None


def importance_to_publish(
    runner: Any,
    data: Prepared,
    refits: dict[str, RefitResult],
    report: Report,
    seed: int,
    logger: Any,
    until: float | None = None,
    busy: bool = False,
) -> dict[str, Any] | None:
    """`feature_importance` for a version about to be published, or None, said in the log.

    None when the shuffles would not end by `until` (a `time.monotonic()`; the run's time
    limit), by the ensemble's held-out predict seconds per shuffle (times 1.5, over the
    cluster's slots, plus 2 s for staging and tasks); when `busy` (fits cut at the time
    limit still hold the workers: Dask cannot stop a running task); or when computing them
    fails: importance never costs a run its version.
    """
    if busy:
        logger.warning("feature importance skipped: fits cut at the time limit still hold the workers")
        return None
    if until is not None:
        per_shuffle = report.timings.get("ensemble", {}).get("predict_seconds") or 0.0
        shuffles = DEFAULT_REPEATS * len(data.schema.names)
        estimate = 2.0 + 1.5 * shuffles * float(per_shuffle) / max(1, slots(runner))
        if time.monotonic() + estimate > until:
            logger.warning(
                "feature importance skipped: about %.0f s of shuffles would pass the time limit", estimate
            )
            return None
    try:
        return feature_importance(runner, data, refits, report, seed, logger)
    except Exception as e:
        logger.warning("feature importance not computed: %s: %s", type(e).__name__, e)
        return None

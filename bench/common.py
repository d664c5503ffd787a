"""Helpers shared by the benchmarks: running accord's member x fold work on a Dask client."""

from __future__ import annotations

import logging
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from distributed import Client, LocalCluster, wait

from accord.config import TrainConfig
from accord.data.split import Prepared
from accord.ensembling.evaluation import Report, evaluate
from accord.registry import publishing
from accord.registry.store import Registry
from accord.training.fit import bag_of, fit_fold, fit_full, out_of_fold
from accord.training.schedule import task_key, work_phases
from runtime.runner import AccordLocalCluster, local_cluster_kwargs


def cpu_times() -> tuple[float, float]:
    """Busy and total CPU-seconds of the whole machine (all its cores) since boot, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    tick = os.sysconf("SC_CLK_TCK")
    return (sum(fields) - idle) / tick, sum(fields) / tick


SETTLE_TIMEOUT_S = 60.0


def settle(busy_below: float = 0.1, window: float = 1.0, timeout: float = SETTLE_TIMEOUT_S) -> float:
    """Wait until the machine is quiet: CPU use under `busy_below` for two windows in a row.

    The processes of the run before (a cluster's workers shutting down, a Prefect server
    still storing the last run's events) would otherwise slow the next run and not their own.

    Returns:
        Seconds waited (`timeout` when the machine never went quiet; Linux only, else 0).
    """
    if not Path("/proc/stat").exists():
        return 0.0
    start = time.perf_counter()
    quiet = 0
    busy, total = cpu_times()
    while quiet < 2 and time.perf_counter() - start < timeout:
        time.sleep(window)
        busy2, total2 = cpu_times()
        share = (busy2 - busy) / max(1, total2 - total)
        busy, total = busy2, total2
        quiet = quiet + 1 if share < busy_below else 0
    return time.perf_counter() - start


def alternating(
    runs: dict[Any, Callable[[], Any]], rounds: int
) -> tuple[dict[Any, list[float]], dict[Any, Any]]:
    """Run each callable `rounds` times, reversing their order every other round (the machine drifts).

    Returns:
        Each callable's seconds per round, and its last result.
    """
    seconds: dict[Any, list[float]] = {kind: [] for kind in runs}
    results: dict[Any, Any] = {}
    for r in range(rounds):
        for kind in list(runs) if r % 2 == 0 else list(runs)[::-1]:
            start = time.perf_counter()
            results[kind] = runs[kind]()
            seconds[kind].append(time.perf_counter() - start)
    return seconds, results


def speedup(base: list[float], new: list[float]) -> str:
    """``base`` over ``new`` seconds: the median of the rounds' ratios and the ratio of the means."""
    median = statistics.median(a / b for a, b in zip(base, new, strict=True))
    means = statistics.fmean(base) / statistics.fmean(new)
    return f"speedup {median:.2f}x (median; ratio of means {means:.2f}x)"


def local_cluster(workers: int = 2) -> LocalCluster:
    """A LocalCluster configured as accord's flow configures it."""
    return AccordLocalCluster(**{**local_cluster_kwargs(workers), "silence_logs": logging.ERROR})


def publish_run(config: TrainConfig, data: Prepared, refits: dict[str, Any], report: Report) -> str:
    """Publish a run's version as the flow's publish task does (same files, manifest and store)."""
    files, manifest = publishing.version_payload(data, refits, report, config=config.model_dump(mode="json"))
    return publishing.publish(Registry(config.store), config.model_name, files, manifest)


def run_on_client(
    client: Client, config: TrainConfig, data: Prepared, publish: bool = False
) -> tuple[Report, float, float]:
    """accord's training graph (member x fold, refits, weights) via plain `client.submit`.

    With `publish`, the version is then published as the flow publishes it, so the run
    does the flow's whole job without Prefect.

    Returns:
        The report, the wall time and the sum of the fits' own seconds on the workers.
    """
    start = time.perf_counter()
    oof, refit_results, fit_seconds = fit_members(client, config, data)
    report = evaluate(data, oof, refit_results, config.method, config.ensemble_size)
    if publish:
        publish_run(config, data, refit_results, report)
    return report, time.perf_counter() - start, fit_seconds


def fit_members(
    client: Client, config: TrainConfig, data: Prepared, *, refit_too: bool = False
) -> tuple[dict[str, Any], dict[Any, Any], float]:
    """Out-of-fold predictions and refits of every member computed on the cluster, and the fits' seconds.

    When `data` bags, the refits are the members' bags of fold models (`bag_of`); with
    `refit_too`, refits are also fitted, and returned under ``("refit", name)`` beside them.
    """
    staged = client.scatter(data, broadcast=False)
    members = data.members or tuple(config.members)
    folds: dict[Any, Any] = {}
    refits: dict[Any, Any] = {}
    phases = work_phases(members, data)
    if data.bag and refit_too:
        phases.append(([(s, None) for s in members], False))
    for phase, one_at_a_time in phases:  # as the flow submits them
        for position, (s, k) in enumerate(phase):
            name, priority = s.label, len(phase) - position
            if k is None:
                future = refits[name] = client.submit(
                    fit_full, s, staged, config.seed, key=task_key(s, k), priority=priority
                )
            else:
                future = folds[(name, k)] = client.submit(
                    fit_fold, s, staged, k, config.seed, key=task_key(s, k), priority=priority
                )
            if one_at_a_time:
                wait(future)
    fold_results = {key: f.result() for key, f in folds.items()}
    refit_results = {name: f.result() for name, f in refits.items()}
    names = [s.label for s in members]
    if data.bag:
        fitted = {("refit", n): r for n, r in refit_results.items()}
        refit_results = {n: bag_of([fold_results[(n, k)] for k in range(len(data.folds))]) for n in names}
        refit_results.update(fitted)
    oof: dict[str, Any] = {
        n: out_of_fold(data, [fold_results[(n, k)] for k in range(len(data.folds))]) for n in names
    }
    seconds = sum(r.seconds for r in fold_results.values()) + sum(r.seconds for r in refit_results.values())
    return oof, refit_results, seconds


def run_sequential(config: TrainConfig, data: Prepared, publish: bool = False) -> tuple[Report, float, float]:
    """The same fits one after another in this process: report, wall time, the fits' own seconds.

    With `publish`, the version is then published as in `run_on_client`.
    """
    start = time.perf_counter()
    oof: dict[str, Any] = {}
    refits: dict[str, Any] = {}
    seconds = 0.0
    for spec in data.members:
        name = spec.label
        folds = [fit_fold(spec, data, k, config.seed) for k in range(len(data.folds))]
        oof[name] = out_of_fold(data, folds)
        refits[name] = fit_full(spec, data, config.seed)
        seconds += sum(f.seconds for f in folds) + refits[name].seconds
    report = evaluate(data, oof, refits, config.method, config.ensemble_size)
    if publish:
        publish_run(config, data, refits, report)
    return report, time.perf_counter() - start, seconds

"""Scaling: wall time and peak memory per worker as rows, members and workers grow.

Sweeps, each measurement on a fresh LocalCluster (accord's member x fold functions,
submitted with plain Dask so the workers can be measured):

* rows 10k -> 100k -> 1M (synthetic, 20 features, Parquet) for ``xgboost_dask`` (the
  table read by the workers in partitions, never whole in one process) and for the
  default ensemble (every in-memory member holds the whole training table);
* members 3 -> 6 -> 12 at 20k rows;
* workers 1 -> 2 for the default-style ensemble and for ``xgboost_dask``; the latter's
  time split into its boosting and the rest (the same member with one tree), and the
  ceilings on it: plain XGBoost training one fold's rows in one process against
  half of them alone (the work that does not shrink with rows), against half of them
  in each of two processes at once (and the two slowing each other), and against one
  model trained across those two processes through XGBoost's own collective (and the
  allreduce at every tree level: the ceiling of xgboost_dask's fit with Dask taken out).

Peak memory per worker: the peak resident set (VmHWM, reset through
``/proc/self/clear_refs`` once the worker is idle) above the idle resident set, against
the worker's share of the table (rows x columns x 8 bytes / workers). Each worker first
imports the libraries the members use (scikit-learn, XGBoost, Dask DataFrame, PyArrow and,
for Keras members, TensorFlow), so the figure is what the work costs, not what loading code
costs once per process; that one-off cost is printed too, for what the workers' preload
(`runtime.preload`, which imports all but TensorFlow) had not imported. Prints growth
exponents (log-log slopes) against the targets: time no faster than linear in rows, peak
memory per worker <= 3x its share, 1 -> 2 workers >= 1.8x.

    python -m bench.scale [--max-rows 1000000] [--default-max-rows 100000] [--sweeps rows,members,workers]
                          [--rounds 3]
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from distributed import Client

from accord.config import DEFAULT_MEMBER_KINDS, TrainConfig, make_config
from accord.data.dataset import read_source
from accord.ensembling.evaluation import evaluate
from accord.training.prepare import prepare
from bench.common import cpu_times, fit_members, local_cluster, speedup
from runtime.cores import claim_cores

FEATURES = 20
FOLDS = 3
XGB_DASK: list[dict[str, Any]] = [{"kind": "xgboost_dask", "params": {"n_estimators": 100}}]
DEFAULT: list[dict[str, Any]] = [{"kind": kind} for kind in DEFAULT_MEMBER_KINDS]
BASE: list[dict[str, Any]] = [
    {"kind": "logreg"},
    {"kind": "hist_gb", "params": {"max_iter": 100}},
    {"kind": "xgboost", "params": {"n_estimators": 100}},
]
MORE: list[dict[str, Any]] = [
    {"kind": "logreg", "name": "logreg-c01", "params": {"C": 0.1}},
    {"kind": "hist_gb", "name": "hist-gb-deep", "params": {"max_iter": 100, "max_depth": 8}},
    {"kind": "xgboost", "name": "xgb-shallow", "params": {"n_estimators": 100, "max_depth": 3}},
    {"kind": "extra_trees", "params": {"n_estimators": 50}},
    {"kind": "random_forest", "params": {"n_estimators": 50}},
    {"kind": "logreg", "name": "logreg-c10", "params": {"C": 10.0}},
    {"kind": "hist_gb", "name": "hist-gb-fast", "params": {"max_iter": 50, "learning_rate": 0.2}},
    {"kind": "xgboost", "name": "xgb-deep", "params": {"n_estimators": 100, "max_depth": 8}},
    {"kind": "extra_trees", "name": "extra-trees-small", "params": {"n_estimators": 25}},
]


def _reset_peak() -> float:
    """Reset this process's peak RSS (Linux VmHWM) and return the current RSS in MiB."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    return _status_mib("VmRSS")


def _peak() -> float:
    return _status_mib("VmHWM")


def _status_mib(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024  # kB
    raise RuntimeError(f"{field} not in /proc/self/status")


def _warm_up(keras: bool) -> float:
    """Import what the members use; return the resident set it added, in MiB."""
    before = _status_mib("VmRSS")
    import dask.dataframe  # noqa: F401
    import pyarrow.parquet  # noqa: F401
    import xgboost.dask  # noqa: F401

    import accord.training.fit  # noqa: F401

    if keras:
        from accord.members.keras_kind import import_keras

        import_keras(1)
    return _status_mib("VmRSS") - before


def measure(path: Path, members: list[dict[str, Any]], workers: int) -> dict[str, float]:
    """Train every member x fold (`FOLDS` folds) and refit on a fresh cluster; return time and memory."""
    config = make_config(
        {
            "data": path.as_uri(),
            "target": "target",
            "members": members,
            "folds": FOLDS,
            "store": "memory://scale",
        }
    )
    data = prepare(config)
    rows = len(data.y_train) + len(data.y_test)
    share_mb = rows * (FEATURES + 1) * 8 / 2**20 / workers
    keras = any(m["kind"].startswith("keras") for m in members)
    with local_cluster(workers) as cluster, Client(cluster) as client:
        libraries = max(client.run(_warm_up, keras).values())
        idle = client.run(_reset_peak)
        workers_cpu, here_cpu, machine = client.run(time.process_time), time.process_time(), cpu_times()
        start = time.perf_counter()
        oof, refits, _ = fit_members(client, config, data)
        evaluate(data, oof, refits, config.method, config.ensemble_size)
        seconds = time.perf_counter() - start
        machine_after, here_after = cpu_times(), time.process_time()
        workers_after = client.run(time.process_time)
        peak = client.run(_peak)
    added = max(peak[w] - idle[w] for w in peak)
    busy, total = (after - before for after, before in zip(machine_after, machine, strict=True))
    return {
        "seconds": seconds,
        "peak_mb": added,
        "share_mb": share_mb,
        "rows": rows,
        "libraries_mb": libraries,
        "workers_cpu": sum(workers_after[w] - workers_cpu[w] for w in workers_cpu),
        "here_cpu": here_after - here_cpu,
        "machine_busy": busy / max(1, total),
    }


def _hist_seconds(rows: int, half: int | None = None, ring: dict[str, Any] | None = None) -> float:
    """Seconds the model of `XGB_DASK` takes to fit synthetic rows in this process, one thread.

    The same parameters as the ``xgboost_dask`` member the sweep trains (its defaults and
    `XGB_DASK`'s), through XGBoost's scikit-learn API: building the quantile matrix is
    timed with the boosting, as it is in the member's fit step.

    Args:
        rows: rows of the synthetic table.
        half: train on the first (0) or second (1) half of its rows only; None: all of them.
        ring: XGBoost's collective arguments (`RabitTracker.worker_args`): the fit is then
            one rank of a fit across processes, as each worker's part of ``xgboost.dask``'s.
    """
    import numpy as np
    import xgboost as xgb

    from accord.members.xgboost_dask import XGBoostDaskMember

    params = {**XGBoostDaskMember.default_params("classification"), **XGB_DASK[0]["params"]}
    rng = np.random.default_rng(0)
    X = rng.normal(size=(rows, FEATURES)).astype("float32")
    y = (X[:, 0] + rng.normal(size=rows) > 0).astype("int32")
    if half is not None:
        rows_of_half = slice(half * rows // 2, (half + 1) * rows // 2)
        X, y = X[rows_of_half], y[rows_of_half]
    model = xgb.XGBClassifier(**params, n_jobs=1, random_state=0)
    with xgb.collective.CommunicatorContext(**ring) if ring else contextlib.nullcontext():
        start = time.perf_counter()
        model.fit(X, y)
        return time.perf_counter() - start


def hist_ceiling(rows: int, repeats: int = 3) -> dict[str, float]:
    """The most two workers can gain on XGBoost's own training here, without Dask.

    Four timings per repetition, in two spawned processes: one trains on `rows` rows alone;
    one trains on half of them alone; both train on half each at once, independently; both
    train one model on half each at once, through XGBoost's own collective (its
    `RabitTracker` on loopback, as ``xgboost.dask`` connects its workers). Returns the
    medians over `repeats` repetitions of

    - ``split``: whole / half alone. Below 2 by the work that does not shrink with rows (per
      round and per node costs, the same for half the rows): the most any second worker
      could gain, on any machine, with nothing else running.
    - ``pair``: whole / the slower of the two independent halves at once. Two histogram
      builds at once also slow each other (shared caches and memory bandwidth).
    - ``collective``: whole / the slower rank of the one model trained across both
      processes. Besides the above, every tree level waits for an allreduce of the
      histograms between the processes: this is what XGBoost itself gives a fit spread
      over two workers here, the ceiling of ``xgboost_dask``'s fit step with Dask taken out.
    """
    import multiprocessing

    from xgboost.tracker import RabitTracker

    split, pair, collective = [], [], []
    # Each process on a core of its own, as accord's local workers are (`runtime.cores`).
    with multiprocessing.get_context("spawn").Pool(2, initializer=claim_cores, initargs=(1,)) as pool:
        pool.map(_hist_seconds, [1000, 1000])  # imports, in both processes
        for _ in range(repeats):
            whole = pool.apply(_hist_seconds, (rows,))
            half = pool.apply(_hist_seconds, (rows, 0))
            halves = max(pool.starmap(_hist_seconds, [(rows, 0), (rows, 1)]))
            tracker = RabitTracker(host_ip="127.0.0.1", n_workers=2)
            tracker.start()
            ring = tracker.worker_args()
            ranks = max(pool.starmap(_hist_seconds, [(rows, 0, ring), (rows, 1, ring)]))
            tracker.wait_for()
            split.append(whole / half)
            pair.append(whole / halves)
            collective.append(whole / ranks)
    return {
        "split": statistics.median(split),
        "pair": statistics.median(pair),
        "collective": statistics.median(collective),
    }


Run = dict[str, float]  # one `measure`


def workers_rounds(path: Path, members: list[dict[str, Any]], rounds: int) -> dict[int, list[Run]]:
    """`measure` on 1 and on 2 workers, `rounds` times each, the order reversed every other round.

    The machine drifts over minutes (other tenants, its clock): alternating the order lets
    each round's ratio compare runs made side by side.
    """
    runs: dict[int, list[Run]] = {1: [], 2: []}
    for r in range(rounds):
        for workers in (1, 2) if r % 2 == 0 else (2, 1):
            runs[workers].append(measure(path, members, workers))
    return runs


def _rounds(seconds: list[float]) -> str:
    return f"{statistics.fmean(seconds):6.1f}s ({', '.join(f'{s:.1f}' for s in seconds)})"


def cpu_account(runs: dict[int, list[Run]]) -> str:
    """Where the CPU went on 1 and on 2 workers (means of the rounds), for a speedup short of 2x.

    Two workers fall short of twice one worker's speed when their work grows (the same fits
    cost more CPU-seconds split in two: a collective, contention), when they wait (on each
    other, on a serial step), or when other processes take their cores: this process holds
    the scheduler, the client and the evaluation, and on a machine with as many cores as
    workers it runs on theirs.
    """
    mean = {w: {k: statistics.fmean(r[k] for r in rs) for k in rs[0]} for w, rs in runs.items()}
    cores = os.cpu_count() or 1
    one, two = mean[1], mean[2]
    return (
        f"CPU-seconds (means): workers {one['workers_cpu']:.1f} -> {two['workers_cpu']:.1f} "
        f"({two['workers_cpu'] / one['workers_cpu']:.2f}x the work); the scheduler, client and evaluation "
        f"(this process) {one['here_cpu']:.1f} -> {two['here_cpu']:.1f}; the machine's {cores} cores "
        f"busy {one['machine_busy']:.0%} -> {two['machine_busy']:.0%}"
    )


def slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of log(y) on log(x)."""
    lx, ly = [math.log(x) for x in xs], [math.log(y) for y in ys]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly, strict=True)) / sum((a - mx) ** 2 for a in lx)


def table(rows: int, tmp: Path) -> Path:
    """A synthetic classification table of `rows` rows as Parquet (row groups of 50k rows)."""
    path = tmp / f"rows-{rows}.parquet"
    if not path.exists():
        spec = f"synthetic:classification?n_rows={rows}&n_features={FEATURES}&n_classes=2&seed=0"
        frame, _ = read_source(spec)
        frame.to_parquet(path, index=False, row_group_size=50_000)
    return path


def rows_sweep(
    label: str, members: list[dict[str, Any]], sizes: list[int], tmp: Path
) -> list[dict[str, float]]:
    """Time and memory of one member set at each size (2 workers); prints a line per size."""
    print(f"rows sweep: {label} ({FOLDS} folds + refit, 2 workers)", flush=True)
    out = []
    for n in sizes:
        r = measure(table(n, tmp), members, 2)
        out.append(r)
        print(
            f"  {n:>9,} rows: {r['seconds']:7.1f}s  peak/worker {r['peak_mb']:8.1f} MiB  "
            f"share {r['share_mb']:7.1f} MiB  ratio {r['peak_mb'] / r['share_mb']:6.2f}  "
            f"(imports beyond the preload, once per worker: {r['libraries_mb']:.0f} MiB)",
            flush=True,
        )
    return out


def summary(label: str, sweep: list[dict[str, float]]) -> None:
    """Growth exponent and memory ratio of a rows sweep."""
    exp = slope([r["rows"] for r in sweep], [r["seconds"] for r in sweep]) if len(sweep) > 1 else float("nan")
    largest = sweep[-1]
    ratio = largest["peak_mb"] / largest["share_mb"]
    print(f"{label}: time ~ rows^{exp:.2f} (target <= 1.00: {'met' if exp <= 1.0 else 'missed'}); "
          f"peak/share at {int(largest['rows']):,} rows {ratio:.2f} (target <= 3: "
          f"{'met' if ratio <= 3 else 'missed'})")  # fmt: skip
    if len(sweep) > 1:  # what the work costs per row, apart from what any run costs a worker
        prev = sweep[-2]
        marginal = (largest["peak_mb"] - prev["peak_mb"]) / (largest["share_mb"] - prev["share_mb"])
        first = sweep[0]
        print(f"  of which: {first['peak_mb']:.0f} MiB at {int(first['rows']):,} rows (what any run costs "
              f"a worker), and {marginal:.2f} MiB more per MiB of share from {int(prev['rows']):,} to "
              f"{int(largest['rows']):,} rows")  # fmt: skip


def main() -> None:
    """Run the sweeps and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-rows", type=int, default=1_000_000)
    parser.add_argument("--default-max-rows", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the workers sweep")
    parser.add_argument(
        "--sweeps", default="rows,members,workers", help="which sweeps to run (comma-separated)"
    )
    args = parser.parse_args()
    sweeps = set(args.sweeps.split(","))
    sizes = [n for n in (10_000, 100_000, 1_000_000) if n <= args.max_rows]
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        xgb: list[dict[str, float]] = []
        default: list[dict[str, float]] = []
        if "rows" in sweeps:
            xgb = rows_sweep("xgboost_dask", XGB_DASK, sizes, tmp)
            default = rows_sweep(
                f"default ensemble ({', '.join(DEFAULT_MEMBER_KINDS)})",
                DEFAULT,
                [n for n in sizes if n <= args.default_max_rows],
                tmp,
            )
        by_members = []
        if "members" in sweeps:
            print("members sweep (20k rows, 2 workers)", flush=True)
            for m in (3, 6, 12):
                r = measure(table(20_000, tmp), (BASE + MORE)[:m], 2)
                by_members.append((m, r["seconds"]))
                print(f"  {m:>2} members: {r['seconds']:7.1f}s", flush=True)
        speedups = {}
        workloads = [
            ("6 members, 100k rows", (BASE + MORE)[:6], min(100_000, sizes[-1])),
            ("xgboost_dask, largest table", XGB_DASK, sizes[-1]),
        ]
        if "workers" in sweeps:
            print(f"workers sweep ({args.rounds} rounds, 1 and 2 workers in turn)", flush=True)
            xgb_seconds: dict[int, list[float]] = {}
            for label, members, n in workloads:
                runs = workers_rounds(table(n, tmp), members, args.rounds)
                seconds = {w: [r["seconds"] for r in rs] for w, rs in runs.items()}
                speedups[label] = statistics.median(
                    a / b for a, b in zip(seconds[1], seconds[2], strict=True)
                )
                if members is XGB_DASK:
                    xgb_seconds = seconds
                print(
                    f"  {label}: 1 worker {_rounds(seconds[1])}  2 workers {_rounds(seconds[2])}  "
                    f"{speedup(seconds[1], seconds[2])}",
                    flush=True,
                )
                print(f"    {cpu_account(runs)}", flush=True)
            # The same member with one tree: everything but the boosting (reading, encoding,
            # xgboost.dask's matrices, tracker and collective set-up, predicting), per worker count.
            one_tree = [{**XGB_DASK[0], "params": {**XGB_DASK[0]["params"], "n_estimators": 1}}]
            setup = {
                w: statistics.fmean(r["seconds"] for r in rs)
                for w, rs in workers_rounds(table(sizes[-1], tmp), one_tree, args.rounds).items()
            }
            boosting = {w: statistics.fmean(xgb_seconds[w]) - setup[w] for w in (1, 2)}
            print(
                f"  xgboost_dask split in two (means): everything but the boosting (the member with one "
                f"tree) {setup[1]:.1f}s -> {setup[2]:.1f}s ({setup[1] / setup[2]:.2f}x); the boosting "
                f"{boosting[1]:.1f}s -> {boosting[2]:.1f}s ({boosting[1] / boosting[2]:.2f}x)",
                flush=True,
            )
            test_size = TrainConfig.model_fields["test_size"].default  # `measure` keeps the default
            fold_rows = int(sizes[-1] * (1 - test_size) * (FOLDS - 1) / FOLDS)  # one fold's training rows
            repeats = args.rounds
            ceiling = hist_ceiling(fold_rows, repeats)
            print(
                f"  ceilings for xgboost_dask (plain XGBoost, medians of {repeats}): {fold_rows:,} rows vs "
                f"half of them alone {ceiling['split']:.2f}x (the work that does not shrink with rows), "
                f"vs two processes on half each at once {ceiling['pair']:.2f}x (and contention), "
                f"vs one model across two processes on half each {ceiling['collective']:.2f}x "
                f"(and XGBoost's collective, without Dask)",
                flush=True,
            )

    print()
    if xgb:
        summary("xgboost_dask", xgb)
    if default:
        summary("default ensemble", default)
    if by_members:
        print(f"time ~ members^{slope([m for m, _ in by_members], [s for _, s in by_members]):.2f}")
    for label, s in speedups.items():
        print(
            f"speedup 1 -> 2 workers, {label}: {s:.2f}x, median of the rounds "
            f"(target >= 1.8: {'met' if s >= 1.8 else 'missed'})"
        )


if __name__ == "__main__":
    main()

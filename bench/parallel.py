"""Parallel speed: the same member x fold fits sequentially, through accord on Dask, and as plain Dask.

Rounds of three runs of one workload, each run in a fresh Python process of its own (one
run's threads, heap and caches never weigh on the next) started once the machine's CPUs are
idle again; they share one Prefect server. The order of the three rotates from round to
round, and each ratio is taken within a round (the machine's speed drifts by several
percent within minutes), then printed as the rounds' median beside the ratio of means:

1. sequential: every fit one after another in one process;
2. plain Dask: `client.submit` of the same functions on a LocalCluster of 2 workers
   (cluster start-up included; the workers spawn, Dask's default, and import accord's
   code in their first tasks);
3. accord: the `train_ensemble` flow (Prefect tasks on a DaskTaskRunner with a
   LocalCluster of 2 workers, start-up, weights and publishing to memory:// included).

Each run ends by publishing the version to memory:// as the flow does, so all three do the
same job. Prints the speedups and Prefect's overhead per task. Targets on 2 cores: >= 1.8x over
sequential on >= 60 CPU-seconds of work; accord within 1.10x of plain Dask.

It also prints what accord's run spends before its first member task starts and after
its last ends (read from the task runs the Prefect server recorded), and where a speedup
short of 2x goes: the fits' own seconds summed over the
workers against the same sum in one process, the cluster's start-up, and the scheduling
(wall time against the ideal split of the summed fit seconds). To tell the machine from
Dask, it runs the sequential workload twice at once in two plain processes (no Dask, no
Prefect): two fits at once on two cores each run slower (shared caches, memory bandwidth,
clocks), and ``2 x`` one process's fit seconds over the pair's mean is the most any
scheduler could reach on this machine. It also runs the sequential fits in a plain process
and, at the same time, one at a time on a cluster of one Dask worker: what a fit costs more
on a worker than in a plain process, measured without the drift between runs minutes apart.

The default workload is 30k rows (about 240 CPU-seconds of fitting here). At 10k rows
(about 100) what any run costs before its first fit (3-4 s) weighs twice as much, and the
machine's own ceiling was 1.78x on one day: the target would judge this machine's caches
and clocks more than the scheduling.

    python -m bench.parallel [--rows 30000] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import time
from typing import TYPE_CHECKING

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # the sequential baseline uses one core, as each worker does

from runtime.warm import prefect_api

if TYPE_CHECKING:
    from accord.config import TrainConfig

MARK = "bench.parallel result: "


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=30000)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2, help="rounds of all three runs, order rotating")
    parser.add_argument("--run", choices=["sequential", "plain", "accord", "worker"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:  # one run, in a process of its own (see `compare`)
        print(MARK + json.dumps(run_one(args.run, args.rows, args.folds)), flush=True)
        return
    # Prefect reads PREFECT_API_URL when first imported: every run's process inherits the
    # URL of this one server, so no flow starts a temporary server of its own.
    with prefect_api(log=False):
        compare(args.rows, args.folds, args.rounds)


def workload(rows: int, folds: int) -> TrainConfig:
    """The fits every run does: 6 members x (folds + refit) on a synthetic table.

    Each run's process has a memory:// of its own, so runs never share the result cache.
    """
    from accord.config import make_config

    return make_config(
        {
            "data": f"synthetic:classification?n_rows={rows}&n_features=30&n_classes=3&seed=0",
            "folds": folds,
            "store": "memory://bench-parallel",
            "name": "parallel",
            "workers": 2,
            "members": [
                {"kind": "random_forest", "params": {"n_estimators": 300}},
                {"kind": "extra_trees", "params": {"n_estimators": 300}},
                {"kind": "hist_gb", "params": {"max_iter": 300}},
                {"kind": "xgboost", "params": {"n_estimators": 400}},
                {"kind": "logreg"},
                {"kind": "knn"},
            ],
        }
    )


def run_one(kind: str, rows: int, folds: int) -> dict[str, float]:
    """One run of the workload in this process: its wall time and the fits' own seconds."""
    from distributed import Client

    from accord.training.prepare import prepare
    from bench.common import fit_members, local_cluster, run_on_client, run_sequential

    config = workload(rows, folds)
    if kind == "accord":
        from flows.train import train_ensemble

        fits = FitSeconds()
        logger = logging.getLogger("prefect.flow_runs")
        logger.addHandler(fits)
        logger.setLevel(logging.DEBUG)  # the flow logs each member task's fit seconds at debug level
        start, started_at = time.perf_counter(), time.time()
        result = train_ensemble(config)  # loads and splits the data itself, inside the timing
        wall = time.perf_counter() - start
        return {"wall": wall, "fits": fits.total, **member_span(result["ref"], started_at, wall)}
    data = prepare(config)
    if kind == "sequential":
        _, wall, fit_seconds = run_sequential(config, data, publish=True)
        return {"wall": wall, "fits": fit_seconds}
    if kind == "worker":  # the same fits on a cluster of one worker with one thread: one at a time
        with local_cluster(1) as cluster, Client(cluster) as client:
            start = time.perf_counter()
            _, _, fit_seconds = fit_members(client, config, data)
            return {"wall": time.perf_counter() - start, "fits": fit_seconds}
    # A plain Dask script's workers spawn (Dask's default); accord's fork from a server
    # process that imported its code once (runtime.local_workers), which would also be a
    # choice the user made here.
    os.environ["DASK_DISTRIBUTED__WORKER__MULTIPROCESSING_METHOD"] = "spawn"
    start = time.perf_counter()
    with local_cluster(2) as cluster, Client(cluster) as client:
        t_start = time.perf_counter() - start
        _, t_compute, fit_seconds = run_on_client(client, config, data, publish=True)
    return {"wall": time.perf_counter() - start, "start": t_start, "compute": t_compute, "fits": fit_seconds}


def member_span(ref: str, started_at: float, wall: float) -> dict[str, float]:
    """Seconds of an accord run before its first member task started and after its last ended.

    Read from the task runs the Prefect server recorded for the run's flow run.
    """
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from accord.registry.refs import parse_ref
    from accord.registry.store import Registry

    parsed = parse_ref(ref)
    assert parsed.version, ref  # a run's result names its version
    run_id = Registry(parsed.store).read_manifest(parsed.name, parsed.version)["lineage"]["flow_run_id"]
    only_this_run = FlowRunFilter(id=FlowRunFilterId(any_=[run_id]))
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=only_this_run, limit=200)  # the API's most
    members = [r for r in runs if r.name.startswith(("fit-", "refit-")) and r.start_time and r.end_time]
    first = min(r.start_time.timestamp() for r in members)  # type: ignore[union-attr]
    last = max(r.end_time.timestamp() for r in members)  # type: ignore[union-attr]
    return {"before_members": first - started_at, "after_members": started_at + wall - last}


def in_process(kind: str, rows: int, folds: int) -> dict[str, float]:
    """`run_one` in a fresh Python process, so no run inherits another's threads, heap or caches."""
    return in_processes([kind], rows, folds)[0]


def in_processes(kinds: list[str], rows: int, folds: int) -> list[dict[str, float]]:
    """`run_one` of each kind, all at once, each in a fresh Python process of its own.

    They start once the machine is quiet (`settle`): what the previous run left running
    weighs on no run but its own.
    """
    from bench.common import SETTLE_TIMEOUT_S, settle

    waited = settle()
    if waited >= SETTLE_TIMEOUT_S:
        print(f"  (the machine was still busy after {waited:.0f} s; starting anyway)", flush=True)
    command = [sys.executable, "-m", "bench.parallel", "--rows", str(rows), "--folds", str(folds), "--run"]
    started = [
        (kind, subprocess.Popen([*command, kind], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        for kind in kinds
    ]
    results = []
    for kind, process in started:
        stdout, stderr = process.communicate()
        found = [line for line in stdout.splitlines() if line.startswith(MARK)]
        if not found:
            raise SystemExit(f"the {kind} run failed (exit code {process.returncode}):\n{stderr[-4000:]}")
        results.append(json.loads(found[-1].removeprefix(MARK)))
    return results


def compare(rows: int, folds: int, rounds: int) -> None:
    """Run the workload three ways, each run in a fresh process, and print the ratios.

    Every round runs all three, back to back, in an order that rotates from round to
    round: this machine's speed drifts by several percent within minutes, so a ratio is
    taken within a round and the rounds' median is reported beside the ratio of means.
    """
    n_tasks = len(workload(rows, folds).members) * (folds + 1)
    kinds = ("sequential", "plain", "accord")
    runs: dict[str, list[dict[str, float]]] = {kind: [] for kind in kinds}
    for r in range(rounds):
        for kind in kinds[r % 3 :] + kinds[: r % 3]:
            runs[kind].append(in_process(kind, rows, folds))
            print(f"round {r + 1}: {kind:10s} {runs[kind][-1]['wall']:7.1f}s", flush=True)
    pair = in_processes(["sequential", "sequential"], rows, folds)
    fits_pair = sum(run["fits"] for run in pair) / len(pair)
    print(f"sequential x2 at once: {max(run['wall'] for run in pair):7.1f}s", flush=True)
    beside, worker = in_processes(["sequential", "worker"], rows, folds)
    print(f"sequential and one Dask worker at once: {max(beside['wall'], worker['wall']):7.1f}s", flush=True)

    def mean(name: str, key: str) -> float:
        return sum(run[key] for run in runs[name]) / len(runs[name])

    def per_round(a: str, b: str) -> list[float]:
        return [x["wall"] / y["wall"] for x, y in zip(runs[a], runs[b], strict=True)]

    t_seq, t_dask, t_accord = mean("sequential", "wall"), mean("plain", "wall"), mean("accord", "wall")
    fits_seq, fits_dask, fits_accord = (
        mean("sequential", "fits"),
        mean("plain", "fits"),
        mean("accord", "fits"),
    )
    print()
    print(f"the workload: {n_tasks} fits, {fits_seq:.0f} CPU-seconds of fitting in one process")
    print(
        f"means over {rounds} rounds: sequential {t_seq:.1f}s, plain dask {t_dask:.1f}s, "
        f"accord {t_accord:.1f}s"
    )
    rows_out = [
        ("speedup plain dask / sequential", per_round("sequential", "plain"), t_seq / t_dask, "x", ""),
        (
            "speedup accord / sequential",
            per_round("sequential", "accord"),
            t_seq / t_accord,
            "x",
            "target >= 1.8x",
        ),
        ("accord / plain dask", per_round("accord", "plain"), t_accord / t_dask, "", "target <= 1.10"),
    ]
    for label, ratios, of_means, unit, target in rows_out:
        each = ", ".join(f"{x:.3f}" for x in ratios)
        print(f"{label + ':':34s} median {statistics.median(ratios):.3f}{unit}  ratio of means "
              f"{of_means:.3f}{unit}  (rounds: {each}){'   ' + target if target else ''}")  # fmt: skip
    print(
        f"Prefect overhead per task:         {1000 * (t_accord - t_dask) / n_tasks:.0f} ms "
        f"over {n_tasks} tasks"
    )
    print()
    print("where plain Dask's speedup goes (2 workers on 2 cores):")
    print(f"  fits' own seconds, summed: {fits_seq:6.1f}s in one process, {fits_dask:6.1f}s on the workers "
          f"(each fit {fits_dask / fits_seq:.2f}x slower when two run at once; runs minutes apart, "
          "so this holds the machine's drift too)")  # fmt: skip
    print(f"  cluster start-up:          {mean('plain', 'start'):6.1f}s")
    t_compute = mean("plain", "compute")
    print(f"  scheduling: compute {t_compute:.1f}s vs ideal split {fits_dask / 2:.1f}s "
          f"({t_compute / (fits_dask / 2):.3f})")  # fmt: skip
    print(f"  ceiling from contention alone: {2 * fits_seq / fits_dask:.2f}x on Dask's workers")
    print(f"  the machine's own ceiling:     {2 * fits_seq / fits_pair:.2f}x (two plain processes at once: "
          f"each fit {fits_pair / fits_seq:.2f}x slower)")  # fmt: skip
    print(f"  a Dask worker's own cost:      each fit {worker['fits'] / beside['fits']:.3f}x as long on a "
          "one-worker cluster as in a plain process running at the same time")  # fmt: skip
    print("where accord's time goes beyond plain Dask's:")
    print(f"  fits' own seconds, summed: {fits_accord:6.1f}s on accord's workers "
          f"vs {fits_dask:6.1f}s with plain Dask ({fits_accord / fits_dask:.2f}x)")  # fmt: skip
    before, plain_start = mean("accord", "before_members"), mean("plain", "start")
    print(f"  before the first member task: {before:4.1f}s (flow start, data, cluster start with "
          f"Prefect preloaded; plain Dask's cluster start-up {plain_start:.1f}s)")  # fmt: skip
    print(f"  after the last member task:   {mean('accord', 'after_members'):4.1f}s (weights, publishing, "
          "artifacts, promotion, cluster and flow shutdown)")  # fmt: skip


class FitSeconds(logging.Handler):
    """Sums the fit seconds the flow logs for each member task ("... fitted in %.2f s")."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.total = 0.0

    def emit(self, record: logging.LogRecord) -> None:
        """Add one task's fit seconds."""
        if "fitted in" in str(record.msg) and isinstance(record.args, tuple):
            seconds = record.args[-1]
            assert isinstance(seconds, float), record.args
            self.total += seconds


if __name__ == "__main__":
    main()

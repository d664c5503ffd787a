"""Scaling: wall time and peak memory per worker as rows, members and workers grow.

Rows 10k -> 100k -> 1M (synthetic, read from Parquet), members 3 -> 6 -> 12, workers 1 -> 2,
all through accord's member x fold graph on a fresh LocalCluster per measurement (the
functions the flow's tasks call, submitted with plain Dask so workers can be measured).
Peak memory is each worker's peak RSS above its idle RSS, against its share of the
training table (table bytes / workers). Prints growth exponents (log-log slopes) and the
targets: time no faster than linear in rows, peak memory per worker <= 3x its share,
1 -> 2 workers >= 1.8x.

    python -m bench.scale [--max-rows 1000000]
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from distributed import Client

from accord.config import make_config
from accord.data import read_source
from accord.evaluation import evaluate
from accord.training import prepare
from bench.common import fit_members, local_cluster

BASE = [
    {"kind": "logreg"},
    {"kind": "hist_gb", "params": {"max_iter": 100}},
    {"kind": "xgboost", "params": {"n_estimators": 100}},
]
MORE = [
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


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def _current_rss_mb() -> float:
    import psutil

    return float(psutil.Process().memory_info().rss) / 2**20


def measure(path: Path, members: list[dict[str, Any]], workers: int) -> dict[str, float]:
    """Train every member x fold (3 folds) and refit on a fresh cluster; return time and memory."""
    config = make_config(
        {"data": path.as_uri(), "target": "target", "members": members, "folds": 3, "store": "memory://scale"}
    )
    data = prepare(config)
    share_mb = data.X_train.memory_usage(deep=True).sum() / 2**20 / workers
    with local_cluster(workers) as cluster, Client(cluster) as client:
        idle = client.run(_current_rss_mb)
        start = time.perf_counter()
        oof, refits = fit_members(client, config, data)
        evaluate(data, oof, refits, config.method, config.ensemble_size)
        seconds = time.perf_counter() - start
        peak = client.run(_rss_mb)
    added = max(peak[w] - idle[w] for w in peak)
    return {"seconds": seconds, "peak_mb": added, "share_mb": share_mb, "rows": len(data.y_train)}


def slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of log(y) on log(x)."""
    lx, ly = [math.log(x) for x in xs], [math.log(y) for y in ys]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly, strict=True)) / sum((a - mx) ** 2 for a in lx)


def table(rows: int, tmp: Path) -> Path:
    """A synthetic classification table of `rows` rows as Parquet."""
    frame, _ = read_source(f"synthetic:classification?n_rows={rows}&n_features=20&n_classes=2&seed=0")
    path = tmp / f"rows-{rows}.parquet"
    frame.to_parquet(path, index=False)
    return path


def main() -> None:
    """Run the three sweeps and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-rows", type=int, default=1_000_000)
    args = parser.parse_args()
    sizes = [n for n in (10_000, 100_000, 1_000_000) if n <= args.max_rows]
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        print("rows sweep (3 members x 3 folds + refits, 2 workers)")
        by_rows = []
        for n in sizes:
            r = measure(table(n, tmp), BASE, 2)
            by_rows.append(r)
            ratio = r["peak_mb"] / r["share_mb"]
            print(
                f"  {n:>9,} rows: {r['seconds']:7.1f}s  peak/worker {r['peak_mb']:8.1f} MB  "
                f"share {r['share_mb']:7.1f} MB  ratio {ratio:5.2f}"
            )
        mid = table(20_000, tmp)
        print("members sweep (20k rows, 2 workers)")
        by_members = []
        for m in (3, 6, 12):
            r = measure(mid, (BASE + MORE)[:m], 2)
            by_members.append((m, r["seconds"]))
            print(f"  {m:>2} members: {r['seconds']:7.1f}s")
        print("workers sweep (100k rows, 6 members)")
        big = table(min(100_000, sizes[-1]), tmp)
        one = measure(big, (BASE + MORE)[:6], 1)["seconds"]
        two = measure(big, (BASE + MORE)[:6], 2)["seconds"]
        print(f"  1 worker {one:7.1f}s  2 workers {two:7.1f}s  speedup {one / two:4.2f}x")

    rows_exp = slope([r["rows"] for r in by_rows], [r["seconds"] for r in by_rows])
    members_exp = slope([m for m, _ in by_members], [s for _, s in by_members])
    worst = max(r["peak_mb"] / r["share_mb"] for r in by_rows)
    print()
    print(f"time ~ rows^{rows_exp:.2f}   (target <= 1.00: {'met' if rows_exp <= 1.0 else 'missed'})")
    print(f"time ~ members^{members_exp:.2f}")
    print(f"peak memory per worker / its share of the data, worst: {worst:.2f} (target <= 3: "
          f"{'met' if worst <= 3 else 'missed'})")  # fmt: skip
    print(
        f"speedup 1 -> 2 workers: {one / two:.2f}x (target >= 1.8: {'met' if one / two >= 1.8 else 'missed'})"
    )


if __name__ == "__main__":
    main()

"""What a command costs beyond its work: cold (nothing running) and with the warm stack.

Starts a warm stack (`accord server start`) under a temporary ``ACCORD_HOME`` and, in
rounds, runs each command as a user would (the ``accord`` console script, a process of its
own) once with no stack to find and once with it; the median of the rounds is printed
beside the work itself, measured in the same session in a bare Python process. One untimed
run in each mode comes first: it creates the cold runs' Prefect database (a user's
``.prefect`` has one) and is the stack's workers' first run.

* ``train``: ``accord train`` of one ``logreg`` on a 300-row table (a new seed each time, so
  nothing is cached), end to end, and from the command's start to its first member task
  starting on a worker (read from the Prefect database the run wrote to). The work: a bare
  process that imports pandas and scikit-learn, reads the table and fits the same 5 folds
  and refit.
* ``rerun``: the same command again, every member result cached. Same work.
* ``predict``: ``accord predict`` of 1,000 rows (one chunk: scored in the command's process).
  The work: a bare process that loads the model with `accord.load` and scores the table.
* ``load``: `accord.load` in a new process of a tree-only model (random_forest,
  extra_trees) and of a ``keras_mlp`` model; the stack does not change these. The work: the
  same process importing only the members' libraries (pandas, scikit-learn, skops;
  TensorFlow for Keras).
* Prefect's per-task overhead on the warm cluster: 200 no-op Prefect tasks submitted by a
  flow through accord's task runner, against 200 no-op ``client.submit`` calls on the same
  cluster: (Prefect's wall time − Dask's) / 200.

Targets (issue #38) are printed beside each figure.

    python -m bench.overhead [--rounds 3]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.common import settle

ACCORD = str(Path(sys.executable).parent / "accord")
TASKS = 200

BARE_TRAIN = """
import sys
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
frame = pd.read_csv(sys.argv[1])
X, y = frame.drop(columns="y"), frame["y"]
model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
cross_val_predict(model, X, y, cv=StratifiedKFold(5, shuffle=True, random_state=0), method="predict_proba")
model.fit(X, y)
"""

BARE_PREDICT = """
import sys
import pandas as pd
import accord
model = accord.load(sys.argv[1], weighted_only=True)
frame = pd.read_csv(sys.argv[2])
out = pd.DataFrame(model.predict_proba(frame), columns=[f"proba_{c}" for c in model.classes_])
out.to_csv(sys.argv[3], index=False)
"""

LOAD = "import sys, accord; accord.load(sys.argv[1])"
IMPORT_TREE = "import pandas, sklearn.ensemble, skops.io"
IMPORT_KERAS = "import pandas, sklearn.ensemble, skops.io, tensorflow, keras"

TARGETS = {
    "start -> first member task": ("<= 10 s", "<= 2 s"),
    "train 1 logreg, 300 rows": ("", "<= 5 s"),
    "cached rerun": ("", "<= 3 s"),
    "predict 1,000 rows": ("", "<= 3 s"),
}


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Run `argv` to completion; return its start (epoch seconds), its wall seconds and its stderr."""
    start = time.time()
    t0 = time.perf_counter()
    out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=900)
    seconds = time.perf_counter() - t0
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:3])} exited {out.returncode}:\n{out.stderr[-3000:]}")
    return start, seconds, out.stderr


def first_member_task(database: Path, since: float) -> float:
    """When the first member task (a fold fit or refit) started running, after `since` (epoch seconds)."""
    after = dt.datetime.fromtimestamp(since, dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    with sqlite3.connect(database) as db:
        (first,) = db.execute(
            "SELECT min(start_time) FROM task_run WHERE (name LIKE 'fit-%' OR name LIKE 'refit-%') "
            "AND start_time > ?",
            (after,),
        ).fetchone()
    if first is None:
        raise RuntimeError(f"no member task started after {after} in {database}")
    return dt.datetime.fromisoformat(str(first)).replace(tzinfo=dt.UTC).timestamp()


def python(code: str, *args: str, env: dict[str, str]) -> float:
    """Wall seconds of a new Python process running `code`."""
    return timed([sys.executable, "-c", code, *args], env)[1]


def median(values: list[float]) -> float:
    """The median, or NaN of nothing."""
    return statistics.median(values) if values else float("nan")


def prefect_task_overhead(address: str, api_url: str, home: Path) -> tuple[float, float]:
    """Seconds per task of `TASKS` no-op Prefect tasks and of `TASKS` no-op Dask submits, on `address`."""
    from distributed import Client
    from prefect import flow, task
    from prefect.settings import PREFECT_API_URL, PREFECT_HOME, temporary_settings

    from runtime.runner import AccordDaskTaskRunner

    @task(persist_result=False)
    def noop(i: int) -> int:
        return i

    @flow(persist_result=False)
    def many() -> None:  # as accord's flows submit their tasks
        with AccordDaskTaskRunner(address=address) as runner:
            futures = [runner.submit(noop, {"i": i}) for i in range(TASKS)]
            for f in futures:
                f.result()

    with temporary_settings({PREFECT_API_URL: api_url, PREFECT_HOME: str(home)}):
        many()  # the first: the workers build this flow's settings once
        t0 = time.perf_counter()
        many()
        prefect_s = time.perf_counter() - t0
    with Client(address) as client:
        client.gather([client.submit(abs, -i, pure=False) for i in range(TASKS)])
        t0 = time.perf_counter()
        client.gather([client.submit(abs, -i, pure=False) for i in range(TASKS)])
        dask_s = time.perf_counter() - t0
    return prefect_s / TASKS, dask_s / TASKS


def main() -> None:
    """Run the measurements and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    from sklearn.datasets import load_breast_cancer

    root = Path(tempfile.mkdtemp(prefix="accord-bench-overhead-"))
    store = (root / "registry").as_uri()
    frame = load_breast_cancer(as_frame=True).frame.rename(columns={"target": "y"}).head(300)
    table, scoring = root / "train.csv", root / "score.csv"
    frame.to_csv(table, index=False)
    frame.drop(columns="y").sample(1000, replace=True, random_state=0).to_csv(scoring, index=False)
    base = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "PREFECT_HOME")}
    base["ACCORD_STORE"] = store
    warm_home = root / "warm"
    envs = {
        "cold": {**base, "ACCORD_HOME": str(root / "cold")},
        "warm": {**base, "ACCORD_HOME": str(warm_home)},
    }
    timed([ACCORD, "server", "start", "--workers", "2"], envs["warm"])
    try:
        from runtime.warm import running

        stack = running(warm_home)
        assert stack is not None
        databases = {"warm": warm_home / "prefect" / "prefect.db"}
        results: dict[str, dict[str, list[float]]] = {"cold": {}, "warm": {}}
        train = [ACCORD, "train", "--data", str(table), "--target", "y", "--members", "logreg", "--name", "t"]
        # cold: each command starts a Prefect server on one database (as ./.prefect is for a user)
        envs["cold"]["PREFECT_HOME"] = str(root / "cold-prefect")
        databases["cold"] = root / "cold-prefect" / "prefect.db"
        for env in envs.values():  # not timed: migrates the cold database, readies the stack's workers
            timed([*train, "--seed", "999999"], env)
        for r in range(args.rounds):
            for mode, env in envs.items():
                seed = str(1000 * r + (mode == "warm"))
                settle()
                start, seconds, _ = timed([*train, "--seed", seed], env)
                first = first_member_task(databases[mode], start)
                results[mode].setdefault("start -> first member task", []).append(first - start)
                results[mode].setdefault("train 1 logreg, 300 rows", []).append(seconds)
                settle()
                results[mode].setdefault("cached rerun", []).append(timed([*train, "--seed", seed], env)[1])
                settle()
                predict = [ACCORD, "predict", "--model", f"{store}/t", "--input", str(scoring)]
                out = str(root / "p.csv")
                results[mode].setdefault("predict 1,000 rows", []).append(
                    timed([*predict, "--output", out], env)[1]
                )
        work: dict[str, list[float]] = {"train": [], "predict": []}
        for _ in range(args.rounds):
            settle()
            work["train"].append(python(BARE_TRAIN, str(table), env=base))
            settle()
            work["predict"].append(
                python(BARE_PREDICT, f"{store}/t", str(scoring), str(root / "b.csv"), env=base)
            )
        of = {
            "start -> first member task": median(work["train"]),
            "train 1 logreg, 300 rows": median(work["train"]),
            "cached rerun": median(work["train"]),
            "predict 1,000 rows": median(work["predict"]),
        }
        print(f"\nmedian of {args.rounds} rounds; work = the same in a bare Python process, this session")
        print(
            f"{'':28} {'cold s':>7} {'warm s':>7} {'work s':>7} {'cold/work':>9} {'warm/work':>9}"
            "  target cold | warm"
        )
        for name, work_s in of.items():
            cold, warm = median(results["cold"][name]), median(results["warm"][name])
            tc, tw = TARGETS[name]
            print(
                f"{name:28} {cold:7.2f} {warm:7.2f} {work_s:7.2f} {cold / work_s:9.2f} {warm / work_s:9.2f}"
                f"  {tc or '-':>6} | {tw}"
            )

        timed(
            [
                ACCORD,
                "train",
                "--data",
                "sklearn:breast_cancer",
                "--members",
                "random_forest,extra_trees",
                "--name",
                "trees",
            ],
            envs["warm"],
        )
        timed(
            [ACCORD, "train", "--data", "sklearn:breast_cancer", "--members", "keras_mlp", "--name", "keras"],
            envs["warm"],
        )
        print(f"\n{'new process':28} {'s':>7}  (target: tree-only <= 1 s)")
        loads: list[tuple[str, Callable[[], float]]] = [
            ("load tree-only model", lambda: python(LOAD, f"{store}/trees", env=base)),
            ("  its libraries' imports", lambda: python(IMPORT_TREE, env=base)),
            ("load keras_mlp model", lambda: python(LOAD, f"{store}/keras", env=base)),
            ("  its libraries' imports", lambda: python(IMPORT_KERAS, env=base)),
        ]
        for name, measure in loads:
            times = []
            for _ in range(args.rounds):
                settle()
                times.append(measure())
            print(f"{name:28} {median(times):7.2f}")

        settle()
        per_prefect, per_dask = prefect_task_overhead(
            stack.dask_address, stack.api_url, warm_home / "prefect"
        )
        print(
            f"\nPrefect per task on the warm cluster: {1000 * per_prefect:.1f} ms; Dask client.submit: "
            f"{1000 * per_dask:.1f} ms; Prefect's overhead {1000 * (per_prefect - per_dask):.1f} ms "
            f"(target <= 30 ms), {per_prefect / per_dask:.1f}x Dask's"
        )
    finally:
        from runtime.server import drain_prefect_clients

        drain_prefect_clients()  # this process's flow logs, while the stack's server still takes them
        timed([ACCORD, "server", "stop"], envs["warm"])


if __name__ == "__main__":
    main()

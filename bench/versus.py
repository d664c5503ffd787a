"""accord's presets against AutoGluon at the same time limit, on the same rows and the same 2 cores.

For each suite table (`bench.suite`) and seed, the rows are split once (75% to train,
25% to judge, stratified for classification) and written to CSV; then each contender
trains on the training CSV, as a user would run it, in a process of its own, and
predicts the judged rows:

- accord: ``accord train --preset P --time-limit L`` (its own Prefect server and a
  2-worker LocalCluster; it holds out ``test_size`` of what it is given for its
  published metrics), then ``accord.load`` and ``predict_proba``/``predict``;
- its CV-best member (the member best by cross-validation in that same run);
- AutoGluon (``autogluon.tabular`` 1.6, ``medium_quality`` and ``best_quality`` or as
  given), ``TabularPredictor.fit(presets=..., time_limit=L, num_cpus=2)``, installed by
  this script into its own virtual environment under ``bench/.cache`` (never a
  dependency of accord).

Each judged prediction is scored here, by one function, with log loss (classification)
or RMSE (regression) and accuracy; then per contender the geometric-mean loss ratio to
accord's ``default`` and the cells where ``default`` is at least as good.

    python -m bench.versus [--tables a,b] [--seeds 3] [--limit 120] [--best-limit 300]
        [--presets fast,default,best] [--autogluon medium_quality,best_quality]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from accord.data.dataset import read_source
from accord.ensembling.metrics import score
from bench.suite import CACHE, Table, source_url, tables

AUTOGLUON = "autogluon.tabular[lightgbm,catboost,xgboost]==1.6.*"
AUTOGLUON_VENV = CACHE / "autogluon-venv"
JUDGED = 0.25
ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Cell:
    """One table x seed: its CSVs, the label, the task and the judged rows' labels."""

    table: Table
    seed: int
    train: Path
    test: Path
    label: str
    y_test: pd.Series
    classes: list[Any]  # sorted labels of a classification table; [] for regression


@dataclass
class Outcome:
    """A contender's judged predictions on one cell and the wall seconds of its whole run."""

    prediction: np.ndarray | None  # probabilities in `Cell.classes` order, or values
    seconds: float
    note: str = ""


def autogluon_python() -> Path:
    """The interpreter of AutoGluon's own virtual environment, made and installed on first use."""
    python = AUTOGLUON_VENV / "bin" / "python"
    stamp = AUTOGLUON_VENV / ".installed"
    if stamp.exists():
        return python
    subprocess.run([sys.executable, "-m", "venv", str(AUTOGLUON_VENV)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--upgrade", "pip"], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", AUTOGLUON], check=True)
    stamp.touch()
    return python


def make_cell(table: Table, seed: int, work: Path) -> Cell:
    """Split `table` once for `seed` and write both parts as CSV under `work`."""
    frame, label = read_source(source_url(table), table.target)
    frame = frame.drop(columns=list(table.ignore))
    y = frame[label]
    stratify = y if table.task == "classification" else None
    train, test = train_test_split(frame, test_size=JUDGED, random_state=seed, stratify=stratify)
    where = work / f"{table.name}-{seed}"
    where.mkdir(parents=True, exist_ok=True)
    train.to_csv(where / "train.csv", index=False)
    test.to_csv(where / "test.csv", index=False)
    classes = sorted(y.unique(), key=str) if table.task == "classification" else []
    return Cell(table, seed, where / "train.csv", where / "test.csv", label, test[label], classes)


def run_accord(cell: Cell, preset: str, limit: float, work: Path) -> tuple[Outcome, Outcome]:
    """``accord train`` with `preset` under `limit`; the ensemble's and its CV-best member's outcome."""
    store = (work / "registry").as_uri()
    config = {
        "data": str(cell.train),
        "target": cell.label,
        "task": cell.table.task,
        "preset": preset,
        "time_limit": limit,
        "seed": cell.seed,
        "store": store,
        "name": f"{cell.table.name.replace('_', '-')}-{cell.seed}-{preset}",
        "workers": 2,
    }
    path = work / f"{config['name']}.json"
    path.write_text(json.dumps(config))
    accord_cli = Path(sys.executable).parent / "accord"
    start = time.perf_counter()
    done = subprocess.run(
        [str(accord_cli), "train", "--config", str(path), "--json"], capture_output=True, text=True
    )
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        note = f"failed: {done.stderr.strip().splitlines()[-1] if done.stderr.strip() else done.returncode}"
        return Outcome(None, seconds, note), Outcome(None, seconds, note)
    summary = json.loads(done.stdout)
    import accord

    model = accord.load(summary["ref"])
    X = pd.read_csv(cell.test).drop(columns=[cell.label])
    best = summary["metrics"]["baselines"]["best_cv_member"]["member"]
    members = model.member_predictions(X)
    if cell.table.task == "classification":
        order = [list(map(str, model.classes_)).index(str(c)) for c in cell.classes]
        ensemble, member = model.predict_proba(X)[:, order], members[best][:, order]
    else:
        ensemble, member = model.predict(X), members[best]
    left = f"; left out {sorted(summary['left_out'])}" if summary["left_out"] else ""
    return Outcome(ensemble, seconds, left.lstrip("; ")), Outcome(member, seconds, best)


def run_autogluon(cell: Cell, presets: str, limit: float, work: Path) -> Outcome:
    """AutoGluon's ``fit(presets, time_limit=limit, num_cpus=2)`` in its own venv; its judged predictions."""
    if cell.table.task == "regression":
        problem = "regression"
    else:
        problem = "binary" if len(cell.classes) == 2 else "multiclass"
    out = Path(tempfile.mkdtemp(dir=work, prefix=f"ag-{cell.table.name}-"))
    script = ROOT / "bench" / "autogluon_fit.py"
    args = [str(cell.train), str(cell.test), cell.label, problem, presets, str(limit), str(out)]
    start = time.perf_counter()
    done = subprocess.run([str(autogluon_python()), str(script), *args], capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        tail = done.stderr.strip().splitlines()[-1:] or [str(done.returncode)]
        return Outcome(None, seconds, f"failed: {tail[0]}")
    pred = pd.read_csv(out / "predictions.csv")
    run = json.loads((out / "run.json").read_text())
    if problem == "regression":
        return Outcome(pred["prediction"].to_numpy(), seconds, run["best"])
    columns = {str(c): c for c in pred.columns}
    return Outcome(pred[[columns[str(c)] for c in cell.classes]].to_numpy(), seconds, run["best"])


def judged(cell: Cell, outcome: Outcome) -> dict[str, float]:
    """Log loss (or RMSE) and accuracy of `outcome` on the judged rows; empty if it failed."""
    if outcome.prediction is None:
        return {}
    if cell.table.task == "regression":
        rmse = score("regression", cell.y_test.to_numpy(float), outcome.prediction)["rmse"]
        return {"loss": float(rmse or 0.0)}
    index = {str(c): i for i, c in enumerate(cell.classes)}
    y = np.array([index[str(v)] for v in cell.y_test])
    probs = np.clip(outcome.prediction, 1e-15, 1.0)
    metrics = score("classification", y, probs / probs.sum(axis=1, keepdims=True), len(cell.classes))
    return {"loss": float(metrics["log_loss"] or 0.0), "accuracy": float(metrics["accuracy"] or 0.0)}


def contenders(args: argparse.Namespace) -> dict[str, Callable[[Cell, Path], dict[str, Outcome]]]:
    """Each contender's name and how it runs on a cell (the accord runs also give the CV-best member)."""
    runs: dict[str, Callable[[Cell, Path], dict[str, Outcome]]] = {}
    for preset in args.presets.split(","):
        limit = args.best_limit if preset == "best" else args.limit

        def accord_run(
            cell: Cell, work: Path, preset: str = preset, limit: float = limit
        ) -> dict[str, Outcome]:
            ensemble, member = run_accord(cell, preset, limit, work)
            return {f"accord_{preset}": ensemble, f"cv_best_{preset}": member}

        runs[f"accord_{preset}"] = accord_run
    for presets in filter(None, args.autogluon.split(",")):
        limit = args.best_limit if presets.startswith("best") else args.limit

        def ag_run(
            cell: Cell, work: Path, presets: str = presets, limit: float = limit
        ) -> dict[str, Outcome]:
            return {f"ag_{presets}": run_autogluon(cell, presets, limit, work)}

        runs[f"ag_{presets}"] = ag_run
    return runs


def summary(rows: list[dict[str, Any]], against: str) -> None:
    """Per contender: geometric-mean loss ratio of `against` to it, and cells `against` wins, by task."""
    names = sorted({k for r in rows for k in r["loss"]} - {against})
    print(f"\n{against}'s judged loss over each contender's (geometric mean; < 1: {against} is better)")
    for task in ("classification", "regression", None):
        cells = [r for r in rows if task is None or r["task"] == task]
        for name in names:
            pairs = [
                (r["loss"][against], r["loss"][name])
                for r in cells
                if against in r["loss"] and name in r["loss"]
            ]
            if not pairs:
                continue
            geo = statistics.geometric_mean(a / b for a, b in pairs)
            wins = sum(a <= b for a, b in pairs)
            where = task or "all"
            print(f"  {where:<14} vs {name:<24} {geo:.3f}   as good or better on {wins}/{len(pairs)} cells")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", default=None, help="comma-separated suite tables (default: all)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument(
        "--limit", type=float, default=120.0, help="seconds for fast, default and medium_quality"
    )
    parser.add_argument("--best-limit", type=float, default=300.0, help="seconds for best and best_quality")
    parser.add_argument("--presets", default="fast,default,best")
    parser.add_argument(
        "--autogluon", default="medium_quality,best_quality", help="AutoGluon presets ('' for none)"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write every row to this file")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    runs = contenders(args)
    if any(name.startswith("ag_") for name in runs):
        autogluon_python()  # install before any clock starts
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="accord-versus-") as tmp:
        work = Path(tmp)
        for table in tables(names=args.tables):
            for seed in range(args.seeds):
                cell = make_cell(table, seed, work)
                row: dict[str, Any] = {"table": table.name, "task": table.task, "seed": seed}
                row.update(loss={}, accuracy={}, seconds={}, note={})
                for run in runs.values():
                    for name, outcome in run(cell, work).items():
                        metrics = judged(cell, outcome)
                        if metrics:
                            row["loss"][name] = metrics["loss"]
                            if "accuracy" in metrics:
                                row["accuracy"][name] = metrics["accuracy"]
                        row["seconds"][name] = outcome.seconds
                        row["note"][name] = outcome.note
                rows.append(row)
                cells = "  ".join(
                    f"{n} {row['loss'].get(n, float('nan')):.4f} ({row['seconds'][n]:.0f}s)"
                    for n in row["seconds"]
                )
                print(f"{table.name:<15} seed {seed}  {cells}", flush=True)
                failed = {n: why for n, why in row["note"].items() if why.startswith("failed")}
                if failed:
                    print(f"  {failed}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    for against in ("accord_default", "accord_best"):
        if any(against in r["loss"] for r in rows):
            summary(rows, against)


if __name__ == "__main__":
    main()

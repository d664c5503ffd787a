"""Derive accord's presets (accord/portfolio.yaml) from out-of-fold predictions on the bench suite.

Every candidate configuration is fitted on every fold of every table (on a LocalCluster,
as a run fits them); then, per task, configurations are chosen greedily: each step adds
the one that most lowers the geometric mean, over tables, of the Caruana ensemble's
out-of-fold loss divided by the table's best single candidate's. That order is the portfolio; the
presets are its prefixes (`PRESET_SIZES`). The table of candidates' losses and
seconds, and each step's gain, are printed.

    python -m bench.portfolio [--folds 3] [--tables a,b] [--write]   # --write replaces accord/portfolio.yaml
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import yaml
from distributed import Client

from accord.config import make_config
from accord.ensembling.losses import loss
from accord.ensembling.weights import caruana, weighted_sum
from accord.training.fit import fit_fold, out_of_fold
from accord.training.prepare import prepare
from accord.training.schedule import task_key, work_order
from accord.types import Task
from bench.common import local_cluster
from bench.suite import Table, tables

# (name, kind, classification params, regression params)
CANDIDATES: list[tuple[str, str, dict[str, Any], dict[str, Any]]] = [
    ("logreg", "logreg", {}, {}),
    ("logreg-strong", "logreg", {"C": 0.1}, {"alpha": 10.0}),
    ("logreg-weak", "logreg", {"C": 10.0}, {"alpha": 0.1}),
    ("knn", "knn", {}, {}),
    (
        "knn-5-distance",
        "knn",
        {"n_neighbors": 5, "weights": "distance"},
        {"n_neighbors": 5, "weights": "distance"},
    ),
    (
        "knn-40-distance",
        "knn",
        {"n_neighbors": 40, "weights": "distance"},
        {"n_neighbors": 40, "weights": "distance"},
    ),
    ("random_forest", "random_forest", {}, {}),
    ("random_forest-half", "random_forest", {"max_features": 0.5}, {"max_features": 0.5}),
    ("extra_trees", "extra_trees", {}, {}),
    (
        "extra_trees-half-leaf3",
        "extra_trees",
        {"max_features": 0.5, "min_samples_leaf": 3},
        {"max_features": 0.5, "min_samples_leaf": 3},
    ),
    ("hist_gb", "hist_gb", {}, {}),
    (
        "hist_gb-fast-63",
        "hist_gb",
        {"learning_rate": 0.1, "max_leaf_nodes": 63, "max_iter": 300},
        {"learning_rate": 0.1, "max_leaf_nodes": 63, "max_iter": 300},
    ),
    (
        "hist_gb-d3-l2",
        "hist_gb",
        {"max_depth": 3, "l2_regularization": 1.0, "max_iter": 400},
        {"max_depth": 3, "l2_regularization": 1.0, "max_iter": 400},
    ),
    ("xgboost", "xgboost", {}, {}),
    (
        "xgboost-deep",
        "xgboost",
        {
            "max_depth": 8,
            "min_child_weight": 3,
            "learning_rate": 0.03,
            "n_estimators": 500,
            "colsample_bytree": 0.6,
        },
        {
            "max_depth": 8,
            "min_child_weight": 3,
            "learning_rate": 0.03,
            "n_estimators": 500,
            "colsample_bytree": 0.6,
        },
    ),
    (
        "xgboost-stumps",
        "xgboost",
        {"max_depth": 2, "learning_rate": 0.1, "n_estimators": 400, "reg_lambda": 5.0},
        {"max_depth": 2, "learning_rate": 0.1, "n_estimators": 400, "reg_lambda": 5.0},
    ),
    ("keras_mlp", "keras_mlp", {}, {}),
    (
        "keras_mlp-wide",
        "keras_mlp",
        {"hidden_units": [256, 128], "dropout": 0.3, "learning_rate": 3e-4},
        {"hidden_units": [256, 128], "dropout": 0.3, "learning_rate": 3e-4},
    ),
]

PRESET_SIZES = {"fast": 3, "default": 7, "best": len(CANDIDATES)}
PORTFOLIO = Path(__file__).resolve().parents[1] / "accord" / "portfolio.yaml"


def members(task: Task) -> list[dict[str, Any]]:
    """The candidates as member specs for `task`."""
    return [
        {"name": name, "kind": kind, "params": cls if task == "classification" else reg}
        for name, kind, cls, reg in CANDIDATES
    ]


def out_of_fold_table(client: Client, table: Table, folds: int, seed: int) -> dict[str, Any]:
    """Every candidate's out-of-fold predictions on one table, and its fold seconds."""
    values = {**table.config_values(), "task": table.task, "members": members(table.task)}
    config = make_config({**values, "folds": folds, "seed": seed})
    data = prepare(config)
    staged = client.scatter(data, broadcast=True)
    fold_work = [(s, k) for s, k in work_order(data.members, data) if k is not None]
    futures = {
        (s.label, k): client.submit(
            fit_fold, s, staged, k, seed, key=task_key(s, k), priority=len(fold_work) - i
        )
        for i, (s, k) in enumerate(fold_work)
    }
    results = {key: f.result() for key, f in futures.items()}
    names = [s.label for s in data.members]
    oof = {n: out_of_fold(data, [results[(n, k)] for k in range(folds)]) for n in names}
    seconds = {n: sum(results[(n, k)].seconds for k in range(folds)) for n in names}
    return {"y": data.y_train, "oof": oof, "seconds": seconds, "task": data.task}


def ensemble_loss(table: dict[str, Any], chosen: list[str]) -> float:
    """Out-of-fold loss of the Caruana ensemble of `chosen` on one table.

    Without the temperature a run fits after: Caruana's selection minimises the loss
    before it, and a greedy step scored after it chases the temperature's noise.
    """
    preds = [table["oof"][n] for n in chosen]
    task, y = table["task"], table["y"]
    return loss(task, y, weighted_sum(preds, caruana(preds, y, task)))


def greedy_order(tables: list[dict[str, Any]], names: list[str]) -> list[tuple[str, float]]:
    """Names in the order that most lowers the ensemble's loss over the tables, with each step's value.

    The value is the geometric mean over tables of the ensemble's loss over the table's best
    single candidate's, so that no one table's scale decides.
    """
    best_single = [min(loss(t["task"], t["y"], t["oof"][n]) for n in names) for t in tables]
    order: list[tuple[str, float]] = []
    left = list(names)
    while left:
        scored = []
        for name in left:
            chosen = [n for n, _ in order] + [name]
            relative = [ensemble_loss(t, chosen) / b for t, b in zip(tables, best_single, strict=True)]
            scored.append((float(np.exp(np.mean(np.log(relative)))), name))
        value, name = min(scored)
        order.append((name, value))
        left.remove(name)
    return order


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--write", action="store_true", help="replace accord/portfolio.yaml")
    parser.add_argument("--tables", default=None, help="comma-separated suite tables (default: all)")
    args = parser.parse_args()
    start = time.perf_counter()
    document: dict[str, Any] = {"order": {}, "presets": PRESET_SIZES}
    with local_cluster(2) as cluster, Client(cluster) as client:
        for task in ("classification", "regression"):
            suite = tables(task, args.tables)
            fitted = []
            for table in suite:
                t0 = time.perf_counter()
                fitted.append(out_of_fold_table(client, table, args.folds, args.seed))
                print(f"{task} {table.name}: {time.perf_counter() - t0:.0f} s", flush=True)
            names = [name for name, *_ in CANDIDATES]
            print(f"\n{task}: candidate out-of-fold loss / table's best single, and fold seconds")
            for name in names:
                rel = [loss(t["task"], t["y"], t["oof"][name]) for t in fitted]
                best = [min(loss(t["task"], t["y"], t["oof"][n]) for n in names) for t in fitted]
                secs = sum(t["seconds"][name] for t in fitted)
                print(
                    f"  {name:24s} "
                    + " ".join(f"{r / b:6.3f}" for r, b in zip(rel, best, strict=True))
                    + f"  {secs:7.1f} s"
                )
            order = greedy_order(fitted, names)
            print(f"\n{task}: greedy portfolio order (mean ensemble loss / best single after each step)")
            for i, (name, value) in enumerate(order, 1):
                print(f"  {i:2d}. {name:24s} {value:.4f}")
            by_name = {m["name"]: m for m in members(task)}
            document["order"][task] = [by_name[name] for name, _ in order]
    print(f"\nderived in {time.perf_counter() - start:.0f} s")
    if args.write:
        listed = ", ".join(t.name for t in tables(None, args.tables))
        header = (
            f"# Written by `python -m bench.portfolio --write` on {dt.date.today()} "
            f"({args.folds} folds, seed {args.seed}, tables: {listed}).\n"
            "# Data, not code: rerun the script rather than edit it. Presets are prefixes of each order.\n"
        )
        PORTFOLIO.write_text(header + yaml.safe_dump(document, sort_keys=False, width=120))
        print(f"wrote {PORTFOLIO}")


if __name__ == "__main__":
    main()

"""Prediction: a loaded ensemble predicting only its weighted members against predicting every member.

Trains the default members on a synthetic table (in this process), fits caruana weights,
publishes the version to memory:// and loads it back as a user would. Then, alternating
in rounds on the same scoring table, it times:

* every member: ``rule.combine`` over `Ensemble.member_predictions` (what `predict_proba`
  computed before it skipped members at weight 0);
* `Ensemble.predict_proba`, which predicts only the members the rule reads.

Prints the members at weight 0 and each member's own prediction time, the speedup
(median over rounds and ratio of means), and whether the two give the same numbers to
the bit. The speedup is what the weights leave out: none when every weight is above 0.

    python -m bench.predict [--rows 20000] [--score-rows 200000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # one core, as on a Dask worker

import numpy as np
import pandas as pd

import accord
from accord.config import make_config
from accord.ensemble import Ensemble
from accord.evaluation import evaluate
from accord.publishing import publish, version_payload
from accord.store.registry import Registry
from accord.training import fit_all, prepare

STORE = "memory://bench-predict"


def published(rows: int) -> tuple[Ensemble, pd.DataFrame]:
    """The default members trained on `rows` synthetic rows, published and loaded; and the test split."""
    source = f"synthetic:classification?n_rows={rows}&n_features=20&n_classes=3&seed=0"
    config = make_config({"data": source, "folds": 3, "store": STORE, "name": "predict"})
    data = prepare(config)
    oof, refits = fit_all(data, config.seed)
    report = evaluate(data, oof, refits, config.method, config.ensemble_size)
    files, manifest = version_payload(data, refits, report, config=config.model_dump(mode="json"))
    return accord.load(publish(Registry(STORE), config.name, files, manifest)), data.X_test


def every_member(model: Ensemble, X: pd.DataFrame) -> np.ndarray:
    """The baseline: every member predicted, those at weight 0 included, then combined."""
    return model.rule.combine(list(model.member_predictions(X).values()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20000, help="rows of the training table")
    parser.add_argument("--score-rows", type=int, default=200000, help="rows scored in each timing")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    model, X_test = published(args.rows)
    X = X_test.sample(args.score_rows, replace=True, random_state=0).reset_index(drop=True)
    weights = model.weights or {}
    conformed = model.schema.conform(X)
    print(f"{len(model.members)} members trained on {args.rows} rows; scoring {len(X)} rows, one thread")
    for name, member in model.members.items():
        start = time.perf_counter()
        member.predict(conformed)
        took = time.perf_counter() - start
        print(f"  {name:<14} weight {weights.get(name, 0.0):.3f}  predict {took:6.2f} s")
    seconds: dict[str, list[float]] = {"every": [], "weighted": []}
    outputs: dict[str, np.ndarray] = {}
    runs = {"every": lambda: every_member(model, X), "weighted": lambda: model.predict_proba(X)}
    for r in range(args.rounds):
        for kind in ("every", "weighted") if r % 2 == 0 else ("weighted", "every"):
            start = time.perf_counter()
            outputs[kind] = runs[kind]()
            seconds[kind].append(time.perf_counter() - start)
    ratios = [a / b for a, b in zip(seconds["every"], seconds["weighted"], strict=True)]
    zero = [n for n, w in weights.items() if w == 0]
    print(f"members at weight 0: {', '.join(zero) or 'none'}")
    for kind in ("every", "weighted"):
        runs_s = ", ".join(f"{s:.2f}" for s in seconds[kind])
        print(f"  {kind:<8} predict_proba {statistics.median(seconds[kind]):6.2f} s (median; {runs_s})")
    mean_ratio = statistics.fmean(seconds["every"]) / statistics.fmean(seconds["weighted"])
    print(f"  speedup {statistics.median(ratios):.2f}x (median; ratio of means {mean_ratio:.2f}x)")
    print(f"  same probabilities to the bit: {np.array_equal(outputs['every'], outputs['weighted'])}")


if __name__ == "__main__":
    main()

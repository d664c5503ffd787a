"""Prediction: a loaded ensemble using only its weighted members against using every member.

Trains the default members on a synthetic table (in this process), fits caruana weights,
publishes the version to memory:// and loads it back as a user would. Then, alternating
in rounds, it times:

* loading: `accord.load` (every member deserialised) against
  ``accord.load(..., weighted_only=True)`` (members at weight 0 verified, not loaded);
* predicting the same scoring table: ``rule.combine`` over `Ensemble.member_predictions`
  (every member: what `predict_proba` computed before it skipped members at weight 0)
  against `Ensemble.predict_proba`, which predicts only the members the rule reads.

Prints the members at weight 0 and each member's own prediction time, the speedups
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
from accord.ensembling.ensemble import Ensemble
from accord.ensembling.evaluation import evaluate
from accord.registry.publishing import publish, version_payload
from accord.registry.store import Registry
from accord.training.fit import fit_all
from accord.training.prepare import prepare
from bench.common import alternating, speedup

STORE = "memory://bench-predict"


def published(rows: int) -> tuple[str, pd.DataFrame]:
    """The default members trained on `rows` synthetic rows and published: the reference and test split."""
    source = f"synthetic:classification?n_rows={rows}&n_features=20&n_classes=3&seed=0"
    config = make_config({"data": source, "folds": 3, "store": STORE, "name": "predict"})
    data = prepare(config)
    oof, refits = fit_all(data, config.seed)
    report = evaluate(data, oof, refits, config.method, config.ensemble_size)
    files, manifest = version_payload(data, refits, report, config=config.model_dump(mode="json"))
    return publish(Registry(STORE), config.model_name, files, manifest), data.X_test


def every_member(model: Ensemble, X: pd.DataFrame) -> np.ndarray:
    """The baseline: every member predicted, those at weight 0 included, then combined."""
    return model.rule.combine(list(model.member_predictions(X).values()))


def report(what: str, seconds: dict[str, list[float]]) -> None:
    """Print each callable's median seconds and the first's over the second's as a speedup."""
    base, new = list(seconds)
    for kind in (base, new):
        runs_s = ", ".join(f"{s:.2f}" for s in seconds[kind])
        print(f"  {what} {kind:<14} {statistics.median(seconds[kind]):6.2f} s (median; {runs_s})")
    print(f"  {what} {speedup(seconds[base], seconds[new])}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20000, help="rows of the training table")
    parser.add_argument("--score-rows", type=int, default=200000, help="rows scored in each timing")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    ref, X_test = published(args.rows)
    loads, loaded = alternating(
        {"every": lambda: accord.load(ref), "weighted_only": lambda: accord.load(ref, weighted_only=True)},
        args.rounds,
    )
    model = loaded["every"]
    X = X_test.sample(args.score_rows, replace=True, random_state=0).reset_index(drop=True)
    weights = model.weights or {}
    conformed = model.schema.conform(X)
    print(f"{len(model.members)} members trained on {args.rows} rows; scoring {len(X)} rows, one thread")
    for name, member in model.members.items():
        start = time.perf_counter()
        member.predict(conformed)
        took = time.perf_counter() - start
        print(f"  {name:<14} weight {weights.get(name, 0.0):.3f}  predict {took:6.2f} s")
    zero = [n for n, w in weights.items() if w == 0]
    print(f"members at weight 0: {', '.join(zero) or 'none'}")
    report("load", loads)
    predicts, outputs = alternating(
        {"every": lambda: every_member(model, X), "weighted": lambda: model.predict_proba(X)}, args.rounds
    )
    report("predict_proba", predicts)
    same = np.array_equal(outputs["every"], outputs["weighted"])
    lean = np.array_equal(loaded["weighted_only"].predict_proba(X), outputs["weighted"])
    print(f"  same probabilities to the bit: {same}; from the weighted_only load too: {lean}")


if __name__ == "__main__":
    main()

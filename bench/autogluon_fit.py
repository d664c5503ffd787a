"""Fit AutoGluon on a training CSV and write its test predictions: run by bench.versus in AutoGluon's venv.

This file imports nothing of accord: it runs under the interpreter of the virtual
environment that `bench.versus` makes for AutoGluon (never a dependency of accord).

    python bench/autogluon_fit.py TRAIN.csv TEST.csv LABEL PROBLEM PRESETS SECONDS OUT_DIR

PROBLEM is binary, multiclass or regression. OUT_DIR receives ``predictions.csv`` (class
probabilities with the labels as columns, or one ``prediction`` column) and ``run.json``
(seconds spent in ``fit`` and in ``predict``, the models trained, AutoGluon's version).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def main() -> None:
    train_csv, test_csv, label, problem, presets, seconds, out = sys.argv[1:8]
    import pandas as pd
    from autogluon.tabular import TabularPredictor, __version__

    train, test = pd.read_csv(train_csv), pd.read_csv(test_csv)
    metric = "root_mean_squared_error" if problem == "regression" else "log_loss"
    out_dir = Path(out)
    start = time.perf_counter()
    predictor = TabularPredictor(
        label=label, problem_type=problem, eval_metric=metric, path=str(out_dir / "models"), verbosity=0
    ).fit(train, presets=presets, time_limit=float(seconds), num_cpus=2, num_gpus=0)
    fitted = time.perf_counter() - start
    features = test.drop(columns=[label])
    start = time.perf_counter()
    if problem == "regression":
        pred = pd.DataFrame({"prediction": predictor.predict(features)})
    else:
        pred = predictor.predict_proba(features)
    predicted = time.perf_counter() - start
    pred.to_csv(out_dir / "predictions.csv", index=False)
    run = {
        "fit_seconds": fitted,
        "predict_seconds": predicted,
        "models": list(predictor.model_names()),
        "best": predictor.model_best,
        "version": __version__,
    }
    (out_dir / "run.json").write_text(json.dumps(run))


if __name__ == "__main__":
    main()

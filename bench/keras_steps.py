"""Keras dispatch: batches per call into TensorFlow (`steps_per_execution`) against one per call.

Fits the same Keras member on the same rows with `STEPS_PER_EXECUTION` at 1 (Keras'
default: one Python round trip per batch) and at accord's value, alternating in one
process with one TensorFlow thread (as on a Dask worker), and prints:

* the fit seconds of each and their ratio (median over rounds and ratio of means);
* whether the two trained the same network: the epochs early stopping ran, the held-out
  predictions (must be equal to the bit) and their log loss or RMSE.

    python -m bench.keras_steps [--rows 20000] [--rounds 3] [--kinds keras_mlp,keras_cnn]
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

from accord.config import make_config
from accord.data.split import Prepared
from accord.ensembling.losses import loss as held_out_loss
from accord.members import keras_kind, member_class
from accord.training.prepare import prepare
from bench.common import alternating, speedup

SOURCES = {
    "keras_mlp": "synthetic:classification?n_rows={rows}&n_features=20&n_classes=3&seed=0",
    "keras_cnn": "sklearn:digits",
}


def fit_once(kind: str, data: Prepared, steps: int, epochs: int) -> Any:
    """A member of `kind` fitted with `steps` batches per call."""
    keras_kind.STEPS_PER_EXECUTION = steps
    member = member_class(kind)(data.task, {"epochs": epochs}, n_classes=data.n_classes, seed=0)
    return member.fit(data.X_train, data.y_train, data.schema)


def compare(kind: str, rows: int, rounds: int, epochs: int) -> None:
    """Time `kind` at one step per call and at accord's value, alternating; print ratios and equality."""
    data = prepare(make_config({"data": SOURCES[kind].format(rows=rows), "store": "memory://unused"}))
    many_steps = keras_kind.STEPS_PER_EXECUTION
    fit_once(kind, data, 1, 1)  # TensorFlow's one-off start-up outside the timings
    seconds, fitted = alternating(
        {steps: functools.partial(fit_once, kind, data, steps, epochs) for steps in (1, many_steps)}, rounds
    )
    keras_kind.STEPS_PER_EXECUTION = many_steps
    preds = {s: m.predict(data.X_test) for s, m in fitted.items()}
    epochs_run = {s: len(m.model_.history.history["loss"]) for s, m in fitted.items()}
    print(f"{kind}: {len(data.X_train)} training rows, {epochs} epochs at most, {rounds} rounds")
    for steps in (1, many_steps):
        loss = held_out_loss(data.task, data.y_test, preds[steps])
        print(
            f"  steps_per_execution={steps:>3}: fit {statistics.median(seconds[steps]):6.2f} s (median; "
            f"{', '.join(f'{s:.2f}' for s in seconds[steps])}), epochs run {epochs_run[steps]}, "
            f"held-out loss {loss:.5f}"
        )
    print(f"  {speedup(seconds[1], seconds[many_steps])}")
    same, same_epochs = np.array_equal(preds[1], preds[many_steps]), epochs_run[1] == epochs_run[many_steps]
    print(f"  same epochs: {same_epochs}; same held-out predictions to the bit: {same}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20000, help="rows of the synthetic table (keras_mlp)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=20, help="epochs at most (early stopping may end it)")
    parser.add_argument("--kinds", default="keras_mlp,keras_cnn")
    args = parser.parse_args()
    keras_kind.import_keras(1)  # one TensorFlow thread, as each Dask worker runs it
    for kind in args.kinds.split(","):
        compare(kind, args.rows, args.rounds, args.epochs)


if __name__ == "__main__":
    main()

"""Preparing a run: a precheck's result is handed to the run's own prepare once, if nothing changed."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from accord.config import make_config
from accord.training.prepare import precheck, prepare


def _config(data: str, **extra):
    return make_config({"data": data, "target": "y", "members": [{"kind": "logreg"}], "folds": 2, **extra})


def _table(path):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=60), "y": np.tile(["a", "b"], 30)})
    frame.to_csv(path, index=False)


def test_a_prechecked_run_is_prepared_once(tmp_path):
    path = tmp_path / "t.csv"
    _table(path)
    config = _config(path.as_uri())
    checked = precheck(config)
    assert prepare(config) is checked  # handed over: not read again
    assert prepare(config) is not checked  # taken once; a later run reads the data itself


def test_a_precheck_is_not_used_for_other_options_or_a_changed_file(tmp_path):
    path = tmp_path / "t.csv"
    _table(path)
    checked = precheck(_config(path.as_uri()))
    assert prepare(_config(path.as_uri(), seed=1)) is not checked
    checked = precheck(_config(path.as_uri()))
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))  # rewritten since
    again = prepare(_config(path.as_uri()))
    assert again is not checked
    assert len(again.y_train) == len(checked.y_train)


def test_bundled_data_is_handed_over_by_its_options():
    config = make_config({"data": "sklearn:iris", "members": [{"kind": "logreg"}], "folds": 2})
    checked = precheck(config)
    assert prepare(config) is checked

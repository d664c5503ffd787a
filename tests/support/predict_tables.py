"""Tables that the prediction tests score."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from accord.data.dataset import read_source

SCORE = "synthetic:classification?n_rows=450&n_features=5&n_categorical=1&missing=0.05&n_classes=3&seed=9"


@pytest.fixture(scope="module")
def table(tmp_path_factory) -> tuple[pd.DataFrame, Path]:
    """Rows to score (no target) with an id column, as Parquet in row groups of 100 rows."""
    frame, target = read_source(SCORE)
    frame = frame.drop(columns=[target])
    frame.insert(0, "id", np.arange(len(frame)) + 1000)
    path = tmp_path_factory.mktemp("score") / "rows.parquet"
    frame.to_parquet(path, row_group_size=100, index=False)
    return frame, path

"""Prediction output written whole: a failure while writing leaves nothing."""

from __future__ import annotations

import pandas as pd
import pytest

from accord.data.output import OutputWriter


def test_a_failure_while_writing_leaves_no_output(tmp_path):
    output = tmp_path / "pred.parquet"
    with pytest.raises(RuntimeError), OutputWriter(output.as_uri(), {"model": "m"}) as out:
        out.write(pd.DataFrame({"prediction": [1, 2]}))
        raise RuntimeError("worker lost")
    assert not output.exists() and list(tmp_path.iterdir()) == []

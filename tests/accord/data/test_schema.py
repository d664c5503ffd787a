"""The input schema: conforming a table reorders its columns and refuses a mismatch with the diff."""

from __future__ import annotations

import pytest

from accord.data.dataset import load_dataset
from accord.data.schema import Schema
from accord.errors import SchemaError


def test_schema_conform_reorders_and_refuses_with_a_diff() -> None:
    ds = load_dataset("synthetic:classification?n_rows=50&n_features=3&n_categorical=1")
    schema = Schema.from_dict(ds.schema.to_dict())
    X = ds.X
    reordered = X[list(reversed(X.columns))]
    assert list(schema.conform(reordered).columns) == list(X.columns)
    with pytest.raises(SchemaError, match=r"missing columns: \['x1'\]"):
        schema.conform(X.drop(columns=["x1"]))
    with pytest.raises(SchemaError, match=r"unexpected columns: \['extra'\]"):
        schema.conform(X.assign(extra=1.0))
    with pytest.raises(SchemaError, match=r"column 'x1': expected numeric \(float64\), found"):
        schema.conform(X.assign(x1="text"))
    with pytest.raises(SchemaError, match=r"column 'c0': expected categorical"):
        schema.conform(X.assign(c0=1.0))

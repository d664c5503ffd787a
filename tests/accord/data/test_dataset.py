"""Data sources: task inference, validation of tables and targets, refusals that name the column."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from accord.data.dataset import infer_task, load_dataset
from accord.errors import DataError


@pytest.mark.parametrize(
    ("source", "task", "n_classes"),
    [
        ("sklearn:iris", "classification", 3),
        ("sklearn:wine", "classification", 3),
        ("sklearn:breast_cancer", "classification", 2),
        ("sklearn:digits", "classification", 10),
        ("sklearn:diabetes", "regression", 0),
        ("synthetic:classification?n_rows=200&n_features=5&n_classes=4&seed=3", "classification", 4),
        ("synthetic:regression?n_rows=150&n_features=4&noise=2", "regression", 0),
    ],
)
def test_sources_infer_task_and_schema(source: str, task: str, n_classes: int) -> None:
    ds = load_dataset(source)
    assert ds.task == task
    assert len(ds.classes) == n_classes
    assert ds.schema.names == list(ds.X.columns)
    assert ds.schema.target == "target"
    assert len(ds.fingerprint) == 64


def test_synthetic_is_seeded_and_has_categoricals_and_missing() -> None:
    src = "synthetic:classification?n_rows=300&n_features=6&n_categorical=2&missing=0.1&seed=7"
    a, b = load_dataset(src), load_dataset(src)
    assert a.fingerprint == b.fingerprint
    assert a.schema.categorical == ["c0", "c1"]
    assert a.X.isna().to_numpy().mean() == pytest.approx(0.1, abs=0.03)
    other = load_dataset(src.replace("seed=7", "seed=8"))
    assert other.fingerprint != a.fingerprint


def _csv(tmp_path: Path, frame: pd.DataFrame, name: str = "t.csv") -> str:
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return path.as_uri()


def test_csv_and_parquet_with_strings_and_missing(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "age": rng.normal(40, 10, 120),
            "city": rng.choice(["paris", "rome", None], 120),
            "species": rng.choice(["adelie", "gentoo"], 120),
        }
    )
    frame.loc[::7, "age"] = np.nan
    csv = load_dataset(_csv(tmp_path, frame), target="species")
    pq_path = tmp_path / "t.parquet"
    frame.to_parquet(pq_path)
    pq = load_dataset(pq_path.as_uri(), target="species")
    for ds in (csv, pq):
        assert ds.task == "classification"
        assert ds.classes == ("adelie", "gentoo")
        assert ds.schema.categorical == ["city"]
        assert ds.schema.numeric == ["age"]
        assert ds.X["age"].isna().sum() == frame["age"].isna().sum()


def test_task_inference() -> None:
    assert infer_task(pd.Series([0, 1, 2, 1])) == "classification"
    assert infer_task(pd.Series(["a", "b"])) == "classification"
    assert infer_task(pd.Series([0.5, 1.25, 3.0])) == "regression"
    assert infer_task(pd.Series(np.arange(100))) == "regression"


@pytest.mark.parametrize(
    ("frame", "target", "match"),
    [
        (
            pd.DataFrame({"x": [1.0, 2.0], "y": [0, 1]}),
            "label",
            r"target column 'label' not found.*\['x', 'y'\]",
        ),
        (pd.DataFrame({"x": [], "y": []}), "y", "has no rows"),
        (pd.DataFrame({"x": [1.0, 2.0, 3.0], "y": ["a", "a", "a"]}), "y", r"1 class \('a'\).*at least 2"),
        (
            pd.DataFrame({"x": [1.0, 2.0, 3.0], "y": [0.5, np.nan, 1.5]}),
            "y",
            r"1 missing \(NaN\) values.*rows \[1\]",
        ),
        (pd.DataFrame({"y": [1.0, 2.0]}), "y", "no feature columns"),
    ],
)
def test_bad_tables_are_refused(tmp_path: Path, frame: pd.DataFrame, target: str, match: str) -> None:
    with pytest.raises(DataError, match=match):
        load_dataset(_csv(tmp_path, frame), target=target)


def test_infinite_regression_target(tmp_path: Path) -> None:
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0], "y": [0.5, np.inf, 1.5]})
    with pytest.raises(DataError, match="target column 'y' has 1 infinite values"):
        load_dataset(_csv(tmp_path, frame), target="y")


def test_text_target_for_regression(tmp_path: Path) -> None:
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0], "y": ["a", "b", "c"]})
    with pytest.raises(DataError, match=r"target column 'y' must be numeric for regression; found dtype"):
        load_dataset(_csv(tmp_path, frame), target="y", task="regression")


def test_unreadable_sources(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file"):
        load_dataset((tmp_path / "missing.csv").as_uri(), target="y")
    with pytest.raises(
        DataError, match=r"cannot tell the format.*expected a name ending in \.parquet, \.pq, \.csv"
    ):
        load_dataset((tmp_path / "data.xlsx").as_uri(), target="y")
    with pytest.raises(DataError, match="target column must be named"):
        load_dataset((tmp_path / "data.csv").as_uri())
    with pytest.raises(DataError, match="unknown bundled dataset 'sklearn:mnist'"):
        load_dataset("sklearn:mnist")
    with pytest.raises(DataError, match="unknown option 'rows'"):
        load_dataset("synthetic:classification?rows=5")
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"not parquet at all")
    with pytest.raises(DataError, match=r"cannot read .* as parquet"):
        load_dataset(bad.as_uri(), target="y")
    broken = tmp_path / "broken.csv"
    broken.write_text('x,y\n1,"unterminated\n2,3,4,5\n')
    with pytest.raises(DataError, match=r"cannot read .*broken\.csv.* as csv"):
        load_dataset(broken.as_uri(), target="y")


@pytest.fixture
def prices(tmp_path: Path) -> str:
    """A numeric target with one malformed cell, as a spreadsheet exports it: '1,234.5' at row 7."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"rooms": rng.integers(1, 6, 40), "price": rng.normal(300, 50, 40).round(1)})
    frame["price"] = frame["price"].astype(str)
    frame.loc[7, "price"] = "1,234.5"
    path = tmp_path / "house.csv"
    frame.to_csv(path, index=False)
    return path.as_uri()


@pytest.mark.parametrize("task", ["auto", "regression"])
def test_a_numeric_target_with_a_malformed_cell_is_named_and_does_not_flip_the_task(prices, task) -> None:
    with pytest.raises(DataError) as err:
        load_dataset(prices, target="price", task=task)
    message = str(err.value)
    assert (
        "target column 'price'" in message
        and "1 value(s) do not parse as numbers (row 7: '1,234.5'" in message
    )
    assert "class" not in message.split("--task")[0]  # not taken for a class label
    assert "24.7" not in message and "remove thousands separators" in message


def test_a_malformed_numeric_target_can_still_be_labels_when_asked(prices) -> None:
    ds = load_dataset(prices, target="price", task="classification")  # said explicitly: strings are labels
    assert ds.task == "classification" and "1,234.5" in ds.classes


def test_repeated_column_names_are_refused_naming_them(tmp_path: Path) -> None:
    path = tmp_path / "dup.csv"
    path.write_text("x1,x2,x1,y\n1,2,3,a\n4,5,6,b\n")
    with pytest.raises(
        DataError, match=r"repeated column names: 'x1' \(2 times\); every column needs a name"
    ):
        load_dataset(path.as_uri(), target="y")

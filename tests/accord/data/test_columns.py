"""accord.data.columns: ignored, ID-like and date columns, decided once and applied to every later table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from accord.config import make_config
from accord.data.columns import DATE_PARTS, ID_LIKE, IGNORED, derive, is_id_like
from accord.data.dataset import load_dataset
from accord.data.schema import Schema
from accord.ensembling.ensemble import build_ensemble
from accord.ensembling.evaluation import evaluate
from accord.errors import ConfigError
from accord.registry.publishing import version_payload
from accord.training.fit import fit_all
from accord.training.prepare import column_notes, prepare
from tests.support.user_tables import user_table


def test_derive_drops_ids_and_ignored_columns_and_turns_dates_into_numbers():
    X = user_table().drop(columns=["churned"])
    derived = derive(X, ignore=["note"])
    assert derived.dropped == {"note": IGNORED, "customer": ID_LIKE, "row": ID_LIKE}
    assert derived.dates == ("signup", "seen")
    assert list(derived.X.columns) == [
        "amount",
        *(f"signup.{p}" for p in DATE_PARTS),
        *(f"seen.{p}" for p in DATE_PARTS),
        "city",
    ]
    first = pd.Timestamp(X["signup"][0])
    assert derived.X["signup.year"][0] == first.year and derived.X["signup.weekday"][0] == first.weekday()
    assert derived.X["signup.days"][0] == (first - pd.Timestamp("1970-01-01")).days
    assert derived.X["seen.days"][0] == pytest.approx(derived.X["signup.days"][0] + 5 / 24)
    with pytest.raises(ConfigError, match=r"ignore_columns: \['nope'\] not in the table"):
        derive(X, ignore=["nope"])


def test_what_is_not_an_id_or_a_date():
    assert not is_id_like(pd.Series([f"x{i}" for i in range(10)]))  # too few rows to tell
    assert not is_id_like(pd.Series(["a", "b"] * 20))
    assert not is_id_like(pd.Series([*range(29), None], dtype="Int64"))  # a missing value
    text = pd.DataFrame({"word": ["hello", "2020", "2020-13-45", "x"] * 10, "n": range(40)})
    assert derive(text).dates == ()


def test_a_published_model_applies_the_same_columns_to_a_raw_table(tmp_path):
    path = tmp_path / "customers.csv"
    user_table().to_csv(path, index=False)
    config = make_config(
        {
            "data": str(path),
            "target": "churned",
            "ignore_columns": ["note"],
            "members": [{"kind": "logreg"}, {"kind": "knn"}],
            "folds": 3,
        }
    )
    data = prepare(config)
    assert set(data.schema.dropped) == {"note", "customer", "row"} and data.schema.dates == ("signup", "seen")
    assert column_notes(data.schema)[0] == "column 'note' left out: ignored (ignore_columns)"
    assert Schema.from_dict(data.schema.to_dict()) == data.schema

    oof, refits = fit_all(data, seed=0)
    report = evaluate(data, oof, refits, "caruana")
    assert report.ensemble["accuracy"] > 0.8  # the dates and the city carry the signal
    files, manifest = version_payload(data, refits, report, config={})
    model = build_ensemble(files, manifest)

    raw = pd.read_csv(path).iloc[data.test_rows]  # as a user's table comes, ids, dates and all
    expected = model.predict_proba(data.X_test)
    np.testing.assert_allclose(model.predict_proba(raw.drop(columns=["churned"])), expected, rtol=1e-9)
    np.testing.assert_allclose(
        model.predict_proba(raw.drop(columns=["customer", "note"])), expected, rtol=1e-9
    )


def test_bad_ignore_columns_are_refused_before_training(tmp_path):
    path = tmp_path / "t.csv"
    user_table(60).to_csv(path, index=False)
    with pytest.raises(ConfigError, match="'churned' is the target column"):
        load_dataset(str(path), "churned", ignore_columns=["churned"])
    with pytest.raises(ConfigError, match=r"\['nope'\] not in the table"):
        load_dataset(str(path), "churned", ignore_columns=["nope"])

"""Batch prediction for real: a published ensemble scores Parquet and CSV tables on a LocalCluster."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import s3fs

import accord
from accord.config import PredictConfig, make_config
from accord.data.chunks import plan
from accord.data.dataset import read_source
from accord.data.output import read_output_metadata
from accord.errors import ConfigError, DataError, SchemaError
from flows.predict import batch_predict
from flows.train import train_ensemble
from tests.support.cli import run_cli
from tests.support.predict_tables import SCORE

DATA = "synthetic:classification?n_rows=300&n_features=5&n_categorical=1&missing=0.05&n_classes=3&seed=4"


@pytest.fixture(scope="module")
def published() -> str:
    """A small ensemble published to a fresh S3 bucket; returns its `@production` reference."""
    bucket = f"accord-{uuid.uuid4().hex[:12]}"
    s3fs.S3FileSystem().mkdir(bucket)
    store = f"s3://{bucket}/registry"
    members = [{"kind": "logreg"}, {"kind": "random_forest", "params": {"n_estimators": 30}}]
    config = make_config(
        {"data": DATA, "members": members, "folds": 2, "store": store, "name": "scorer", "workers": 2}
    )
    result = train_ensemble(config)
    assert result["promotion"]["promoted"]
    return f"{store}/scorer@production"


@pytest.mark.slow
def test_parquet_to_s3_equals_load_predict_and_records_the_version(published, table):
    frame, path = table
    bucket = published.split("/")[2]
    output = f"s3://{bucket}/predictions/out.parquet"
    result = batch_predict(
        PredictConfig(
            model=published, input=path.as_uri(), output=output, keep=["id"], chunk_rows=130, workers=2
        )
    )
    model = accord.load(published)
    assert result["model"] == model.manifest["ref"] and ":" in result["model"].rsplit("/", 1)[-1]
    with s3fs.S3FileSystem().open(output, "rb") as f:
        scored = pd.read_parquet(f)
    assert result["rows"] == len(scored) == len(frame)
    assert scored["id"].tolist() == frame["id"].tolist()  # input order kept across chunks
    features = frame.drop(columns=["id"])
    np.testing.assert_array_equal(scored["prediction"].to_numpy(), model.predict(features))
    proba = scored[[f"proba_{c}" for c in model.classes_]].to_numpy()
    np.testing.assert_allclose(proba, model.predict_proba(features), rtol=0, atol=1e-12)
    assert read_output_metadata(output)["model"] == result["model"]


@pytest.mark.slow
def test_csv_to_csv_with_reordered_columns(published, table, tmp_path):
    frame, _ = table
    source = tmp_path / "rows.csv"
    frame[list(reversed(frame.columns))].to_csv(source, index=False)  # reordering is accepted
    output = tmp_path / "out" / "pred.csv"
    result = batch_predict(
        PredictConfig(
            model=published, input=source.as_uri(), output=output.as_uri(), keep=["id"], chunk_rows=200
        )
    )
    scored = pd.read_csv(output)
    model = accord.load(published)
    assert result["rows"] == len(frame)
    np.testing.assert_array_equal(scored["prediction"], model.predict(pd.read_csv(source).drop(columns="id")))
    assert [p.name for p in output.parent.iterdir()] == ["pred.csv"]  # no staging file left behind


@pytest.mark.slow
def test_mismatched_input_is_refused_with_the_schema_diff_and_nothing_written(published, table, tmp_path):
    frame, _ = table
    bad = frame.rename(columns={"x1": "feature_1"}).drop(columns=["id"])
    bad["x2"] = bad["x2"].astype(str) + "?"
    source = tmp_path / "bad.parquet"
    bad.to_parquet(source)
    output = tmp_path / "pred.parquet"
    with pytest.raises(SchemaError) as err:
        batch_predict(PredictConfig(model=published, input=source.as_uri(), output=output.as_uri()))
    message = str(err.value)
    assert "missing columns: ['x1']" in message and "unexpected columns: ['feature_1']" in message
    assert "column 'x2': expected numeric" in message
    assert not output.exists()


@pytest.mark.slow
def test_bad_arguments_name_what_is_wrong(published, table, tmp_path):
    _, path = table
    with pytest.raises(ConfigError, match=r"output: cannot tell the format of .*\.txt"):
        batch_predict(
            PredictConfig(model=published, input=path.as_uri(), output=(tmp_path / "o.txt").as_uri())
        )
    with pytest.raises(DataError, match=r"keep: columns \['customer'\] are not in"):
        batch_predict(
            PredictConfig(
                model=published, input=path.as_uri(), output=(tmp_path / "o.csv").as_uri(), keep=["customer"]
            )
        )
    with pytest.raises(DataError, match="no such file"):
        batch_predict(
            PredictConfig(
                model=published, input=(tmp_path / "nope.parquet").as_uri(), output="memory://o.csv"
            )
        )


@pytest.mark.slow
def test_cli_predict_exit_codes(published, table, tmp_path):
    frame, path = table
    output = tmp_path / "cli.parquet"
    done = run_cli(
        "predict",
        "--model",
        published,
        "--input",
        path.as_uri(),
        "--output",
        str(output),
        "--keep",
        "id",
        "--json",
    )
    assert done.returncode == 0, done.stderr
    receipt = json.loads(done.stdout)
    assert receipt["rows"] == len(frame) and receipt["model"].startswith(published.split("@")[0] + ":")
    bad = tmp_path / "bad.csv"
    frame.drop(columns=["x1"]).to_csv(bad, index=False)
    refused = run_cli(
        "predict", "--model", published, "--input", str(bad), "--output", str(tmp_path / "b.csv")
    )
    assert refused.returncode == 2
    assert "missing columns: ['x1']" in refused.stderr and "unexpected columns: ['id']" in refused.stderr
    assert not (tmp_path / "b.csv").exists()


@pytest.fixture(scope="module")
def long_csv(tmp_path_factory) -> tuple[pd.DataFrame, Path]:
    """1,500 rows to score as CSV whose categorical column is empty in rows 500-999 (the second chunk)."""
    frame, target = read_source(SCORE.replace("n_rows=450", "n_rows=1500"))
    frame = frame.drop(columns=[target])
    frame.loc[500:999, "c0"] = np.nan
    path = tmp_path_factory.mktemp("long") / "rows.csv"
    frame.to_csv(path, index=False)
    return frame, path


@pytest.mark.slow
def test_a_csv_chunk_whose_categorical_column_is_empty_is_scored_as_the_whole_table(
    published, long_csv, tmp_path
):
    frame, path = long_csv
    assert pd.read_csv(path, skiprows=range(1, 501), nrows=500)["c0"].dtype == "float64"  # the trap
    output = tmp_path / "scored.csv"
    done = run_cli(
        "predict", "--model", published, "--input", str(path), "--output", str(output), "--chunk-rows", "500"
    )
    assert done.returncode == 0, done.stderr[-3000:]
    model = accord.load(published)
    assert (
        f"accord: model {model.manifest['ref']} (alias 'production')" in done.stderr
    )  # the version resolved
    scored = pd.read_csv(output)
    proba = scored[[f"proba_{c}" for c in model.classes_]].to_numpy()
    np.testing.assert_allclose(proba, model.predict_proba(frame), rtol=0, atol=1e-9)


@pytest.mark.slow
def test_a_bad_cell_past_the_first_chunks_is_refused_before_any_scoring_in_one_line(
    published, long_csv, tmp_path
):
    frame, _ = long_csv
    bad = frame.astype({"x2": object})
    bad.loc[1200, "x2"] = "1,234.5"
    source = tmp_path / "bad.csv"
    bad.to_csv(source, index=False)
    output = tmp_path / "never.parquet"
    done = run_cli(
        "predict",
        "--model",
        published,
        "--input",
        str(source),
        "--output",
        str(output),
        "--chunk-rows",
        "500",
    )
    assert done.returncode == 2
    errors = [line for line in done.stderr.splitlines() if line.startswith("accord: error:")]
    assert len(errors) == 1 and "Traceback" not in done.stderr
    assert "column 'x2' (row 1200: '1,234.5')" in errors[0]
    assert "score-frame" not in done.stderr  # refused before the flow: nothing was scored
    assert not output.exists() and list(tmp_path.iterdir()) == [source]


@pytest.mark.slow
def test_repeated_input_columns_are_refused_naming_them(published, table, tmp_path):
    frame, _ = table
    source = tmp_path / "dup.csv"
    source.write_text(frame.to_csv(index=False).replace("x1,", "x3,", 1))  # two columns called x3
    with pytest.raises(DataError, match=r"repeated column names: 'x3' \(2 times\)"):
        batch_predict(
            PredictConfig(
                model=published, input=source.as_uri(), output=(tmp_path / "o.csv").as_uri(), keep=["id"]
            )
        )
    assert not (tmp_path / "o.csv").exists()


@pytest.mark.slow
def test_a_kept_column_the_model_also_reads_is_scored_and_passed_through(published, table, tmp_path):
    frame, path = table
    output = tmp_path / "kept.parquet"
    batch_predict(
        PredictConfig(
            model=published, input=path.as_uri(), output=output.as_uri(), keep=["id", "x1"], chunk_rows=200
        )
    )
    scored = pd.read_parquet(output)
    model = accord.load(published)
    pd.testing.assert_series_equal(scored["x1"], frame["x1"].reset_index(drop=True))  # NaN included
    np.testing.assert_array_equal(scored["prediction"].to_numpy(), model.predict(frame.drop(columns=["id"])))


@pytest.mark.slow
def test_a_checked_csv_is_checked_again_once_it_changes(published, long_csv, tmp_path):
    from accord.data.chunks import check_input

    frame, _ = long_csv
    source = tmp_path / "rows.csv"
    frame.to_csv(source, index=False)
    schema = accord.load(published).schema
    check_input(plan(source.as_uri(), 500), schema, [])  # passes, and is remembered
    bad = frame.astype({"x3": object})
    bad.loc[1400, "x3"] = "n/a?"
    bad.to_csv(source, index=False)  # another size: not the input that was checked
    with pytest.raises(DataError, match=r"column 'x3' \(row 1400: 'n/a\?'\)"):
        check_input(plan(source.as_uri(), 500), schema, [])


@pytest.mark.slow
def test_predict_keeping_the_label_prints_the_metrics_evaluate_gives(published, tmp_path):
    frame, target = read_source(SCORE)  # labelled rows the model never saw
    labels = frame[target].astype(object).where(frame.index >= 5)  # five rows without a label
    path = tmp_path / "some_unlabelled.csv"
    frame.assign(**{target: labels}).to_csv(path, index=False)
    labelled = tmp_path / "labelled.csv"
    frame.iloc[5:].to_csv(labelled, index=False)  # the rows with a label: those the metrics judge
    done = run_cli(
        "predict",
        "--model",
        published,
        "--input",
        str(path),
        "--output",
        str(tmp_path / "p.csv"),
        "--keep",
        target,
    )
    assert done.returncode == 0, done.stderr
    evaluated = run_cli("evaluate", published, "--data", str(labelled), "--json")
    assert evaluated.returncode == 0, evaluated.stderr
    expected = json.loads(evaluated.stdout)["metrics"]["ensemble"]
    line = next(x for x in done.stdout.splitlines() if x.startswith(f"against the kept label '{target}':"))
    assert f"log_loss {expected['log_loss']:.4g}" in line and f"accuracy {expected['accuracy']:.4g}" in line
    written = pd.read_csv(tmp_path / "p.csv")
    assert len(written) == len(frame) and written[target].isna().sum() == 5  # every row scored
    judged = written.dropna(subset=[target])
    assert (judged["prediction"] == judged[target]).mean() == pytest.approx(expected["accuracy"])

"""Scoring a labelled table against a published ensemble (`accord evaluate`).

On the run's own held-out rows it must give back the figures the run published.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import accord
from accord.config import make_config
from accord.ensembling.evaluation import evaluate
from accord.ensembling.labelled import score_labelled
from accord.errors import DataError
from accord.registry.publishing import publish, version_payload
from accord.registry.store import Registry
from accord.training.fit import fit_all
from accord.training.prepare import prepare
from tests.support.cli import run_cli


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    root = tmp_path_factory.mktemp("labelled")
    store = (root / "registry").as_uri()
    cfg = make_config(
        {"data": "sklearn:wine", "members": [{"kind": "logreg"}, {"kind": "knn"}], "store": store}
    )
    p = prepare(cfg)
    oof, refits = fit_all(p, 0)
    files, manifest = version_payload(p, refits, evaluate(p, oof, refits, "caruana"), config=cfg.model_dump())
    ref = publish(Registry(store), "wine", files, manifest)
    table = p.X_test.copy()
    table["target"] = np.asarray(p.schema.classes)[p.y_test]
    path = root / "held_out.csv"
    table.to_csv(path, index=False)
    return ref, table, path


def test_the_held_out_rows_give_back_the_published_leaderboard(published):
    ref, table, _ = published
    model = accord.load(ref)
    result = score_labelled(model, table)
    metrics = model.manifest["metrics"]
    assert result["rows"] == len(table)
    for key, value in metrics["ensemble"].items():
        assert result["metrics"]["ensemble"][key] == pytest.approx(value), key
    for name, values in metrics["members"].items():
        assert result["metrics"]["members"][name]["log_loss"] == pytest.approx(values["log_loss"]), name
    for key in ("equal_vote", "best_cv_member"):
        assert result["metrics"]["baselines"][key]["metrics"]["log_loss"] == pytest.approx(
            metrics["baselines"][key]["metrics"]["log_loss"]
        )
    for name, gap in metrics["vs_ensemble"].items():
        if name in result["vs_ensemble"]:
            assert result["vs_ensemble"][name]["gap"] == pytest.approx(gap["gap"]), name
    assert set(result["vs_ensemble"]) >= {"logreg", "knn", "baseline:equal_vote", "baseline:best_cv_member"}


def test_labels_the_model_cannot_score_are_refused_by_name(published):
    ref, table, _ = published
    model = accord.load(ref)
    with pytest.raises(DataError, match=r"no label column 'cultivar'; its columns are \['alcohol'"):
        score_labelled(model, table, "cultivar")
    odd = table.astype({"target": object})
    odd.loc[odd.index[:2], "target"] = "merlot"
    with pytest.raises(DataError, match=r"labels \['merlot'\] are not among the model's classes"):
        score_labelled(model, odd)
    gaps = table.astype({"target": object})
    gaps.loc[gaps.index[:3], "target"] = None
    with pytest.raises(DataError, match="label column 'target': 3 rows have no label"):
        score_labelled(model, gaps)


def test_accord_evaluate_prints_the_leaderboard_and_json(published):
    ref, table, path = published
    done = run_cli("evaluate", ref, "--data", str(path))
    assert done.returncode == 0, done.stderr
    assert "held-out leaderboard" in done.stdout and "baseline:best_cv_member" in done.stdout
    assert f"{len(table)} labelled rows" in done.stdout
    body = json.loads(run_cli("evaluate", ref, "--data", str(path), "--json").stdout)
    expected = accord.load(ref).manifest["metrics"]["ensemble"]["log_loss"]
    assert body["metrics"]["ensemble"]["log_loss"] == pytest.approx(expected)
    missing = run_cli("evaluate", ref, "--data", str(path), "--target", "cultivar")
    assert missing.returncode == 2 and "cultivar" in missing.stderr

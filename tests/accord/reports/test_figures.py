"""The figures of a version: each shows the numbers its run computed (checked on the artists drawn)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from matplotlib.image import imread
from sklearn.metrics import confusion_matrix, roc_curve

from accord.config import make_config
from accord.ensembling.evaluation import evaluate
from accord.reports.figures import RunFigures, draw, error_correlation, figures, reliability_points
from accord.training.fit import fit_all
from accord.training.prepare import prepare

MEMBERS = [{"kind": "logreg"}, {"kind": "knn"}, {"kind": "random_forest", "params": {"n_estimators": 30}}]


def _run(data: str) -> RunFigures:
    p = prepare(make_config({"data": data, "members": MEMBERS, "folds": 3}))
    oof, refits = fit_all(p, 0)
    report = evaluate(p, oof, refits, "caruana")
    tests = {n: refits[n].test_predictions for n in report.members}
    importance = {
        "metric": report.primary,
        "features": {
            c: {"importance": 0.1 / (i + 1), "stddev": 0.01} for i, c in enumerate(p.schema.names[:4])
        },
    }
    return RunFigures(
        task=p.task,
        classes=list(p.schema.classes),
        y_test=p.y_test,
        ensemble_test=report.rule.combine(list(tests.values())),
        member_test=tests,
        best_member=report.baselines["best_cv_member"]["member"],
        y_oof=p.y_train,
        member_oof=oof,
        weights=report.weights,
        leaderboard=report.leaderboard(),
        primary=report.primary,
        importance=importance,
    )


@pytest.fixture(scope="module")
def binary() -> RunFigures:
    return _run("sklearn:breast_cancer")


@pytest.fixture(scope="module")
def regression() -> RunFigures:
    return _run("sklearn:diabetes")


def _texts(fig) -> list[str]:  # type: ignore[no-untyped-def]
    return [t.get_text() for t in fig.axes[0].texts]


def test_the_confusion_matrix_shows_the_held_out_counts(binary):
    drawn = figures(binary)
    assert list(drawn) == [
        "confusion_matrix",
        "reliability",
        "roc",
        "precision_recall",
        "weights",
        "error_correlation",
        "leaderboard",
        "importance",
    ]
    expected = confusion_matrix(binary.y_test, np.argmax(binary.ensemble_test, axis=1))
    assert _texts(drawn["confusion_matrix"]) == [str(v) for v in expected.ravel()]
    assert expected.sum() == len(binary.y_test)


def test_roc_reliability_weights_and_correlation_are_the_runs_numbers(binary):
    drawn = figures(binary)
    ensemble_roc = drawn["roc"].axes[0].lines[0]
    fpr, tpr, _ = roc_curve(binary.y_test, binary.ensemble_test[:, 1])
    np.testing.assert_allclose(ensemble_roc.get_xdata(), fpr)
    np.testing.assert_allclose(ensemble_roc.get_ydata(), tpr)
    assert ensemble_roc.get_label().startswith("ensemble (AUC ")
    x, y = reliability_points(binary.y_test, binary.ensemble_test)
    line = drawn["reliability"].axes[0].lines[1]
    np.testing.assert_allclose(line.get_xdata(), x)
    np.testing.assert_allclose(line.get_ydata(), y)
    axes = drawn["weights"].axes[0]
    labels = [t.get_text() for t in axes.get_yticklabels()]
    shown = dict(zip(labels, [p.get_width() for p in axes.patches], strict=True))
    assert shown == pytest.approx(dict(binary.weights))  # each member's bar is its own weight
    names, matrix = error_correlation(binary)
    assert names == list(binary.member_oof) and np.allclose(np.diag(matrix), 1.0)
    assert _texts(drawn["error_correlation"]) == [f"{v:.2f}" for v in matrix.ravel()]


def test_regression_shows_predicted_against_actual_and_residuals(regression):
    drawn = figures(regression)
    assert list(drawn)[:2] == ["predicted_vs_actual", "residuals"]
    points = drawn["predicted_vs_actual"].axes[0].collections[0].get_offsets()
    np.testing.assert_allclose(points[:, 0], regression.y_test)
    np.testing.assert_allclose(points[:, 1], regression.ensemble_test)
    residuals = drawn["residuals"].axes[0].collections[0].get_offsets()
    np.testing.assert_allclose(residuals[:, 1], regression.y_test - regression.ensemble_test)
    heights = [p.get_width() for p in drawn["importance"].axes[0].patches]
    assert heights == pytest.approx([0.1 / 4, 0.1 / 3, 0.1 / 2, 0.1])  # largest at the top


def test_draw_gives_the_same_png_files_each_time_and_needs_no_display(regression):
    files = draw(regression)
    assert set(files) == {f"figures/{s}.png" for s in figures(regression)}
    assert files == draw(regression)  # no timestamp in the files
    image = imread(io.BytesIO(files["figures/residuals.png"]), format="png")
    assert image.shape[0] > 200 and image.shape[1] > 300

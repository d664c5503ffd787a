"""Permutation importance: the shuffles, how the work is cut, the published document."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.inspection import permutation_importance
from sklearn.metrics import log_loss

from accord.config import make_config
from accord.ensembling.ensemble import ensemble
from accord.ensembling.evaluation import evaluate
from accord.ensembling.importance import document, loss, permuted_losses, work
from accord.errors import NotFoundError
from accord.members.bagged import load_member
from accord.training.fit import fit_all
from accord.training.prepare import prepare


@pytest.fixture(scope="module")
def wine():
    p = prepare(make_config({"data": "sklearn:wine", "members": [{"kind": "logreg"}], "folds": 2}))
    oof, refits = fit_all(p, 0)
    report = evaluate(p, oof, refits, "equal")
    members = {n: load_member(r.kind, r.files, r.info) for n, r in refits.items()}
    return ensemble(members, report.rule, p.schema), p


def test_the_work_is_every_pair_once_in_near_equal_groups():
    groups = work(["a", "b", "c"], 5, 4)
    assert [p for g in groups for p in g] == [(f, r) for f in "abc" for r in range(5)]
    assert sorted(len(g) for g in groups) == [3, 4, 4, 4]
    assert work(["a"], 2, 8) == [[("a", 0)], [("a", 1)]]


def test_shuffles_are_seeded_per_feature_and_repeat_whatever_the_grouping(wine):
    model, p = wine
    pairs = [("proline", 0), ("proline", 1), ("ash", 0)]
    together = permuted_losses(model, p.X_test, p.y_test, pairs, 7)
    apart = [permuted_losses(model, p.X_test, p.y_test, [pair], 7)[0] for pair in pairs]
    assert together == apart
    assert together[0] != together[1]  # another repeat, another shuffle
    unshuffled = loss(model, model.schema.conform(p.X_test), p.y_test)
    assert unshuffled == pytest.approx(log_loss(p.y_test, model.predict_proba(p.X_test)))
    assert together[0] > unshuffled  # proline carries the cultivar


def test_the_document_ranks_features_like_scikit_learns_permutation_importance(wine):
    model, p = wine
    names = p.schema.names
    pairs = [(f, r) for f in names for r in range(5)]
    baseline = loss(model, model.schema.conform(p.X_test), p.y_test)
    doc = document(
        "log_loss", baseline, pairs, permuted_losses(model, p.X_test, p.y_test, pairs, 0), len(p.y_test)
    )
    ours = list(doc["features"])
    assert [v["importance"] for v in doc["features"].values()] == sorted(
        (v["importance"] for v in doc["features"].values()), reverse=True
    )
    labels = np.asarray(p.schema.classes)[p.y_test]
    theirs = permutation_importance(
        model, p.X_test, labels, scoring="neg_log_loss", n_repeats=5, random_state=0
    )
    top_theirs = {names[i] for i in np.argsort(-theirs.importances_mean)[:3]}
    assert len(set(ours[:3]) & top_theirs) >= 2  # other shuffles, the same leading features

    with pytest.raises(NotFoundError, match=r"has no importance\.json"):
        model.feature_importance()

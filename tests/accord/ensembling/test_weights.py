from __future__ import annotations

import json

import numpy as np
import pytest

from accord.ensembling.losses import loss, paired_gap, row_losses
from accord.ensembling.weights import (
    GUARD_FOLDS,
    SHRINKS,
    EnsembleWeights,
    _guard_folds,
    caruana,
    fit_temperature,
    fit_weights,
    weighted_sum,
    with_temperature,
)
from accord.errors import ConfigError


def _members(seed: int, n: int = 300, k: int = 3, m: int = 5):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    preds = []
    for i in range(m):
        logits = rng.normal(0, 1, (n, k))
        logits[np.arange(n), y] += 0.5 + 0.4 * i * rng.random()
        e = np.exp(logits)
        preds.append(e / e.sum(axis=1, keepdims=True))
    return preds, y


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("method", ["caruana", "optimize", "equal", "hard"])
def test_weights_are_on_the_simplex(seed, method):
    preds, y = _members(seed)
    rule = fit_weights(preds, y, "classification", method, n_classes=3)
    assert rule.weights is not None
    assert (rule.weights >= 0).all()
    assert rule.weights.sum() == pytest.approx(1.0)


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("method", ["caruana", "optimize"])
def test_oof_loss_never_worse_than_best_member(seed, method):
    preds, y = _members(seed)
    rule = fit_weights(preds, y, "classification", method, n_classes=3)
    best = min(loss("classification", y, p) for p in preds)
    assert loss("classification", y, rule.combine(preds)) <= best + 1e-12


def test_optimize_is_at_least_as_good_as_caruana():
    preds, y = _members(11)
    c = fit_weights(preds, y, "classification", "caruana", n_classes=3)
    o = fit_weights(preds, y, "classification", "optimize", n_classes=3)
    # the weights' own loss (before the temperature each rule fits afterwards)
    assert (
        loss("classification", y, weighted_sum(preds, o.weights))
        <= loss("classification", y, weighted_sum(preds, c.weights)) + 1e-12
    )


def test_temperature_recalibrates_an_underconfident_average_on_oof_only():
    preds, y = _members(5)
    rule = fit_weights(preds, y, "classification", "caruana", n_classes=3)
    averaged = weighted_sum(preds, rule.weights)
    assert rule.temperature != 1.0  # averaging members makes the ensemble less confident than it should be
    assert loss("classification", y, rule.combine(preds)) < loss("classification", y, averaged)
    np.testing.assert_array_equal(rule.combine(preds).argmax(1), averaged.argmax(1))  # same winners
    np.testing.assert_allclose(rule.combine(preds).sum(1), 1.0)
    restored = EnsembleWeights.from_dict(json.loads(json.dumps(rule.to_dict())))
    np.testing.assert_allclose(restored.combine(preds), rule.combine(preds))
    old = {k: v for k, v in rule.to_dict().items() if k != "temperature"}  # a version published before
    np.testing.assert_allclose(EnsembleWeights.from_dict(old).combine(preds), averaged)
    assert fit_weights(preds, y, "classification", "equal", n_classes=3).temperature == 1.0  # the baseline
    assert fit_temperature(averaged, averaged.argmax(1)) < 1.0  # labels that agree: sharpen


@pytest.mark.parametrize("seed", range(3))
def test_the_fitted_temperature_and_greedy_picks_minimise_the_loss_of_the_probabilities_they_give(seed):
    """Both search a loss computed from each row's true class only; it must be the full rule's loss."""
    preds, y = _members(seed, k=4)
    averaged = weighted_sum(preds, np.full(len(preds), 1 / len(preds)))
    t = fit_temperature(averaged, y)
    assert t != 1.0

    def at(temperature: float) -> float:
        return loss("classification", y, with_temperature(averaged, temperature))

    assert at(t) < at(1.0)
    assert at(t) <= min(at(t * 1.01), at(t / 1.01)) + 1e-12  # a minimum of the full computation

    def greedy(steps: int) -> list[float]:  # step by step, on the (n, K) mixes themselves
        counts, running = np.zeros(len(preds)), np.zeros_like(preds[0])
        best, kept = np.inf, counts
        for step in range(1, steps + 1):
            losses = [loss("classification", y, (running + p) / step) for p in preds]
            counts = counts.copy()
            counts[int(np.argmin(losses))] += 1
            running = running + preds[int(np.argmin(losses))]
            if min(losses) < best:  # the best prefix of the picks is kept
                best, kept = min(losses), counts
        return (kept / kept.sum()).tolist()

    for steps in (1, 2, 3, 6):
        assert caruana(preds, y, "classification", steps=steps).tolist() == greedy(steps)


def test_regression_weights_and_loss():
    rng = np.random.default_rng(0)
    y = rng.normal(size=200)
    preds = [y + rng.normal(0, s, 200) for s in (0.3, 0.5, 2.0)]
    for method in ("caruana", "optimize"):
        rule = fit_weights(preds, y, "regression", method)
        assert loss("regression", y, rule.combine(preds)) < min(loss("regression", y, p) for p in preds)
        assert rule.weights[2] < 0.2


def test_deterministic_for_same_inputs():
    preds, y = _members(3)
    a = fit_weights(preds, y, "classification", "optimize", n_classes=3)
    b = fit_weights(preds, y, "classification", "optimize", n_classes=3)
    np.testing.assert_array_equal(a.weights, b.weights)


def test_caruana_first_pick_is_best_member_and_ties_prefer_lowest_index():
    preds, y = _members(1)
    best = int(np.argmin([loss("classification", y, p) for p in preds]))
    w = caruana(preds, y, "classification", steps=1)
    assert w[best] == 1.0
    same = [preds[0], preds[0].copy()]
    assert caruana(same, y, "classification", steps=3).tolist() == [1.0, 0.0]


def test_stacking_and_hard_vote_and_round_trip():
    preds, y = _members(2)
    stack = fit_weights(preds, y, "classification", "stacking", n_classes=3)
    assert stack.weights is None
    proba = stack.combine(preds)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    restored = EnsembleWeights.from_dict(stack.to_dict())
    np.testing.assert_allclose(restored.combine(preds), proba)
    hard = fit_weights(preds, y, "classification", "hard", n_classes=3)
    votes = hard.combine(preds)
    assert set(np.unique(votes * 5).round(6)) <= {0, 1, 2, 3, 4, 5}


def test_hard_vote_is_refused_for_regression():
    with pytest.raises(ConfigError, match=r"'hard' .* needs classes, but the task is regression"):
        fit_weights([np.zeros(3)], np.zeros(3), "regression", "hard")


def test_paired_gap_is_the_mean_row_difference_with_its_standard_error():
    gap = paired_gap(np.array([1.0, 2.0, 3.0, 6.0]), np.zeros(4))
    # differences 1, 2, 3, 6: mean 3, sample variance (4 + 1 + 0 + 9) / 3, se sqrt(14 / 3) / 2
    assert gap["gap"] == pytest.approx(3.0)
    assert gap["se"] == pytest.approx(np.sqrt(14 / 3) / 2)
    assert paired_gap(np.array([2.0, 5.0]), np.array([1.0, 4.0])) == {"gap": 1.0, "se": 0.0}


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_row_losses_average_to_the_loss_and_gaps_are_differences_of_losses(task):
    preds, y = _members(3)
    if task == "regression":
        y = y.astype(float) * 2.5
        preds = [p @ np.array([0.0, 2.5, 5.0]) for p in preds]
    a, b = preds[0], preds[4]
    assert row_losses(task, y, a).shape == (len(y),)
    assert row_losses(task, y, a).mean() == pytest.approx(loss(task, y, a), rel=1e-12)
    gap = paired_gap(row_losses(task, y, a), row_losses(task, y, b))
    assert gap["gap"] == pytest.approx(loss(task, y, a) - loss(task, y, b), rel=1e-9)
    assert gap["se"] > 0


@pytest.mark.parametrize(
    "rule",
    [
        EnsembleWeights("caruana", "classification", np.array([0.5, 0, 0.25, 0, 0.25]), 3, temperature=0.8),
        EnsembleWeights("hard", "classification", np.array([0.0, 0.4, 0.2, 0.4, 0.0]), 3),
        EnsembleWeights("optimize", "regression", np.array([0.0, 0.0, 0.7, 0.0, 0.3])),
    ],
    ids=["caruana", "hard", "regression"],
)
def test_a_rule_over_its_used_members_alone_combines_to_the_same_values(rule):
    preds, _ = _members(4)
    if rule.task == "regression":
        preds = [p[:, 0] * 10 for p in preds]
    used = rule.used(len(preds))
    assert used == [i for i, w in enumerate(rule.weights) if w > 0]
    restricted = rule.restricted(used)
    assert restricted.weights.tolist() == [rule.weights[i] for i in used]
    np.testing.assert_array_equal(restricted.combine([preds[i] for i in used]), rule.combine(preds))
    over, rule_over = rule.over_used(len(preds))
    assert over == used and rule_over.weights.tolist() == restricted.weights.tolist()


def test_stacking_reads_every_member_and_a_weighted_member_is_never_left_out():
    preds, y = _members(5)
    stack = fit_weights(preds, y, "classification", "stacking", n_classes=3)
    assert stack.used(len(preds)) == list(range(len(preds)))
    over, stack_over = stack.over_used(len(preds))
    assert over == list(range(len(preds))) and stack_over is stack  # nothing to leave out
    with pytest.raises(ValueError, match="stacking rule reads every member"):
        stack.restricted([0, 1])
    rule = EnsembleWeights("equal", "classification", np.full(5, 0.2), 3)
    with pytest.raises(ValueError, match=r"must have weight 0; found weights \[0.2\]"):
        rule.restricted([0, 1, 2, 3])


def _small_table(seed: int, n: int, members: int = 10):
    """A target, the member that predicts its signal, and members that add independent errors to it."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    y = x + rng.normal(0, 1, n)
    return y, [x, *(x + rng.normal(0, 1.5, n) for _ in range(members))]


def test_the_guard_keeps_weights_fitted_on_few_rows_from_ending_worse_than_the_best_member():
    """60 rows: caruana mixes in members whose errors happen to cancel here; new rows show it."""
    guarded, unguarded, best, shares = [], [], [], []
    for seed in range(20):
        y, preds = _small_table(seed, 60)
        rule = fit_weights(preds, y, "regression", "caruana")
        plain = fit_weights(preds, y, "regression", "caruana", guarded=False)
        y_new, new = _small_table(1000 + seed, 5000)  # the same members on rows no weight saw
        guarded.append(loss("regression", y_new, rule.combine(new)))
        unguarded.append(loss("regression", y_new, plain.combine(new)))
        best.append(loss("regression", y_new, new[0]))
        shares.append(rule.guard["shrink"])
    assert np.mean(unguarded) > 1.06 * np.mean(best)  # the failure the guard is for
    assert np.mean(guarded) < 1.02 * np.mean(best)
    assert np.mean(guarded) < np.mean(unguarded)
    assert sum(s < 1.0 for s in shares) >= 15


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("method", ["caruana", "optimize"])
def test_the_guard_keeps_weights_that_help_on_held_back_rows_whole(seed, method):
    preds, y = _members(seed)
    rule = fit_weights(preds, y, "classification", method, n_classes=3)
    plain = fit_weights(preds, y, "classification", method, n_classes=3, guarded=False)
    assert rule.guard["shrink"] == 1.0
    np.testing.assert_array_equal(rule.weights, plain.weights)
    assert rule.temperature == plain.temperature
    nested = rule.guard["nested_loss"]
    assert nested["1.0"] <= nested["0.0"]  # measured: the mix is no worse than its best member there


def test_the_guards_record_is_each_shares_loss_on_held_back_rows():
    rng = np.random.default_rng(4)
    y = rng.normal(size=300)
    preds = [y + rng.normal(0, 0.2, 300), y + rng.normal(0, 3.0, 300), y + rng.normal(0, 3.0, 300)]
    rule = fit_weights(preds, y, "regression", "caruana")
    record = rule.guard
    assert record["folds"] == GUARD_FOLDS and record["best"] == 0
    assert list(record["nested_loss"]) == [str(s) for s in SHRINKS]
    # share 0 is the best member alone, chosen again on each fold's other rows: member 0 every
    # time, so over every held-back row it is that member's own loss
    assert record["nested_loss"]["0.0"] == pytest.approx(loss("regression", y, preds[0]), rel=1e-12)
    assert record["shrink"] == min(SHRINKS, key=lambda s: (record["nested_loss"][str(s)], -s))
    restored = EnsembleWeights.from_dict(json.loads(json.dumps(rule.to_dict())))
    assert restored.guard == record
    old = {k: v for k, v in rule.to_dict().items() if k != "guard"}  # a version published before
    assert EnsembleWeights.from_dict(old).guard == {}
    few = fit_weights([p[:12] for p in preds], y[:12], "regression", "caruana")
    assert few.guard["folds"] == 0 and few.guard["shrink"] == 1.0  # too few rows to hold any back


def test_guard_folds_are_fixed_and_deal_each_class_evenly():
    y = np.repeat([0, 1, 2], [50, 13, 7])
    fold = _guard_folds(y, "classification")
    np.testing.assert_array_equal(fold, _guard_folds(y, "classification"))
    for c in range(3):
        counts = np.bincount(fold[y == c], minlength=GUARD_FOLDS)
        assert counts.max() - counts.min() <= 1, (c, counts)
    assert sorted(np.bincount(_guard_folds(np.zeros(23), "regression"))) == [4, 4, 5, 5, 5]

"""Differentially private members: the noise added is the noise accounted, and the budget is honest."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from dp_accounting import GaussianDpEvent, PoissonSampledDpEvent, SelfComposedDpEvent
from dp_accounting.rdp import RdpAccountant
from sklearn.datasets import load_breast_cancer

import accord
from accord.config import make_config
from accord.ensembling.evaluation import evaluate
from accord.errors import ConfigError
from accord.members.dp import DPLogReg, dp_sgd
from accord.registry.publishing import publish, version_payload
from accord.registry.store import Registry
from accord.training.fit import fit_all
from accord.training.prepare import prepare

FRAME = load_breast_cancer(as_frame=True).data
BOUNDS = {c.replace(" ", "_"): [0.0, float(FRAME[c].max()) * 1.5] for c in FRAME.columns}  # public, generous


def _dp(**dp):
    return {"kind": "dp_logreg", "params": {"dp": dp, "feature_bounds": BOUNDS}}


def test_the_noise_sampling_and_steps_are_what_the_accountant_is_told():
    """Run the member's own DP-SGD and compare what it did with (sigma, q, T) of the accounting."""
    cfg = make_config(
        {"data": "sklearn:breast_cancer", "folds": 3, "members": [_dp(epsilon=1.0, l2_norm_clip=0.5)]}
    )
    p = prepare(cfg)
    dp = p.members[0].params["dp"]
    assert dp["l2_norm_clip"] == 0.5
    sigma, q, steps, clip = dp["noise_multiplier"], dp["sample_rate"], dp["steps_per_fit"], dp["l2_norm_clip"]
    # the epsilon recorded is dp-accounting's for exactly these numbers, composed over the 3 fits
    one_fit = SelfComposedDpEvent(PoissonSampledDpEvent(q, GaussianDpEvent(sigma)), steps)
    assert dp["epsilon_total"] == pytest.approx(
        RdpAccountant().compose(SelfComposedDpEvent(one_fit, 3)).get_epsilon(1e-5), rel=1e-9
    )
    assert dp["epsilon_total"] <= 1.0 and dp["epsilon_total"] > 0.99  # the calibrated noise spends the budget
    assert dp["epsilon_per_fit"] == pytest.approx(RdpAccountant().compose(one_fit).get_epsilon(1e-5))

    seen: list[tuple[int, np.ndarray]] = []
    member = DPLogReg("classification", p.members[0].params, n_classes=2, seed=3)
    member.on_step = lambda rows, noise: seen.append((rows, noise))
    member.fit(p.X_train, p.y_train, p.schema)
    n = len(p.X_train)
    assert len(seen) == steps == int(np.ceil(dp_epochs(p) / q))
    sampled = np.array([rows for rows, _ in seen])
    assert sampled.mean() / n == pytest.approx(q, rel=0.05)  # Poisson sampling at rate q
    assert sampled.std() > 0  # not a fixed batch
    noise = np.concatenate([z.ravel() for _, z in seen])
    assert noise.std() == pytest.approx(sigma * clip, rel=0.02)  # N(0, (sigma * C)^2) per coordinate
    assert abs(noise.mean()) < 0.02 * sigma * clip


def dp_epochs(p) -> float:
    return float(p.members[0].params["epochs"])


def test_each_rows_gradient_is_clipped_before_it_is_summed():
    rng = np.random.default_rng(0)
    X = np.full((50, 30), 1.0)  # every row's gradient norm is about sqrt(30) * |p - y|: far above 1
    Y = np.eye(2)[np.zeros(50, dtype=int)]  # one class: every gradient points the same way
    W = dp_sgd(
        X, Y, clip=1.0, noise_multiplier=0.0, sample_rate=1.0, steps=1, learning_rate=1.0, l2=0.0, rng=rng
    )
    assert np.linalg.norm(W) <= 1.0 + 1e-9  # the mean of 50 gradients, each clipped to norm 1
    unclipped = dp_sgd(
        X, Y, clip=1e9, noise_multiplier=0.0, sample_rate=1.0, steps=1, learning_rate=1.0, l2=0.0, rng=rng
    )
    assert np.linalg.norm(unclipped) > 2.0


def test_noise_given_reports_its_epsilon_and_bag_counts_one_fit_fewer():
    refit = prepare(
        make_config({"data": "sklearn:breast_cancer", "folds": 5, "members": [_dp(noise_multiplier=2.0)]})
    )
    bag = prepare(
        make_config(
            {
                "data": "sklearn:breast_cancer",
                "folds": 5,
                "final": "bag",
                "members": [_dp(noise_multiplier=2.0)],
            }
        )
    )
    a, b = refit.members[0].params["dp"], bag.members[0].params["dp"]
    assert (a["fits_per_row"], b["fits_per_row"]) == (5, 4)  # K-1 fold fits (+ the refit)
    assert a["noise_multiplier"] == b["noise_multiplier"] == 2.0
    assert a["epsilon_per_fit"] == pytest.approx(b["epsilon_per_fit"])
    assert a["epsilon_total"] > b["epsilon_total"] > a["epsilon_per_fit"]


def test_a_budget_refuses_before_training_naming_members_and_shares():
    members = [_dp(epsilon=2.0), {**_dp(epsilon=1.0), "name": "second"}]
    with pytest.raises(
        ConfigError,
        match=r"would spend epsilon 2\.29 at delta 1e-05 over 5 fits .* more than privacy_budget's 2 "
        r"\(each alone: dp_logreg 2, second 1\)",
    ):
        prepare(
            make_config(
                {
                    "data": "sklearn:breast_cancer",
                    "members": members,
                    "privacy_budget": {"epsilon": 2, "delta": 1e-5},
                }
            )
        )
    with pytest.raises(
        ConfigError, match=r"member\(s\) \['logreg'\] train on the rows without differential privacy"
    ):
        prepare(
            make_config(
                {
                    "data": "sklearn:breast_cancer",
                    "members": [{"kind": "logreg"}, _dp(epsilon=1.0)],
                    "privacy_budget": {"epsilon": 8, "delta": 1e-5},
                }
            )
        )
    ok = prepare(
        make_config(
            {
                "data": "sklearn:breast_cancer",
                "members": members,
                "privacy_budget": {"epsilon": 2.3, "delta": 1e-5},
            }
        )
    )
    # RDP composes two members of epsilon 2 and 1 to 2.29, not their sum
    assert 2.2 < ok.privacy["total"]["epsilon"] <= 2.3
    assert ok.privacy["budget"] == {"epsilon": 2.3, "delta": 1e-5}


def test_bounds_computed_from_the_data_are_refused_and_bad_dp_is_named():
    del_one = dict(BOUNDS)
    del_one.pop("mean_radius")
    spec = {"kind": "dp_logreg", "params": {"dp": {"epsilon": 1.0}, "feature_bounds": del_one}}
    with pytest.raises(
        ConfigError, match=r"feature_bounds has no \[low, high\] for numeric column\(s\) \['mean_radius'\]"
    ):
        prepare(make_config({"data": "sklearn:breast_cancer", "members": [spec]}))
    with pytest.raises(ConfigError, match=r"give exactly one of dp\.epsilon"):
        prepare(
            make_config(
                {"data": "sklearn:breast_cancer", "members": [_dp(epsilon=1.0, noise_multiplier=1.0)]}
            )
        )
    with pytest.raises(ConfigError, match="is for classification"):
        prepare(make_config({"data": "sklearn:diabetes", "members": [_dp(epsilon=1.0)]}))


@pytest.mark.slow
def test_a_published_dp_member_loads_and_the_manifest_says_what_was_and_was_not_private(tmp_path):
    cfg = make_config(
        {"data": "sklearn:breast_cancer", "folds": 3, "members": [{"kind": "logreg"}, _dp(epsilon=4.0)]}
    )
    p = prepare(cfg)
    oof, refits = fit_all(p, 0)
    report = evaluate(p, oof, refits, "caruana")
    files, manifest = version_payload(p, refits, report, config=cfg.model_dump(mode="json"))
    ref = publish(Registry((tmp_path / "reg").as_uri()), "dp", files, manifest)
    model = accord.load(ref)
    privacy = model.manifest["privacy"]
    assert privacy["dp_members"]["dp_logreg"]["epsilon_total"] <= 4.0
    assert privacy["dp_members"]["dp_logreg"]["accountant"].startswith("dp-accounting 0.6.0 RdpAccountant")
    assert privacy["members_without_dp"] == ["logreg"]
    assert any("ensemble weights" in line for line in privacy["not_dp"])
    X = pd.DataFrame(p.X_test)
    member = model.members["dp_logreg"]
    np.testing.assert_allclose(member.predict(model.schema.conform(X)), refits["dp_logreg"].test_predictions)
    assert (model.predict(X) == model.predict(X)).all()


@pytest.mark.slow
def test_keras_mlp_with_dp_clips_and_adds_the_accounted_noise_and_reloads(tmp_path):
    from accord.members.keras_kind import KerasMLP

    parts = {"sepal_length": [4, 8], "sepal_width": [2, 4.5], "petal_length": [1, 7], "petal_width": [0, 2.6]}
    iris = {f"{name}_(cm)": bounds for name, bounds in parts.items()}
    spec = {
        "kind": "keras_mlp",
        "params": {
            "dp": {"noise_multiplier": 1.3, "l2_norm_clip": 0.7},
            "feature_bounds": iris,
            "sample_rate": 0.1,
            "epochs": 3,
            "hidden_units": [8],
            "learning_rate": 0.05,
        },
    }
    cfg = make_config({"data": "sklearn:iris", "folds": 3, "members": [spec]})
    p = prepare(cfg)
    dp = p.members[0].params["dp"]
    one_fit = SelfComposedDpEvent(PoissonSampledDpEvent(0.1, GaussianDpEvent(1.3)), 30)
    assert dp["steps_per_fit"] == 30 and dp["fits_per_row"] == 3
    assert dp["epsilon_total"] == pytest.approx(
        RdpAccountant().compose(SelfComposedDpEvent(one_fit, 3)).get_epsilon(1e-5), rel=1e-9
    )
    assert p.privacy["dp_members"]["keras_mlp"]["epsilon_total"] == dp["epsilon_total"]

    seen: list[tuple[int, np.ndarray]] = []
    member = KerasMLP("classification", p.members[0].params, n_classes=3, seed=1)
    member.on_step = lambda rows, noise: seen.append((rows, noise))
    member.fit(p.X_train, p.y_train, p.schema)
    assert len(seen) == 30
    n_weights = sum(int(np.prod(v.shape)) for v in member.model_.trainable_variables)
    assert all(noise.size == n_weights for _, noise in seen)  # noise on every weight, every step
    noise = np.concatenate([z for _, z in seen])
    assert noise.std() == pytest.approx(1.3 * 0.7, rel=0.03)
    assert np.mean([rows for rows, _ in seen]) / len(p.X_train) == pytest.approx(0.1, rel=0.25)
    assert (
        "design.json" in member.save() and "preprocess.skops" not in member.save()
    )  # nothing fitted on rows
    again = KerasMLP.load(member.save(), member.info())
    np.testing.assert_allclose(again.predict(p.X_test), member.predict(p.X_test), rtol=1e-6)
    with pytest.raises(ConfigError, match=r"keras_cnn\): \['dp'\] are keras_mlp's only"):
        prepare(
            make_config(
                {
                    "data": "sklearn:digits",
                    "members": [{"kind": "keras_cnn", "params": {"dp": {"epsilon": 1}}}],
                }
            )
        )


def test_each_fit_draws_fresh_noise_whatever_the_seed_and_missing_categories_match_none():
    """Noise anyone could regenerate from the published seed would protect nothing."""
    from accord.members.dp import bounded_design

    p = prepare(make_config({"data": "sklearn:breast_cancer", "folds": 3, "members": [_dp(epsilon=1.0)]}))
    draws = []
    for _ in range(2):
        member = DPLogReg("classification", p.members[0].params, n_classes=2, seed=0)
        first: list[np.ndarray] = []
        member.on_step = lambda rows, noise, first=first: first.append(noise) if not first else None
        member.fit(p.X_train, p.y_train, p.schema)
        draws.append(first[0])
    assert not np.allclose(draws[0], draws[1])  # same seed, same rows: independent noise

    columns = [{"name": "c", "kind": "categorical", "categories": ["a", "b"]}]
    design = bounded_design(pd.DataFrame({"c": ["a", None, "b"]}), columns, {})
    np.testing.assert_array_equal(design, [[1, 0, 1], [0, 0, 1], [0, 1, 1]])

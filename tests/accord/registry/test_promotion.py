"""The promotion gate and alias locks against real stores (local disk and S3 over HTTP)."""

from __future__ import annotations

import itertools
import threading
import time

import numpy as np
import pandas as pd
import pytest

from accord.config import make_config
from accord.ensembling.evaluation import evaluate
from accord.registry.promotion import Baseline, promote
from accord.registry.publishing import version_payload
from accord.registry.store import Registry
from accord.training.fit import fit_all
from accord.training.prepare import prepare

DATA = "sklearn:breast_cancer"
STRONG = [{"kind": "logreg"}, {"kind": "hist_gb", "params": {"max_iter": 50}}]
WEAK = [{"kind": "knn", "params": {"n_neighbors": 1}}]


def publish_run(
    store: str, members: list[dict], data_source: str = DATA, target: str | None = None
) -> tuple[str, object, float, Baseline]:
    cfg = make_config(
        {
            "data": data_source,
            "target": target,
            "members": members,
            "folds": 3,
            "store": store,
            "name": "model",
        }
    )
    data = prepare(cfg)
    oof, refits = fit_all(data, 0)
    report = evaluate(data, oof, refits, "caruana")
    files, manifest = version_payload(data, refits, report, config={})
    version = Registry(store).publish("model", files, manifest)
    return version, data, float(report.ensemble["log_loss"]), Baseline.of(report)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    store = (tmp_path_factory.mktemp("promo") / "registry").as_uri()
    strong = publish_run(store, STRONG)
    weak = publish_run(store, WEAK)
    return store, strong, weak


def test_a_worse_challenger_leaves_the_alias_and_a_better_one_moves_it(runs):
    store, (strong_v, data, strong_score, strong_b), (weak_v, _, weak_score, weak_b) = runs
    reg = Registry(store)
    assert weak_score > strong_score
    first = promote(reg, "model", weak_v, data, weak_score, "log_loss", baseline=weak_b)
    assert first.promoted and "was unset" in first.reason
    better = promote(reg, "model", strong_v, data, strong_score, "log_loss", baseline=strong_b)
    assert better.promoted and better.incumbent == weak_v
    assert better.incumbent_score == pytest.approx(weak_score)
    assert reg.get_alias("model", "production") == strong_v
    worse = promote(reg, "model", weak_v, data, weak_score, "log_loss", baseline=weak_b)
    assert not worse.promoted
    assert f"does not beat the incumbent's {strong_score:.4f}; kept {strong_v}" in worse.reason
    assert reg.get_alias("model", "production") == strong_v
    again = promote(reg, "model", strong_v, data, strong_score, "log_loss", baseline=strong_b)  # a rerun
    assert again.promoted and again.reason == f"'production' already points to {strong_v}; nothing moved"


def test_policies_always_and_never(runs):
    store, (_, data, _, _), (weak_v, _, weak_score, weak_b) = runs
    reg = Registry(store)
    assert not promote(
        reg, "model", weak_v, data, weak_score, "log_loss", baseline=weak_b, alias="canary", policy="never"
    ).promoted
    assert reg.get_alias("model", "canary") is None
    assert promote(
        reg, "model", weak_v, data, weak_score, "log_loss", baseline=weak_b, alias="canary", policy="always"
    ).promoted
    assert reg.get_alias("model", "canary") == weak_v


@pytest.fixture(scope="module")
def chance(tmp_path_factory) -> str:
    """2,000 rows of 200 classes, 10 each, with labels the features say nothing of: chance is all there is."""
    rng = np.random.default_rng(5)
    frame = pd.DataFrame(rng.normal(size=(2000, 10)), columns=[f"x{i}" for i in range(10)])
    frame["label"] = rng.permutation(np.repeat([f"c{i:03d}" for i in range(200)], 10))
    path = tmp_path_factory.mktemp("chance") / "chance.csv"
    frame.to_csv(path, index=False)
    return path.as_uri()


@pytest.mark.slow
def test_a_chance_level_version_is_published_but_no_alias_moves_to_it(tmp_path, chance):
    store = (tmp_path / "registry").as_uri()
    version, data, score, baseline = publish_run(
        store, [{"kind": "logreg"}, {"kind": "knn"}], chance, "label"
    )
    assert not baseline.beaten and baseline.score == pytest.approx(np.log(200), abs=0.05)
    reg = Registry(store)
    for alias in ("production", "canary"):
        decision = promote(reg, "model", version, data, score, "log_loss", baseline=baseline, alias=alias)
        assert not decision.promoted and reg.get_alias("model", alias) is None
        assert "does not beat the trivial baseline (baseline:prior" in decision.reason
        assert f"the version is published for inspection, but {alias!r} stays unset" in decision.reason
    assert reg.versions("model") == [version]  # published all the same
    assert promote(
        reg, "model", version, data, score, "log_loss", baseline=baseline, policy="always"
    ).promoted


def test_concurrent_promotions_keep_the_better_version(runs):
    store, (strong_v, data, strong_score, strong_b), (weak_v, _, weak_score, weak_b) = runs
    reg = Registry(store)
    for attempt in range(3):
        alias = f"race-{attempt}"
        order = [(weak_v, weak_score, weak_b), (strong_v, strong_score, strong_b)][
            :: 1 if attempt % 2 else -1
        ]
        threads = [
            threading.Thread(
                target=promote,
                args=(Registry(store), "model", v, data, s, "log_loss"),
                kwargs={"alias": alias, "baseline": b},
            )
            for v, s, b in order
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert reg.get_alias("model", alias) == strong_v


@pytest.mark.parametrize("kind", ["file", "s3"])
def test_alias_lock_is_exclusive(kind, tmp_path, s3_store):
    store = (tmp_path / "r").as_uri() if kind == "file" else s3_store
    reg = Registry(store)
    inside: list[tuple[float, float]] = []

    def hold() -> None:
        with Registry(store).alias_lock("m", "production"):
            start = time.monotonic()
            time.sleep(0.2)
            inside.append((start, time.monotonic()))

    threads = [threading.Thread(target=hold) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    inside.sort()
    assert len(inside) == 3
    assert all(a_end <= b_start for (_, a_end), (b_start, _) in itertools.pairwise(inside))
    assert reg.aliases("m") == {}  # lock files are not aliases, and are gone


def test_two_concurrent_publishes_of_one_name_give_two_versions(s3_store):
    reg = Registry(s3_store)
    versions: list[str] = []
    threads = [
        threading.Thread(target=lambda: versions.append(reg.publish("same", {"ensemble.json": b"{}"}, {})))
        for _ in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(versions) == reg.versions("same") and len(set(versions)) == 2

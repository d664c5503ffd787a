"""The promotion gate and alias locks against real stores (local disk and S3 over HTTP)."""

from __future__ import annotations

import itertools
import threading
import time

import pytest

from accord.config import make_config
from accord.evaluation import evaluate
from accord.promotion import promote
from accord.publishing import version_payload
from accord.store.registry import Registry
from accord.training import fit_all, prepare

DATA = "sklearn:breast_cancer"
STRONG = [{"kind": "logreg"}, {"kind": "hist_gb", "params": {"max_iter": 50}}]
WEAK = [{"kind": "knn", "params": {"n_neighbors": 1}}]


def publish_run(store: str, members: list[dict]) -> tuple[str, object, float]:
    cfg = make_config({"data": DATA, "members": members, "folds": 3, "store": store, "name": "model"})
    data = prepare(cfg)
    oof, refits = fit_all(data, 0)
    report = evaluate(data, oof, refits, "caruana")
    files, manifest = version_payload(data, refits, report, config={})
    version = Registry(store).publish("model", files, manifest)
    return version, data, float(report.ensemble["log_loss"])


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    store = (tmp_path_factory.mktemp("promo") / "registry").as_uri()
    strong = publish_run(store, STRONG)
    weak = publish_run(store, WEAK)
    return store, strong, weak


def test_a_worse_challenger_leaves_the_alias_and_a_better_one_moves_it(runs):
    store, (strong_v, data, strong_score), (weak_v, _, weak_score) = runs
    reg = Registry(store)
    assert weak_score > strong_score
    first = promote(reg, "model", weak_v, data, weak_score, "log_loss")
    assert first.promoted and "was unset" in first.reason
    better = promote(reg, "model", strong_v, data, strong_score, "log_loss")
    assert better.promoted and better.incumbent == weak_v
    assert better.incumbent_score == pytest.approx(weak_score)
    assert reg.get_alias("model", "production") == strong_v
    worse = promote(reg, "model", weak_v, data, weak_score, "log_loss")
    assert not worse.promoted
    assert f"does not beat the incumbent's {strong_score:.4f}; kept {strong_v}" in worse.reason
    assert reg.get_alias("model", "production") == strong_v


def test_policies_always_and_never(runs):
    store, (_, data, _), (weak_v, _, weak_score) = runs
    reg = Registry(store)
    assert not promote(
        reg, "model", weak_v, data, weak_score, "log_loss", alias="canary", policy="never"
    ).promoted
    assert reg.get_alias("model", "canary") is None
    assert promote(
        reg, "model", weak_v, data, weak_score, "log_loss", alias="canary", policy="always"
    ).promoted
    assert reg.get_alias("model", "canary") == weak_v


def test_concurrent_promotions_keep_the_better_version(runs):
    store, (strong_v, data, strong_score), (weak_v, _, weak_score) = runs
    reg = Registry(store)
    for attempt in range(3):
        alias = f"race-{attempt}"
        order = [(weak_v, weak_score), (strong_v, strong_score)][:: 1 if attempt % 2 else -1]
        threads = [
            threading.Thread(
                target=promote,
                args=(Registry(store), "model", v, data, s, "log_loss"),
                kwargs={"alias": alias},
            )
            for v, s in order
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

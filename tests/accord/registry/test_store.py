from __future__ import annotations

import json
import threading

import numpy as np
import pytest

import accord
from accord.config import make_config
from accord.ensembling.evaluation import evaluate
from accord.errors import IntegrityError, ModelReferenceError, NotFoundError, SchemaError
from accord.registry.provenance import source_digest
from accord.registry.publishing import publish, version_payload
from accord.registry.refs import parse_ref
from accord.registry.store import Registry
from accord.training.fit import fit_all
from accord.training.prepare import prepare

MEMBERS = [
    {"kind": "logreg"},
    {"kind": "hist_gb", "params": {"max_iter": 30}},
    {"kind": "xgboost", "params": {"n_estimators": 30}},
]


def _train(store: str, data: str = "sklearn:wine"):
    cfg = make_config({"data": data, "members": MEMBERS, "folds": 3, "store": store, "name": "wine"})
    p = prepare(cfg)
    oof, refits = fit_all(p, 0)
    report = evaluate(p, oof, refits, "caruana")
    files, manifest = version_payload(p, refits, report, config=cfg.model_dump(mode="json"))
    ref = publish(Registry(store), "wine", files, manifest)
    expected = report.rule.combine([refits[n].test_predictions for n in report.members])
    return p, ref, expected


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    store = (tmp_path_factory.mktemp("reg") / "registry").as_uri()
    return (store, *_train(store))


@pytest.mark.slow
def test_load_matches_in_memory_predictions(published):
    store, p, ref, expected = published
    model = accord.load(ref)
    np.testing.assert_allclose(model.predict_proba(p.X_test), expected, rtol=1e-9)
    assert list(model.classes_) == [0, 1, 2]
    assert set(model.members) == {"logreg", "hist_gb", "xgboost"}
    assert sum(model.weights.values()) == pytest.approx(1.0)
    assert model.manifest["lineage"]["data"]["fingerprint"] == p.fingerprint
    assert model.manifest["libraries"]["scikit-learn"].startswith("1.9")
    assert model.manifest["libraries"]["tensorflow"]  # installed here as tensorflow-cpu, found too
    assert model.manifest["lineage"]["code_digest"] == source_digest()  # the exact source that trained it
    assert accord.load(f"{store}/wine").manifest["version"] == model.manifest["version"]  # newest


def test_manifest_lists_every_file_with_checksums_and_no_pickle(published):
    store, _, ref, _ = published
    r = parse_ref(ref)
    reg = Registry(store)
    manifest = reg.read_manifest(r.name, r.version)
    on_disk = {p.split(f"{r.version}/", 1)[1] for p in reg.fs.find(f"{reg.root}/wine/versions/{r.version}")}
    assert on_disk - {"manifest.json"} == set(manifest["files"]) | set(manifest["documents"])
    assert set(manifest["documents"]) == {"README.md", "report.html"}  # the card and report, for people
    assert all(len(e["sha256"]) == 64 and e["size"] > 0 for e in manifest["files"].values())
    assert {p.rsplit(".", 1)[1] for p in manifest["files"]} <= {"json", "skops", "ubj"}
    for key in ("schema", "metrics", "weights", "lineage", "libraries"):
        assert key in manifest


def test_schema_is_enforced_on_predict(published):
    _, p, ref, _ = published
    model = accord.load(ref)
    with pytest.raises(SchemaError, match=r"missing columns: \['alcohol'\]"):
        model.predict(p.X_test.drop(columns=["alcohol"]))
    shuffled = p.X_test[list(reversed(p.X_test.columns))]
    np.testing.assert_array_equal(model.predict(shuffled), model.predict(p.X_test))


@pytest.mark.parametrize(
    "target", ["members/xgboost/model.ubj", "ensemble.json", "members/logreg/model.skops"]
)
def test_flipped_byte_is_refused_before_deserialising(tmp_path, target):
    store = (tmp_path / "registry").as_uri()
    _, ref, _ = _train(store)
    r = parse_ref(ref)
    reg = Registry(store)
    path = f"{reg.root}/wine/versions/{r.version}/{target}"
    data = bytearray(reg.fs.cat_file(path))
    data[len(data) // 2] ^= 0x01
    reg.fs.pipe_file(path, bytes(data))
    # ensemble.json with a flipped byte may still parse; the checksum, not the parser, must refuse it
    with pytest.raises(IntegrityError, match=f"file '{target}' failed verification"):
        accord.load(ref)


def test_version_without_manifest_is_invisible(tmp_path):
    store = (tmp_path / "registry").as_uri()
    _, ref, _ = _train(store)
    reg = Registry(store)
    reg.fs.makedirs(f"{reg.root}/wine/versions/29990101T000000000Z-deadbeef", exist_ok=True)
    reg.fs.pipe_file(f"{reg.root}/wine/versions/29990101T000000000Z-deadbeef/ensemble.json", b"{}")
    assert reg.versions("wine") == [parse_ref(ref).version]
    assert accord.load(f"{store}/wine").manifest["ref"] == ref


def test_failed_publish_leaves_nothing(tmp_path):
    store = (tmp_path / "registry").as_uri()
    reg = Registry(store)
    with pytest.raises(IntegrityError, match="has a type accord never loads"):
        reg.publish("m", {"members/a/model.pkl": b"x"}, {})
    with pytest.raises(Exception, match="not JSON serialisable"):
        reg.publish("m", {"ensemble.json": b"{}"}, {"bad": object()})
    assert reg.versions("m") == []
    assert not reg.fs.exists(f"{reg.root}/m/versions") or reg.fs.ls(f"{reg.root}/m/versions") == []


def test_concurrent_publishers_get_distinct_versions(memory_store):
    reg = Registry(memory_store)
    versions: list[str] = []

    def work():
        versions.append(reg.publish("same", {"ensemble.json": b"{}"}, {}))

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(versions)) == 8
    assert reg.versions("same") == sorted(versions)


def test_aliases_resolve(tmp_path):
    store = (tmp_path / "registry").as_uri()
    reg = Registry(store)
    v = reg.publish("m", {"ensemble.json": json.dumps({}).encode()}, {})
    reg.set_alias("m", "production", v)
    assert reg.resolve(parse_ref(f"{store}/m@production")) == v
    with pytest.raises(NotFoundError, match="alias 'staging' of 'm' is not set"):
        reg.resolve(parse_ref(f"{store}/m@staging"))


def test_a_bare_name_means_the_production_alias_when_set_else_the_newest_version(tmp_path):
    store = (tmp_path / "registry").as_uri()
    reg = Registry(store)
    promoted = reg.publish("house", {"ensemble.json": b"{}"}, {})
    newest = reg.publish("house", {"ensemble.json": b"{}"}, {})  # published, not promoted
    assert reg.resolution(parse_ref(f"{store}/house")) == (
        newest,
        "the newest version; alias 'production' is not set",
    )
    reg.set_alias("house", "production", promoted)
    version, how = reg.resolution(parse_ref(f"{store}/house"))
    assert version == promoted != newest and how.startswith("alias 'production'")
    assert reg.resolution(parse_ref(f"{store}/house:{newest}")) == (newest, "pinned")
    _, manifest, _ = reg.fetch(parse_ref(f"{store}/house"))
    assert manifest["ref"] == f"{store}/house:{promoted}" and manifest["resolved"].startswith(
        "alias 'production'"
    )


@pytest.mark.parametrize(
    "ref",
    [
        "file:///srv/registry/../etc",
        "file:///srv/registry/Bad",
        "file:///srv/registry/a..b",
        "file:///srv/registry/m:latest",
        "file:///srv/r/%2e%2e",
        "nostore",
        "",
        "s3://b/" + "x" * 70,
    ],
)
def test_bad_references_are_refused_before_io(ref):
    with pytest.raises(ModelReferenceError):
        parse_ref(ref)


def test_missing_model(tmp_path):
    with pytest.raises(NotFoundError, match="model 'ghost' has no published version"):
        accord.load(f"{(tmp_path / 'r').as_uri()}/ghost")


@pytest.mark.slow
def test_importing_accord_and_loading_does_not_import_prefect(published):
    import subprocess
    import sys

    _, _, ref, _ = published
    code = (
        f"import sys, accord; m = accord.load({ref!r}); "
        "assert 'prefect' not in sys.modules and 'distributed' not in sys.modules; print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


@pytest.mark.parametrize(
    "method, weights",
    [("caruana", [0.75, 0.0, 0.25]), ("hard", [0.0, 0.5, 0.5]), ("stacking", None)],
)
def test_members_at_weight_zero_are_not_predicted_and_change_nothing(published, method, weights, monkeypatch):
    from accord.ensembling.ensemble import ensemble as make_ensemble
    from accord.ensembling.weights import EnsembleWeights, fit_weights

    _, p, ref, _ = published
    model = accord.load(ref)
    every = model.member_predictions(p.X_test)
    if weights is None:  # a meta-learner fitted on these predictions: any valid one will do
        rule = fit_weights(list(every.values()), p.y_test, "classification", "stacking", n_classes=3)
    else:
        rule = EnsembleWeights(method, "classification", np.array(weights), 3, temperature=0.9)
    called: list[str] = []
    for name, member in model.members.items():  # a spy that still predicts with the real member
        real = member.predict
        monkeypatch.setattr(member, "predict", lambda X, real=real, name=name: called.append(name) or real(X))
    ensemble = make_ensemble(model.members, rule, model.schema)

    expected = rule.combine(list(every.values()))
    np.testing.assert_array_equal(ensemble.predict_proba(p.X_test), expected)
    np.testing.assert_array_equal(ensemble.predict(p.X_test), ensemble.classes_[np.argmax(expected, axis=1)])
    names = list(model.members)
    wanted = names if weights is None else [n for n, w in zip(names, weights, strict=True) if w]
    assert called == wanted * 2  # predict_proba, then predict


@pytest.mark.slow
def test_weighted_only_loading_skips_members_at_weight_zero_and_predicts_the_same(tmp_path):
    import dataclasses

    from accord.ensembling.weights import EnsembleWeights

    store = (tmp_path / "registry").as_uri()
    cfg = make_config({"data": "sklearn:wine", "members": MEMBERS, "folds": 3, "store": store})
    p = prepare(cfg)
    oof, refits = fit_all(p, 0)
    report = evaluate(p, oof, refits, "caruana")
    rule = EnsembleWeights("caruana", "classification", np.array([0.6, 0.0, 0.4]), 3, temperature=0.9)
    report = dataclasses.replace(report, rule=rule)  # hist_gb at weight 0
    files, manifest = version_payload(p, refits, report, config=cfg.model_dump(mode="json"))
    ref = publish(Registry(store), "wine", files, manifest)

    whole, lean = accord.load(ref), accord.load(ref, weighted_only=True)
    assert list(whole.members) == ["logreg", "hist_gb", "xgboost"]
    assert list(lean.members) == ["logreg", "xgboost"]
    assert lean.weights == {"logreg": 0.6, "xgboost": 0.4}
    assert [m["name"] for m in lean.manifest["members"]] == ["logreg", "hist_gb", "xgboost"]
    np.testing.assert_array_equal(lean.predict_proba(p.X_test), whole.predict_proba(p.X_test))
    np.testing.assert_array_equal(lean.predict(p.X_test), whole.predict(p.X_test))
    with pytest.raises(SchemaError, match="missing columns"):  # the schema is still enforced
        lean.predict(p.X_test.drop(columns=p.X_test.columns[0]))

    # a skipped member is still verified: a flipped byte in its file refuses the load
    version = tmp_path / "registry" / "wine" / "versions" / parse_ref(ref).version
    path = version / "members" / "hist_gb" / "model.skops"
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(IntegrityError, match="hist_gb"):
        accord.load(ref, weighted_only=True)


def test_an_ensemble_file_with_more_weights_than_members_is_refused(tmp_path):
    store = (tmp_path / "registry").as_uri()
    cfg = make_config({"data": "sklearn:wine", "members": MEMBERS[:2], "folds": 3, "store": store})
    p = prepare(cfg)
    oof, refits = fit_all(p, 0)
    files, manifest = version_payload(p, refits, evaluate(p, oof, refits, "equal"), config=cfg.model_dump())
    document = json.loads(files["ensemble.json"])
    document["rule"]["weights"] = [0.5, 0.0, 0.5]  # written whole and checksummed, but inconsistent
    files["ensemble.json"] = json.dumps(document).encode()
    ref = publish(Registry(store), "wine", files, manifest)
    for weighted_only in (False, True):
        with pytest.raises(IntegrityError, match=r"ensemble\.json lists 2 members but 3 weights"):
            accord.load(ref, weighted_only=weighted_only)


LOAD_AND_REPORT = """
import json, sys
import pandas as pd
import accord

model = accord.load(sys.argv[1])
X = pd.read_json(sys.argv[2], orient="split")
first = {lib: lib in sys.modules for lib in ("tensorflow", "keras", "xgboost")}
proba = model.predict_proba(X).tolist()
after_predict = {lib: lib in sys.modules for lib in ("tensorflow", "keras", "xgboost")}
import pickle
again = pickle.loads(pickle.dumps(model))  # members at weight 0 pickle as they are: still not loaded
pickled = again.predict_proba(X).tolist() == proba and "xgboost" not in sys.modules
keras_proba = model.members["keras_mlp"].predict(model.schema.conform(X)).tolist()
print(json.dumps({"first": first, "after_predict": after_predict, "proba": proba, "pickled": pickled,
                  "keras": keras_proba, "after_keras": "tensorflow" in sys.modules,
                  "repr": repr(model.members["xgboost"])}))
"""


@pytest.mark.slow
def test_load_imports_tensorflow_and_xgboost_only_for_members_with_weight(tmp_path):
    import dataclasses
    import subprocess
    import sys

    from accord.ensembling.weights import EnsembleWeights

    store = (tmp_path / "registry").as_uri()
    members = [{"kind": "logreg"}, {"kind": "xgboost", "params": {"n_estimators": 10}}]
    members.append({"kind": "keras_mlp", "params": {"epochs": 3}})
    cfg = make_config({"data": "sklearn:wine", "members": members, "folds": 3, "store": store})
    p = prepare(cfg)
    oof, refits = fit_all(p, 0)
    report = evaluate(p, oof, refits, "caruana")
    rule = EnsembleWeights("caruana", "classification", np.array([1.0, 0.0, 0.0]), 3, temperature=1.0)
    files, manifest = version_payload(
        p, refits, dataclasses.replace(report, rule=rule), config=cfg.model_dump()
    )
    ref = publish(Registry(store), "wine", files, manifest)
    rows = tmp_path / "rows.json"
    p.X_test.to_json(rows, orient="split")

    out = subprocess.run(
        [sys.executable, "-c", LOAD_AND_REPORT, ref, str(rows)], capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-3000:]
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    # members at weight 0 are listed but not deserialised: neither library is imported, even to predict
    assert seen["first"] == {"tensorflow": False, "keras": False, "xgboost": False}
    assert seen["after_predict"] == {"tensorflow": False, "keras": False, "xgboost": False}
    assert seen["repr"] == "Deferred('xgboost', not loaded yet)"
    assert seen["pickled"] is True
    np.testing.assert_allclose(seen["proba"], refits["logreg"].test_predictions)
    # used, a deferred member loads then and predicts as the member that was published
    assert seen["after_keras"] is True
    np.testing.assert_allclose(seen["keras"], refits["keras_mlp"].test_predictions, rtol=1e-5, atol=1e-6)

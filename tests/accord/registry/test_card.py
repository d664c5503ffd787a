"""Every published version carries a model card, README.md, written from its manifest."""

from __future__ import annotations

import pytest
import yaml

from accord.config import make_config
from accord.ensembling.evaluation import evaluate
from accord.registry.card import CARD_FILE
from accord.registry.publishing import publish, version_payload
from accord.registry.refs import parse_ref
from accord.registry.store import Registry
from accord.training.fit import fit_all
from accord.training.prepare import prepare


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    store = (tmp_path_factory.mktemp("card") / "registry").as_uri()
    values = {
        "data": "sklearn:wine",
        "members": [{"kind": "logreg"}, {"kind": "knn"}],
        "folds": 3,
        "store": store,
        "name": "wine",
        "license": "apache-2.0",
        "intended_use": "Teaching: telling three cultivars apart. Not for buying wine.",
        "description": "Wine cultivars from 13 chemical measurements.",
    }
    cfg = make_config(values)
    p = prepare(cfg)
    oof, refits = fit_all(p, 0)
    files, manifest = version_payload(p, refits, evaluate(p, oof, refits, "caruana"), config=cfg.model_dump())
    ref = publish(Registry(store), "wine", files, manifest)
    registry = Registry(store)
    version = parse_ref(ref).version
    _, manifest, files = registry.fetch(parse_ref(ref))
    assert CARD_FILE not in files  # a document for people: `load` never reads it
    documents = registry.read_documents("wine", version, manifest)  # checksummed all the same
    return documents[CARD_FILE].decode(), manifest, version


def test_the_card_has_hub_front_matter_use_and_license(published):
    card, manifest, version = published
    assert card.startswith("---\n")
    head = yaml.safe_load(card.split("---\n")[1])
    assert head["license"] == "apache-2.0"
    assert head["library_name"] == "accord"
    assert head["pipeline_tag"] == "tabular-classification"
    assert {"accord", "tabular", "ensemble"} <= set(head["tags"])
    body = card.split("---\n", 2)[2]
    assert f"# wine:{version}\n\nWine cultivars from 13 chemical measurements." in body
    assert "## Intended use\n\nTeaching: telling three cultivars apart. Not for buying wine." in body
    assert "## License\n\napache-2.0" in body
    assert f"trained on {manifest['lineage']['data']['rows_train']} rows" in body


def test_the_card_shows_metrics_members_schema_lineage_and_libraries(published):
    card, manifest, _ = published
    rows = {line.split(" | ")[0].lstrip("| "): line for line in card.splitlines() if line.startswith("| ")}
    ensemble = manifest["metrics"]["ensemble"]
    assert rows["ensemble"].split(" | ")[1] == f"{ensemble['log_loss']:.4f}"  # primary metric first
    best = manifest["metrics"]["baselines"]["best_cv_member"]
    assert f"{best['metrics']['log_loss']:.4f}" in rows[f"baseline: best_cv_member ({best['member']})"]
    for name, weight in manifest["weights"].items():
        kind = next(m["kind"] for m in manifest["members"] if m["name"] == name)
        assert any(line.startswith(f"| {name} | {kind} | {weight:.4f} |") for line in card.splitlines()), name
    for column in manifest["schema"]["columns"]:
        assert f"| {column['name']} | numeric | float64 |" in card
    assert "Classes: " + ", ".join(f"`{c}`" for c in manifest["schema"]["classes"]) in card
    assert len(manifest["schema"]["classes"]) == 3
    assert f"fingerprint `{manifest['lineage']['data']['fingerprint']}`" in card
    assert f"| scikit-learn | {manifest['libraries']['scikit-learn']} |" in card
    guard = manifest["metrics"]["guard"]  # wine's 133 training rows: checked on held-back rows
    assert guard["folds"] == 5 and guard["best"] == best["member"]
    share = guard["shrink"]
    loss = guard["nested_cv_loss"][str(share)]
    assert loss == min(guard["nested_cv_loss"].values())
    kept = "the fitted weights whole" if share == 1.0 else f"{share:.0%} of the fitted weights, the rest on"
    assert f"Guard: 5-fold nested cross-validation over the out-of-fold rows kept {kept}" in card
    assert f"(held-back loss {loss:.4f})." in card

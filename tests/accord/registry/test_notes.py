"""Tags, descriptions and deletion: a registry people recognise, through the library and the CLI."""

from __future__ import annotations

import json
import os

import pytest

from accord.config import make_config
from accord.ensembling.evaluation import evaluate
from accord.errors import ConfigError, InUseError, ModelReferenceError, NotFoundError
from accord.registry.listing import list_models, show
from accord.registry.publishing import publish, version_payload
from accord.registry.refs import parse_ref
from accord.registry.store import Registry
from accord.training.fit import fit_all
from accord.training.prepare import prepare
from tests.support.cli import run_cli


def _publish(store: str, **extra: object) -> str:
    cfg = make_config(
        {"data": "sklearn:iris", "members": [{"kind": "logreg"}], "folds": 2, "store": store, **extra}
    )
    p = prepare(cfg)
    oof, refits = fit_all(p, 0)
    files, manifest = version_payload(p, refits, evaluate(p, oof, refits, "equal"), config=cfg.model_dump())
    return parse_ref(publish(Registry(store), "iris", files, manifest)).version or ""


@pytest.fixture()
def two_versions(tmp_path):
    store = (tmp_path / "registry").as_uri()
    first = _publish(store, tags={"team": "risk", "stage": "test"}, description="the first")
    second = _publish(store, tags={"team": "growth"})
    return store, first, second


def test_config_tags_and_later_notes_list_filter_and_show(two_versions):
    store, first, second = two_versions
    registry = Registry(store)
    assert registry.notes("iris", first) == {
        "tags": {"team": "risk", "stage": "test"},
        "description": "the first",
    }
    assert registry.notes("iris", second) == {"tags": {"team": "growth"}, "description": None}

    notes = registry.set_notes("iris", first, tags={"stage": "prod", "owner": "ana"}, untag=["team"])
    assert notes == {"tags": {"stage": "prod", "owner": "ana"}, "description": "the first"}
    registry.set_notes("iris", second, description="the second, with more data")
    assert registry.notes("iris", second)["description"] == "the second, with more data"

    (entry,) = list_models(store, {"stage": "prod"})
    assert [d["version"] for d in entry["details"]] == [first]
    assert entry["details"][0]["tags"] == {"stage": "prod", "owner": "ana"}
    assert list_models(store, {"team": "risk"}) == []  # removed above
    assert [d["version"] for d in list_models(store)[0]["details"]] == [first, second]
    assert show(f"{store}/iris:{second}")["notes"]["description"] == "the second, with more data"
    with pytest.raises(ModelReferenceError, match="invalid tag key 'a b'"):
        registry.set_notes("iris", first, tags={"a b": "c"})


def test_aliases_that_read_as_versions_are_refused(two_versions):
    store, first, _ = two_versions
    registry = Registry(store)
    for alias in ("latest", "newest", first.lower()):  # a version id as an alias name can be
        with pytest.raises(ModelReferenceError, match=f"alias '{alias}' reads as a version"):
            registry.set_alias("iris", alias, first)
    with pytest.raises(ConfigError, match="alias 'latest' reads as a version"):
        make_config({"data": "sklearn:iris", "alias": "latest"})
    assert registry.aliases("iris") == {}


def test_a_version_an_alias_points_at_is_kept_until_the_alias_goes(two_versions):
    store, first, second = two_versions
    registry = Registry(store)
    registry.set_alias("iris", "production", first)
    registry.set_alias("iris", "staging", first)
    with pytest.raises(
        InUseError, match=f"iris:{first} is what alias 'production' points to \\(and \\['staging'\\]\\)"
    ):
        registry.delete_version("iris", first)
    assert registry.versions("iris") == [first, second]

    assert registry.delete_alias("iris", "production") == first
    assert registry.delete_alias("iris", "staging") == first
    with pytest.raises(NotFoundError, match="alias 'staging' of 'iris' is not set"):
        registry.delete_alias("iris", "staging")
    registry.set_notes("iris", first, tags={"x": "y"})
    registry.delete_version("iris", first)
    assert registry.versions("iris") == [second]
    assert not registry.fs.exists(registry._version_dir("iris", first))
    assert not registry.fs.exists(registry._notes_path("iris", first))
    with pytest.raises(NotFoundError):
        registry.delete_version("iris", first)


def test_the_cli_tags_describes_lists_unaliases_and_deletes(two_versions):
    store, first, second = two_versions
    Registry(store).set_alias("iris", "production", second)
    done = run_cli("models", "tag", f"{store}/iris:{first}", "reviewed=yes", "--remove", "stage")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"iris:{first} tags: reviewed=yes, team=risk"
    assert run_cli("models", "describe", f"{store}/iris", "promoted one").returncode == 0  # bare: production
    listed = json.loads(run_cli("models", "list", store, "--tag", "reviewed=yes", "--json").stdout)
    assert [d["version"] for d in listed[0]["details"]] == [first]
    table = run_cli("models", "list", store, env={**os.environ, "COLUMNS": "200"}).stdout
    assert "reviewed=yes, team=risk" in table and "team=growth" in table
    shown = run_cli("models", "show", f"{store}/iris").stdout
    assert "tags: team=growth" in shown and "description: promoted one" in shown

    refused = run_cli("models", "delete", f"{store}/iris:{second}")
    assert refused.returncode == 2
    assert f"iris:{second} is what alias 'production' points to" in refused.stderr
    assert "accord models unalias" in refused.stderr
    assert run_cli("models", "unalias", f"{store}/iris@production").returncode == 0
    assert run_cli("models", "delete", f"{store}/iris:{second}").returncode == 0
    assert Registry(store).versions("iris") == [first]
    bare = run_cli("models", "delete", f"{store}/iris")
    assert bare.returncode == 2 and "names no version" in bare.stderr

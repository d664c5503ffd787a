"""Hostile artifacts and references: refused before anything is deserialised or any storage call.

Each case tampers with a published version the way someone with write access to the store
could — rewriting the manifest's checksums too — so the format checks, not only the
checksums, must hold. A canary file would appear if any planted code ran.
"""

from __future__ import annotations

import json
import pickle
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import accord
from accord.config import make_config
from accord.ensembling.evaluation import evaluate
from accord.errors import IntegrityError, ModelReferenceError
from accord.registry.publishing import publish, version_payload
from accord.registry.refs import parse_ref
from accord.registry.store import Registry, sha256
from accord.training.fit import fit_all
from accord.training.prepare import prepare

MEMBERS = [{"kind": "logreg"}, {"kind": "keras_mlp", "params": {"epochs": 3, "hidden_units": [8]}}]


class Canary:
    """Unpickling this creates a file: proof that planted code ran."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.path,))


@pytest.fixture(scope="module")
def original(tmp_path_factory) -> tuple[Path, str]:
    root = tmp_path_factory.mktemp("hostile") / "registry"
    store = root.as_uri()
    cfg = make_config({"data": "sklearn:iris", "members": MEMBERS, "folds": 2, "store": store, "name": "m"})
    p = prepare(cfg)
    oof, refits = fit_all(p, 0)
    report = evaluate(p, oof, refits, "caruana")
    files, manifest = version_payload(p, refits, report, config=cfg.model_dump(mode="json"))
    ref = publish(Registry(store), "m", files, manifest)
    accord.load(ref)  # the untampered version loads
    return root, parse_ref(ref).version or ""


class Version:
    """A private copy of the published version, tampered with as an attacker would."""

    def __init__(self, original: tuple[Path, str], tmp_path: Path) -> None:
        root, self.version = original
        self.root = tmp_path / "registry"
        shutil.copytree(root, self.root)
        self.dir = self.root / "m" / "versions" / self.version
        self.ref = f"{self.root.as_uri()}/m:{self.version}"

    @property
    def manifest(self) -> dict[str, Any]:
        return dict(json.loads((self.dir / "manifest.json").read_text()))

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        (self.dir / "manifest.json").write_text(json.dumps(manifest))

    def plant(self, path: str, data: bytes, listed: bool = True) -> None:
        """Write `data` at `path` in the version and (if `listed`) give it a valid manifest entry."""
        target = self.dir / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        if listed:
            manifest = self.manifest
            manifest["files"][path] = {"sha256": sha256(data), "size": len(data)}
            self.write_manifest(manifest)


@pytest.fixture
def version(original, tmp_path) -> Version:
    return Version(original, tmp_path)


@pytest.fixture
def canary(tmp_path) -> Path:
    path = tmp_path / "canary"
    yield path
    assert not path.exists(), "planted code ran"


def _files(original: tuple[Path, str]) -> list[str]:
    root, version = original
    return sorted(json.loads((root / "m" / "versions" / version / "manifest.json").read_text())["files"])


@pytest.mark.slow
def test_a_flipped_byte_in_any_file_is_refused(original, tmp_path):
    for i, path in enumerate(_files(original)):
        v = Version(original, tmp_path / str(i))
        data = bytearray((v.dir / path).read_bytes())
        data[len(data) // 2] ^= 0x01
        (v.dir / path).write_bytes(bytes(data))
        with pytest.raises(IntegrityError, match=f"file '{path}' failed verification"):
            accord.load(v.ref)


@pytest.mark.slow
@pytest.mark.parametrize(
    "path",
    [
        "../../../../escape.json",
        "/etc/passwd.json",
        "members/%2e%2e/x.json",
        "members\\..\\x.json",
        "./ok.json",
    ],
)
def test_a_manifest_pointing_outside_its_version_is_refused(version, path):
    manifest = version.manifest
    manifest["files"][path] = {"sha256": "0" * 64, "size": 1}
    version.write_manifest(manifest)
    with pytest.raises(IntegrityError, match="not a plain relative path"):
        accord.load(version.ref)


@pytest.mark.slow
def test_a_manifest_pointing_at_another_file_is_refused(version):
    manifest = version.manifest
    manifest["files"]["members/logreg/model.skops"] = manifest["files"]["members/keras_mlp/model.keras"]
    version.write_manifest(manifest)
    with pytest.raises(IntegrityError, match=r"'members/logreg/model\.skops' failed verification"):
        accord.load(version.ref)


@pytest.mark.slow
def test_a_planted_pickle_never_runs(version, canary):
    bomb = pickle.dumps(Canary(canary))
    version.plant("members/logreg/model.pkl", bomb)  # listed, with a valid checksum
    with pytest.raises(IntegrityError, match="has a type accord never loads"):
        accord.load(version.ref)


@pytest.mark.slow
def test_a_pickle_in_place_of_a_skops_file_never_runs(version, canary):
    version.plant("members/logreg/model.skops", pickle.dumps(Canary(canary)))
    with pytest.raises(IntegrityError, match="not a valid skops file"):
        accord.load(version.ref)


@pytest.mark.slow
def test_a_skops_file_with_an_untrusted_type_is_refused(version):
    from sklearn.dummy import DummyClassifier

    from accord.members import skops_io

    version.plant("members/logreg/model.skops", skops_io.dumps(DummyClassifier().fit([[0], [1]], [0, 1])))
    with pytest.raises(IntegrityError, match="types accord does not trust"):
        accord.load(version.ref)


def _keras_bytes(tmp_path: Path, kind: str, canary: Path) -> bytes:
    """A hostile Keras file built in another process (its custom class is unknown here)."""
    out = tmp_path / f"hostile.{'h5' if kind == 'h5' else 'keras'}"
    script = f"""
import keras, pathlib
canary = pathlib.Path({str(canary)!r})
inputs = keras.Input((4,))
if {kind!r} == "lambda":
    x = keras.layers.Lambda(lambda t: (canary.touch(), t)[1])(inputs)
elif {kind!r} == "custom":
    @keras.saving.register_keras_serializable(package="evil")
    class Evil(keras.layers.Layer):
        def call(self, t):
            canary.touch()
            return t
    x = Evil()(inputs)
else:
    x = keras.layers.Dense(3)(inputs)
model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x))
model.save({str(out)!r})
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    if canary.exists():
        canary.unlink()  # building the file may call the layer; only loading matters here
    return out.read_bytes()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("kind", "match"),
    [
        ("lambda", "(?i)lambda|unsafe|safe_mode"),
        ("custom", "(?i)evil|unknown|could not locate"),
        ("h5", "not a .keras archive"),
    ],
)
def test_hostile_keras_files_are_refused(version, canary, tmp_path, kind, match):
    version.plant("members/keras_mlp/model.keras", _keras_bytes(tmp_path, kind, canary))
    with pytest.raises(IntegrityError, match=match):
        model = accord.load(version.ref)  # refused here if the member has weight,
        _ = model.members["keras_mlp"].loaded  # else when it is first used (at weight 0 it loads lazily)
    assert not canary.exists()


@pytest.mark.slow
def test_an_h5_file_is_never_read(version, canary, tmp_path):
    version.plant("members/keras_mlp/model.h5", _keras_bytes(tmp_path, "h5", canary))
    with pytest.raises(IntegrityError, match="has a type accord never loads"):
        accord.load(version.ref)


UNREACHABLE = "s3://accord-no-such-bucket/registry"  # any storage call here would fail differently


@pytest.mark.parametrize(
    "ref",
    [
        f"{UNREACHABLE}/../etc",
        f"{UNREACHABLE}/%2e%2e",
        f"{UNREACHABLE}/m%2F..%2Fx",
        f"{UNREACHABLE}/m:../../x",
        f"{UNREACHABLE}/m@../x",
        "file:///etc/passwd/../../x",
        f"{UNREACHABLE}/" + "m" * 65,
        f"{UNREACHABLE}/modèle",
        f"{UNREACHABLE}/ｍodel",  # fullwidth m
        f"{UNREACHABLE}/mod\u202eel",  # right-to-left override
        f"{UNREACHABLE}/m\x00",
        f"{UNREACHABLE}/m:20261129T000000000Z-zzzzzzzz",
    ],
)
def test_hostile_references_are_refused_before_any_storage_call(ref, monkeypatch):
    import fsspec

    def no_io(*args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"a storage call was made for {ref!r}")

    import accord.registry.store

    monkeypatch.setattr(accord.registry.store, "url_to_fs", no_io)
    monkeypatch.setattr(fsspec.core, "url_to_fs", no_io)
    monkeypatch.setattr(fsspec, "filesystem", no_io)
    with pytest.raises(ModelReferenceError):
        accord.load(ref)


@pytest.mark.parametrize("name", ["/etc/passwd", "../m", "m/../../x", "M", "", "m" * 65, "m..x", "mödel"])
def test_hostile_names_are_refused_by_the_registry_before_io(tmp_path, name):
    registry = Registry((tmp_path / "r").as_uri())
    for call in (registry.versions, lambda n: registry.get_alias(n, "production")):
        with pytest.raises(ModelReferenceError):
            call(name)
    with pytest.raises(ModelReferenceError):
        registry.publish(name, {"ensemble.json": b"{}"}, {})
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").rglob("*.json"))

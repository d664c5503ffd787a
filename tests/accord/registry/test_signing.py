"""Signed versions: a party signs what it publishes; another party trusts its public key, and only that."""

from __future__ import annotations

import json
import os
import stat
import uuid

import fsspec
import pytest

import accord
from accord.config import make_config
from accord.ensembling.evaluation import evaluate
from accord.errors import ConfigError, IntegrityError
from accord.registry.publishing import publish, version_payload
from accord.registry.refs import parse_ref
from accord.registry.signing import KEY_ENV, SignatureError, fingerprint, generate_keys
from accord.registry.store import MANIFEST, Registry, sha256
from accord.training.fit import fit_all
from accord.training.prepare import prepare
from tests.support.cli import run_cli

MEMBERS = [{"kind": "logreg"}, {"kind": "hist_gb", "params": {"max_iter": 20}}]


@pytest.fixture(scope="module")
def parties(tmp_path_factory):
    """Party B's store on the S3 endpoint, B's keys, and a key of someone else."""
    root = tmp_path_factory.mktemp("keys")
    b_key, b_pub = generate_keys(root / "b")
    _, other_pub = generate_keys(root / "other")
    return {
        "b_key": b_key,
        "b_pub": b_pub,
        "other_pub": other_pub,
        "other_key": root / "other" / "accord.key",
    }


@pytest.fixture(scope="module")
def trained():
    cfg = make_config({"data": "sklearn:wine", "members": MEMBERS, "folds": 3})
    p = prepare(cfg)
    oof, refits = fit_all(p, 0)
    files, manifest = version_payload(p, refits, evaluate(p, oof, refits, "caruana"), config=cfg.model_dump())
    return p, files, manifest


def _store(s3_store: str) -> str:
    return f"{s3_store}/party-b-{uuid.uuid4().hex[:6]}"


def _publish(store: str, trained, key=None, monkeypatch=None) -> str:
    if key is None:
        monkeypatch.delenv(KEY_ENV, raising=False)
    else:
        monkeypatch.setenv(KEY_ENV, str(key))
    _, files, manifest = trained
    return publish(Registry(store), "wine", dict(files), dict(manifest))


def test_keys_generate_writes_an_owner_only_private_key_and_refuses_to_overwrite(tmp_path):
    out = run_cli("keys", "generate", str(tmp_path / "k"))
    assert out.returncode == 0, out.stderr
    private, public = tmp_path / "k" / "accord.key", tmp_path / "k" / "accord.pub"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert private.read_text().startswith("-----BEGIN PRIVATE KEY-----")
    assert public.read_text().startswith("-----BEGIN PUBLIC KEY-----")
    assert fingerprint(public.read_bytes()) in out.stdout
    again = run_cli("keys", "generate", str(tmp_path / "k"))
    assert again.returncode == 2 and "never overwritten" in again.stderr
    assert private.read_bytes() == (tmp_path / "k" / "accord.key").read_bytes()


def test_a_signed_version_loads_with_the_signers_key_and_names_it(s3_store, parties, trained, monkeypatch):
    store = _store(s3_store)
    ref = _publish(store, trained, parties["b_key"], monkeypatch)
    version = parse_ref(ref).version
    fs, root = fsspec.core.url_to_fs(store)
    listed = fs.ls(f"{root}/wine/versions/{version}", detail=False)
    assert f"{root}/wine/versions/{version}/signature.json" in listed
    model = accord.load(ref, trusted_keys=[parties["other_pub"], parties["b_pub"]])
    b = fingerprint(parties["b_pub"].read_bytes())
    assert model.manifest["verified_signer"] == b == model.manifest["signed_by"]
    assert accord.load(ref).manifest.get("verified_signer") is None  # no keys given: not checked
    with pytest.raises(
        SignatureError, match=rf"signed by key {b[:16]}…, which is not among the trusted keys"
    ):
        accord.load(ref, trusted_keys=[parties["other_pub"]])


def test_an_unsigned_version_is_refused_when_keys_are_trusted(s3_store, parties, trained, monkeypatch):
    ref = _publish(_store(s3_store), trained, None, monkeypatch)
    assert "signed_by" not in accord.load(ref).manifest  # loads as before without keys
    with pytest.raises(SignatureError, match=rf"{ref} is not signed"):
        accord.load(ref, trusted_keys=[parties["b_pub"]])


def test_a_version_republished_whole_by_someone_without_the_key_is_refused(
    s3_store, parties, trained, monkeypatch
):
    store = _store(s3_store)
    ref = _publish(store, trained, parties["b_key"], monkeypatch)
    version = parse_ref(ref).version
    fs, root = fsspec.core.url_to_fs(store)
    vdir = f"{root}/wine/versions/{version}"
    # the attacker changes the weights and makes the version whole again: files, checksums, manifest
    ensemble = json.loads(fs.cat_file(f"{vdir}/ensemble.json"))
    ensemble["rule"]["weights"] = [0.25, 0.75]  # not what caruana chose
    body = json.dumps(ensemble).encode()
    fs.pipe_file(f"{vdir}/ensemble.json", body)
    manifest = json.loads(fs.cat_file(f"{vdir}/{MANIFEST}"))
    manifest["files"]["ensemble.json"] = {"sha256": sha256(body), "size": len(body)}
    fs.pipe_file(f"{vdir}/{MANIFEST}", json.dumps(manifest, indent=2, sort_keys=True).encode())
    assert accord.load(ref).weights["logreg"] == 0.25  # whole and consistent: checksums alone accept it
    with pytest.raises(SignatureError, match=r"does not verify .*changed after signing"):
        accord.load(ref, trusted_keys=[parties["b_pub"]])

    # or signs it with a key of their own: named, and refused
    monkeypatch.setenv(KEY_ENV, str(parties["other_key"]))
    forged = publish(Registry(store), "wine", dict(trained[1]), dict(trained[2]))
    other = fingerprint(parties["other_pub"].read_bytes())
    with pytest.raises(SignatureError, match=rf"signed by key {other[:16]}…, which is not among"):
        accord.load(forged, trusted_keys=[parties["b_pub"]])


def test_a_tampered_signature_or_file_is_refused(s3_store, parties, trained, monkeypatch):
    store = _store(s3_store)
    ref = _publish(store, trained, parties["b_key"], monkeypatch)
    fs, root = fsspec.core.url_to_fs(store)
    vdir = f"{root}/wine/versions/{parse_ref(ref).version}"
    original = fs.cat_file(f"{vdir}/signature.json")
    bundle = json.loads(original)
    sig = bundle["dsseEnvelope"]["signatures"][0]["sig"]
    bundle["dsseEnvelope"]["signatures"][0]["sig"] = ("A" if sig[0] != "A" else "B") + sig[1:]
    fs.pipe_file(f"{vdir}/signature.json", json.dumps(bundle).encode())
    with pytest.raises(SignatureError, match="does not verify"):
        accord.load(ref, trusted_keys=[parties["b_pub"]])
    fs.pipe_file(f"{vdir}/signature.json", b"not json")
    with pytest.raises(SignatureError, match="not a signature bundle"):
        accord.load(ref, trusted_keys=[parties["b_pub"]])

    fs.pipe_file(f"{vdir}/signature.json", original)  # a good signature again, but a changed file byte
    accord.load(ref, trusted_keys=[parties["b_pub"]])
    path = f"{vdir}/members/logreg/model.skops"
    raw = bytearray(fs.cat_file(path))
    raw[len(raw) // 2] ^= 0x01
    fs.pipe_file(path, bytes(raw))
    with pytest.raises(IntegrityError, match=r"file 'members/logreg/model.skops' failed verification"):
        accord.load(ref, trusted_keys=[parties["b_pub"]])


def test_a_bad_signing_key_or_trusted_key_is_named(tmp_path, trained, monkeypatch, parties):
    monkeypatch.setenv(KEY_ENV, str(tmp_path / "missing.key"))
    with pytest.raises(ConfigError, match=rf"{KEY_ENV} must be the path of a private key file"):
        publish(Registry(str(tmp_path / "reg")), "wine", dict(trained[1]), dict(trained[2]))
    monkeypatch.setenv(KEY_ENV, str(parties["b_pub"]))  # the public half by mistake
    with pytest.raises(ConfigError, match="is not an unencrypted PEM private key"):
        publish(Registry(str(tmp_path / "reg")), "wine", dict(trained[1]), dict(trained[2]))
    assert not os.path.exists(tmp_path / "reg" / "wine")  # refused before anything was written
    monkeypatch.delenv(KEY_ENV)
    ref = publish(Registry(str(tmp_path / "reg")), "wine", dict(trained[1]), dict(trained[2]))
    with pytest.raises(ConfigError, match=r"trusted key ./nowhere\.pub. is no file"):
        accord.load(ref, trusted_keys=["/nowhere.pub"])
    with pytest.raises(ConfigError, match="no trusted key given"):  # an empty list never means "any"
        accord.load(ref, trusted_keys=[])


def test_trusted_signers_accept_a_signed_parent_and_lineage_shows_its_signer(
    s3_store, parties, trained, monkeypatch, tmp_path
):
    b_store = _store(s3_store)
    parent = _publish(b_store, trained, parties["b_key"], monkeypatch)  # party B publishes, signed
    monkeypatch.delenv(KEY_ENV)
    b = fingerprint(parties["b_pub"].read_bytes())
    members = [{"kind": "logreg"}, {"kind": "published", "params": {"ref": f"{b_store}/wine"}}]
    ours = (tmp_path / "ours").as_uri()

    with pytest.raises(SignatureError, match=r"member 'published': parent .* signed by key .* not among"):
        prepare(
            make_config(
                {"data": "sklearn:wine", "members": members, "trusted_signers": [str(parties["other_pub"])]}
            )
        )

    cfg = make_config(
        {"data": "sklearn:wine", "members": members, "folds": 3, "trusted_signers": [str(parties["b_pub"])]}
    )
    p = prepare(cfg)
    params = next(s.params for s in p.members if s.kind == "published")
    assert params["ref"] == parent and params["parent_signer"] == b
    oof, refits = fit_all(p, 0)
    files, manifest = version_payload(p, refits, evaluate(p, oof, refits, "caruana"), config=cfg.model_dump())
    ref = publish(Registry(ours), "ours", files, manifest)
    lineage = accord.load(ref).manifest["lineage"]["parents"]
    assert [(x["ref"], x["signer"]) for x in lineage] == [(parent, b)]
    shown = run_cli("models", "show", ref)
    assert shown.returncode == 0, shown.stderr
    assert (
        f"{parent} (member published, published (frozen), signed by key {b[:16]}… (verified when trained))"
        in (shown.stdout)
    )
    assert "signature: none" in shown.stdout  # our own version is not signed
    signed = run_cli("models", "show", parent, "--trusted-key", str(parties["b_pub"]))
    assert signed.returncode == 0 and f"signature: verified, key {b[:16]}…" in signed.stdout
    refused = run_cli("models", "show", parent, "--trusted-key", str(parties["other_pub"]))
    assert refused.returncode != 0 and "not among the trusted keys" in refused.stderr

"""Signed versions: who published a version, proven with a key, checked before anything loads.

A version's manifest lists every file's size and sha256, so a signature over the manifest
covers the whole version. Publishing with a private key (``ACCORD_SIGNING_KEY``, a path)
writes ``signature.json`` beside the manifest, before it: a Sigstore bundle made offline
by the OpenSSF ``model-signing`` library with an elliptic-curve key, whose hint names the
signer's public key (the SHA-256 of its PEM, `fingerprint`). A reader that trusts some
public keys verifies the manifest's bytes against the signature and those keys before it
parses the manifest or reads any file; the files are then verified against the manifest's
checksums as always.

Why: a checksum manifest proves a version is whole, not who published it; anyone who can
write to a shared store could publish a whole, consistent, malicious version.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

from accord.errors import ConfigError, IntegrityError

SIGNATURE = "signature.json"  # beside the manifest, written before it
KEY_FILE, PUBLIC_FILE = "accord.key", "accord.pub"
KEY_ENV = "ACCORD_SIGNING_KEY"


class SignatureError(IntegrityError):
    """A version is unsigned, signed by a key not trusted, or its signature does not verify."""


def _pem_public(data: bytes, where: str) -> bytes:
    """`data` (a PEM public key) in canonical SubjectPublicKeyInfo PEM form."""
    from cryptography.hazmat.primitives import serialization

    try:
        key = serialization.load_pem_public_key(data)
    except ValueError as e:
        raise ConfigError(
            f"trusted key {where} is not a PEM public key ({e}); give the accord.pub that "
            "`accord keys generate` wrote."
        ) from e
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def fingerprint(public_pem: bytes) -> str:
    """The SHA-256 (hex) of a public key's canonical PEM: how a signature names its key."""
    return hashlib.sha256(_pem_public(public_pem, "(given)")).hexdigest()


def generate_keys(directory: str | Path) -> tuple[Path, Path]:
    """Write a new P-256 key pair: ``DIRECTORY/accord.key`` (owner-only) and ``DIRECTORY/accord.pub``.

    Raises:
        ConfigError: either file exists already (keys are never overwritten).
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    folder = Path(directory).expanduser()
    key_path, pub_path = folder / KEY_FILE, folder / PUBLIC_FILE
    for path in (key_path, pub_path):
        if path.exists():
            raise ConfigError(f"{path} exists; keys are never overwritten. Choose another directory.")
    folder.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(private)
    pub_path.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return key_path, pub_path


def signing_key() -> Path | None:
    """The private key every publish signs with: ``$ACCORD_SIGNING_KEY``, or None when unset.

    Raises:
        ConfigError: the variable names no readable file.
    """
    value = os.environ.get(KEY_ENV, "").strip()
    if not value:
        return None
    path = Path(value).expanduser()
    if not path.is_file():
        raise ConfigError(
            f"{KEY_ENV} must be the path of a private key file (accord.key from `accord keys generate`); "
            f"found {value!r}, which is no file. Fix the path or unset it."
        )
    return path


def checked_signing_key() -> Path | None:
    """`signing_key`, checked to be a usable private key (a run checks it before any training).

    Raises:
        ConfigError: ``ACCORD_SIGNING_KEY`` names no file, or one that is not an unencrypted
            elliptic-curve private key.
    """
    path = signing_key()
    if path is not None:
        public_key_of(path)
    return path


def public_key_of(key_path: Path) -> bytes:
    """The canonical public PEM of the private key at `key_path`.

    Raises:
        ConfigError: the file is not an unencrypted PEM elliptic-curve private key.
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    try:
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (ValueError, TypeError) as e:
        raise ConfigError(
            f"{KEY_ENV}: {key_path} is not an unencrypted PEM private key ({e}); give the accord.key "
            "that `accord keys generate` wrote."
        ) from e
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ConfigError(f"{key_path} is a {type(key).__name__}; signing needs an elliptic-curve key.")
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def sign_manifest(body: bytes, key_path: Path) -> bytes:
    """A signature (Sigstore bundle, JSON) over the manifest bytes `body`, made with `key_path`."""
    from model_signing import signing

    with tempfile.TemporaryDirectory(prefix="accord-sign-") as tmp:
        manifest, signature = Path(tmp) / "manifest.json", Path(tmp) / SIGNATURE
        manifest.write_bytes(body)
        signing.Config().use_elliptic_key_signer(private_key=str(key_path)).sign(manifest, signature)
        return signature.read_bytes()


def trusted_keys(keys: Iterable[str | Path]) -> dict[str, bytes]:
    """Trusted public keys, by fingerprint: each a path to a PEM file or the PEM text itself.

    Raises:
        ConfigError: a key is neither a readable file nor PEM text, or no key is given.
    """
    out: dict[str, bytes] = {}
    for key in keys:
        text = str(key)
        if text.lstrip().startswith("-----BEGIN"):
            pem, where = text.encode(), "(PEM text)"
        else:
            path = Path(text).expanduser()
            if not path.is_file():
                raise ConfigError(
                    f"trusted key {text!r} is no file; give the path of a party's accord.pub or its PEM text."
                )
            pem, where = path.read_bytes(), str(path)
        canonical = _pem_public(pem, where)
        out[hashlib.sha256(canonical).hexdigest()] = canonical
    if not out:
        raise ConfigError("no trusted key given; pass at least one public key (accord.pub).")
    return out


def _hint(bundle: bytes) -> str | None:
    """The key hint a bundle names, or None when it is not a bundle with one."""
    try:
        document = json.loads(bundle)
        hint = document["verificationMaterial"]["publicKey"]["hint"]
    except (ValueError, KeyError, TypeError):
        return None
    return hint if isinstance(hint, str) else None


def verify_manifest(what: str, body: bytes, bundle: bytes | None, trusted: dict[str, bytes]) -> str:
    """Check that the manifest bytes `body` were signed by one of `trusted`; return its fingerprint.

    Args:
        what: The version, as messages name it (``store/name:version``).
        body: The manifest's bytes as stored.
        bundle: The signature file's bytes, or None where the version has none.
        trusted: `trusted_keys`.

    Raises:
        SignatureError: the version is unsigned, its signature names a key not among
            `trusted`, or it does not verify (a changed byte of the manifest or signature).
    """
    from cryptography.exceptions import InvalidSignature
    from model_signing import verifying

    short = ", ".join(fp[:16] for fp in sorted(trusted))
    if bundle is None:
        raise SignatureError(
            f"{what} is not signed; a version signed by one of the trusted keys ({short}) is required."
        )
    signer = _hint(bundle)
    if signer is None:
        raise SignatureError(f"{what}: its {SIGNATURE} is not a signature bundle; refusing it.")
    if signer not in trusted:
        raise SignatureError(
            f"{what} is signed by key {signer[:16]}…, which is not among the trusted keys ({short})."
        )
    with tempfile.TemporaryDirectory(prefix="accord-verify-") as tmp:
        manifest, signature, public = (
            Path(tmp) / "manifest.json",
            Path(tmp) / SIGNATURE,
            Path(tmp) / "key.pub",
        )
        manifest.write_bytes(body)
        signature.write_bytes(bundle)
        public.write_bytes(trusted[signer])
        try:
            verifying.Config().use_elliptic_key_verifier(public_key=str(public)).verify(manifest, signature)
        except (ValueError, InvalidSignature, OSError, IndexError, KeyError, TypeError, AttributeError) as e:
            reason = str(e).split("\n")[0][:200] or type(e).__name__
            raise SignatureError(
                f"{what}: the signature by key {signer[:16]}… does not verify ({reason}): the manifest or "
                "its signature was changed after signing. Refusing to load it."
            ) from e
    return signer


def as_keys(keys: str | Path | Sequence[str | Path] | None) -> list[str | Path]:
    """`keys` as a list (one path or PEM text, or several)."""
    if keys is None:
        return []
    if isinstance(keys, (str, Path)):
        return [keys]
    return list(keys)

"""Model references: ``<store>/<name>``, ``<store>/<name>:<version>``, ``<store>/<name>@<alias>``.

A reference is parsed and validated before any storage call: names follow
``[a-z0-9][a-z0-9._-]{0,63}`` without ``..``; versions are the ones accord assigns.
"""

from __future__ import annotations

from typing import Any

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

from accord.errors import ModelReferenceError

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
VERSION_RE = re.compile(r"^\d{8}T\d{6}\d{3}Z-[0-9a-f]{8}$")
DEFAULT_ALIAS = "production"  # what the promotion gate moves by default, and what a bare name means


def check_name(value: str, what: str = "model name") -> str:
    """Return `value` if it is a valid name, else raise `ModelReferenceError`."""
    if not NAME_RE.fullmatch(value) or ".." in value:
        raise ModelReferenceError(
            f"invalid {what} {value!r}: expected 1-64 characters of a-z, 0-9, '.', '_' or '-', "
            "starting with a letter or digit, without '..'."
        )
    return value


def check_version(value: str) -> str:
    """Return `value` if it is a version accord could have assigned."""
    if not VERSION_RE.fullmatch(value):
        raise ModelReferenceError(
            f"invalid version {value!r}: expected the form 20261129T021500123Z-3fa2c1d4 "
            "(see `accord models list`)."
        )
    return value


def normalise_store(store: str) -> str:
    """Return the store as a URL: plain paths become absolute ``file://`` URLs."""
    store = store.rstrip("/")
    if not store:
        raise ModelReferenceError(
            "empty store URL; expected e.g. file:///srv/registry or s3://bucket/registry."
        )
    if "://" not in store:
        return Path(store).expanduser().resolve().as_uri()
    protocol, _, rest = store.partition("://")
    if not re.fullmatch(r"[a-z][a-z0-9+.-]*", protocol):
        raise ModelReferenceError(f"invalid store URL {store!r}: unknown scheme {protocol!r}.")
    decoded = unquote(rest)
    if any(".." in part for part in decoded.split("/")):
        raise ModelReferenceError(f"invalid store URL {store!r}: '..' is not allowed in a store path.")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in decoded):
        raise ModelReferenceError(f"invalid store URL {store!r}: control characters in the path.")
    return store


@dataclass(frozen=True)
class ModelRef:
    """A parsed model reference."""

    store: str
    name: str
    version: str | None = None
    alias: str | None = None

    def __str__(self) -> str:
        tail = self.name
        if self.version:
            tail += f":{self.version}"
        elif self.alias:
            tail += f"@{self.alias}"
        return f"{self.store}/{tail}"

    def at_version(self, version: str) -> ModelRef:
        """The same model pinned to `version`."""
        return ModelRef(self.store, self.name, version, None)


def parse_ref(ref: str) -> ModelRef:
    """Parse and validate a model reference.

    Raises:
        ModelReferenceError: the reference is malformed or would leave its store.
    """
    if not isinstance(ref, str) or not ref.strip():
        raise ModelReferenceError("empty model reference; expected <store>/<name>[:version|@alias].")
    if len(ref) > 2048:
        raise ModelReferenceError("model reference longer than 2048 characters.")
    if "%" in ref.rpartition("/")[2] or any(ord(ch) < 32 for ch in ref):
        raise ModelReferenceError(
            f"invalid model reference {ref!r}: escaped or control characters in the name."
        )
    store, sep, tail = ref.rstrip("/").rpartition("/")
    if not sep or not store or store.endswith(":/") or store.endswith(":"):
        raise ModelReferenceError(
            f"invalid model reference {ref!r}: expected <store>/<name>[:version|@alias], "
            "e.g. file:///srv/registry/penguins@production."
        )
    version = alias = None
    if "@" in tail:
        tail, _, alias = tail.partition("@")
        check_name(alias, "alias")
    elif ":" in tail:
        tail, _, version = tail.partition(":")
        check_version(version)
    check_name(tail)
    return ModelRef(normalise_store(store), tail, version, alias)


def protocols(fs: Any) -> tuple[str, ...]:
    """The protocols an fsspec filesystem answers to (``("file", "local")``, ``("s3", "s3a")``, ...)."""
    protocol = fs.protocol
    return (protocol,) if isinstance(protocol, str) else tuple(protocol)

"""Model references: ``<store>/<name>``, ``<store>/<name>:<version>``, ``<store>/<name>@<alias>``.

A reference is parsed and validated before any storage call: names follow
``[a-z0-9][a-z0-9._-]{0,63}`` without ``..``; versions are the ones accord assigns.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
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


RESERVED_ALIASES = frozenset({"latest", "newest"})  # read as "the newest version", which a bare name is


def check_alias(value: str) -> str:
    """Return `value` if it can name an alias: a valid name that does not read as a version.

    Raises:
        ModelReferenceError: invalid, one of `RESERVED_ALIASES`, or in the form of a version.
    """
    check_name(value, "alias")
    if value in RESERVED_ALIASES or VERSION_RE.fullmatch(value.upper()[:19] + value[19:]):
        raise ModelReferenceError(
            f"alias {value!r} reads as a version: an alias named so would point at one fixed version "
            f"while people read it as the newest. Choose another name (not {sorted(RESERVED_ALIASES)} "
            "nor a version id); a bare model name already means its production alias, else the newest "
            "version."
        )
    return value


TAG_KEY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
TAG_VALUE_MAX = 256


def check_tags(tags: dict[str, str]) -> dict[str, str]:
    """Return `tags` if every key is 1-64 of letters, digits, ``_.:-`` and every value at most 256 characters.

    Raises:
        ModelReferenceError: naming the first key or value that is not.
    """
    for key, value in tags.items():
        if not TAG_KEY_RE.fullmatch(str(key)):
            raise ModelReferenceError(
                f"invalid tag key {key!r}: expected 1-64 letters, digits, '_', '.', ':' or '-', "
                "starting with a letter or digit."
            )
        if not isinstance(value, str) or len(value) > TAG_VALUE_MAX:
            raise ModelReferenceError(
                f"tag {key!r}: expected text of at most {TAG_VALUE_MAX} characters; found {value!r:.80}."
            )
    return tags


def parse_tags(pairs: list[str]) -> dict[str, str]:
    """``["team=risk", "stage=test"]`` as a mapping, checked by `check_tags`.

    Raises:
        ModelReferenceError: an item without ``=``, or a bad key or value.
    """
    out: dict[str, str] = {}
    for pair in pairs:
        key, eq, value = pair.partition("=")
        if not eq:
            raise ModelReferenceError(f"tag {pair!r}: expected KEY=VALUE, e.g. team=risk.")
        out[key.strip()] = value.strip()
    return check_tags(out)


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

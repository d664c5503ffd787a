"""Readable views of the registry: model listings, and the manifest a reference resolves to."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from accord.ensembling.ensemble import IMPORTANCE_FILE
from accord.registry.refs import parse_ref
from accord.registry.signing import trusted_keys
from accord.registry.store import Registry


def published_at(version: str) -> str:
    """When a version was published, from its name: ``20261129T021500123Z-…`` -> ``2026-11-29 02:15 UTC``."""
    stamp = version.split("-", 1)[0]
    return f"{stamp[0:4]}-{stamp[4:6]}-{stamp[6:8]} {stamp[9:11]}:{stamp[11:13]} UTC"


def list_models(store: str, tags: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Every model in a store: its versions (oldest first), aliases, and per version its details.

    Args:
        store: The store's URL.
        tags: Keep only the versions carrying every one of these tags (and the models with one).

    Returns:
        One mapping per model: ``name``, ``versions`` (names), ``aliases`` (alias -> version)
        and ``details``: per version ``version``, ``published``, ``aliases`` (those pointing
        at it), ``metric`` and ``value`` (the ensemble's held-out primary metric), ``tags``
        and ``description`` (`Registry.notes`); metric, value and notes are None when its
        manifest cannot be read.
    """
    registry = Registry(store)
    wanted = dict(tags or {})
    out = []
    for name in registry.names():
        aliases = registry.aliases(name)
        details = []
        for version in registry.versions(name):
            row = {
                "version": version,
                "published": published_at(version),
                "aliases": sorted(a for a, v in aliases.items() if v == version),
                **_headline(registry, name, version),
            }
            if all((row["tags"] or {}).get(k) == v for k, v in wanted.items()):
                details.append(row)
        if details or not wanted:
            versions = [d["version"] for d in details]
            out.append({"name": name, "versions": versions, "aliases": aliases, "details": details})
    return out


def _headline(registry: Registry, name: str, version: str) -> dict[str, Any]:
    try:
        manifest = registry.read_manifest(name, version)
        metrics = manifest.get("metrics", {})
        primary = metrics.get("primary")
        value = metrics.get("ensemble", {}).get(primary)
        notes = registry.notes(name, version, manifest)
    except Exception:  # a listing shows what it can; `models show` verifies and says what is wrong
        return {"metric": None, "value": None, "tags": None, "description": None}
    return {
        "metric": primary,
        "value": None if value is None else float(value),
        "tags": notes["tags"],
        "description": notes["description"],
    }


def show(ref: str, trusted: Sequence[str] = ()) -> dict[str, Any]:
    """The manifest of the version a reference resolves to (files verified).

    The manifest also holds ``ref`` (pinned), ``resolved`` (how the version was chosen) and
    ``notes`` (its tags and description as they are now, `Registry.notes`) and, when the
    version has one, ``importance`` (its ``importance.json``). With `trusted` keys (paths
    or PEM text) the version must be signed by one of them (`Registry.fetch`), and
    ``verified_signer`` names it.

    Raises:
        SignatureError: with `trusted`, the version is unsigned, signed by another key, or changed.
    """
    parsed = parse_ref(ref)
    registry = Registry(parsed.store)
    keys = trusted_keys(trusted) if trusted else None
    pinned, manifest, files = registry.fetch(parsed, keys)
    manifest["notes"] = registry.notes(parsed.name, pinned.version or "", manifest)
    if IMPORTANCE_FILE in files:
        manifest["importance"] = json.loads(files[IMPORTANCE_FILE])
    return manifest

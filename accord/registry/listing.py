"""Readable views of the registry: model listings, and the manifest a reference resolves to."""

from __future__ import annotations

from typing import Any

from accord.registry.refs import parse_ref
from accord.registry.store import Registry


def published_at(version: str) -> str:
    """When a version was published, from its name: ``20261129T021500123Z-…`` -> ``2026-11-29 02:15 UTC``."""
    stamp = version.split("-", 1)[0]
    return f"{stamp[0:4]}-{stamp[4:6]}-{stamp[6:8]} {stamp[9:11]}:{stamp[11:13]} UTC"


def list_models(store: str) -> list[dict[str, Any]]:
    """Every model in a store: its versions (oldest first), aliases, and per version its details.

    Returns:
        One mapping per model: ``name``, ``versions`` (names), ``aliases`` (alias -> version)
        and ``details``: per version ``version``, ``published``, ``aliases`` (those pointing
        at it), ``metric`` and ``value`` (the ensemble's held-out primary metric; None when
        its manifest cannot be read).
    """
    registry = Registry(store)
    out = []
    for name in registry.names():
        versions = registry.versions(name)
        aliases = registry.aliases(name)
        details = []
        for version in versions:
            metric, value = _headline(registry, name, version)
            details.append(
                {
                    "version": version,
                    "published": published_at(version),
                    "aliases": sorted(a for a, v in aliases.items() if v == version),
                    "metric": metric,
                    "value": value,
                }
            )
        out.append({"name": name, "versions": versions, "aliases": aliases, "details": details})
    return out


def _headline(registry: Registry, name: str, version: str) -> tuple[str | None, float | None]:
    try:
        metrics = registry.read_manifest(name, version).get("metrics", {})
        primary = metrics.get("primary")
        value = metrics.get("ensemble", {}).get(primary)
    except Exception:  # a listing shows what it can; `models show` verifies and says what is wrong
        return None, None
    return primary, None if value is None else float(value)


def show(ref: str) -> dict[str, Any]:
    """The manifest of the version a reference resolves to (files verified).

    The manifest also holds ``ref`` (pinned) and ``resolved`` (how the version was chosen).
    """
    parsed = parse_ref(ref)
    _, manifest, _ = Registry(parsed.store).fetch(parsed)
    return manifest

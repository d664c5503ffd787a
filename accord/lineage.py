"""Readable views of the registry: version listings and a manifest as a lineage tree."""

from __future__ import annotations

from typing import Any

from accord.store.refs import parse_ref
from accord.store.registry import Registry


def list_models(store: str) -> list[dict[str, Any]]:
    """Every model in a store with its versions and aliases."""
    registry = Registry(store)
    out = []
    for name in registry.names():
        out.append({"name": name, "versions": registry.versions(name), "aliases": registry.aliases(name)})
    return out


def show(ref: str) -> dict[str, Any]:
    """The manifest of the version a reference resolves to (files verified)."""
    parsed = parse_ref(ref)
    _, manifest, _ = Registry(parsed.store).fetch(parsed)
    return manifest


def lineage_tree(manifest: dict[str, Any]) -> list[str]:
    """Indented lines: the version, its members and weights, parents, data, code and run."""
    lines = [f"{manifest['name']}:{manifest['version']}  ({manifest.get('task')}, {manifest.get('method')})"]
    weights = manifest.get("weights") or {}
    lines.append("├── members")
    for member in manifest.get("members", []):
        w = weights.get(member["name"])
        shown = f"  weight {w:.3f}" if isinstance(w, int | float) else ""
        lines.append(f"│   ├── {member['name']} [{member['kind']}]{shown}")
        for key, value in (member.get("transfer") or {}).items():
            lines.append(f"│   │   └── {key}: {value}")
    lineage = manifest.get("lineage", {})
    parents = lineage.get("parents") or []
    lines.append("├── parents" + ("" if parents else ": none"))
    for parent in parents:
        lines.append(f"│   └── {parent.get('ref')} (member {parent.get('member')}, {parent.get('relation')})")
    data = lineage.get("data", {})
    lines.append(f"├── data: {data.get('source')} (fingerprint {str(data.get('fingerprint'))[:16]}…)")
    digest = lineage.get("code_digest")  # versions published before it was recorded have none
    shown = f" (source sha256 {digest[:16]}…)" if digest else ""
    lines.append(f"├── code: {lineage.get('code_version')}{shown}")
    lines.append(f"├── flow run: {lineage.get('flow_run_id')}")
    metrics = manifest.get("metrics", {})
    primary = metrics.get("primary")
    if primary:
        lines.append(f"└── held-out {primary}: {metrics['ensemble'][primary]:.4f}")
    return lines

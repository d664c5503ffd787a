"""A version's model card, ``README.md``, written from its manifest.

Why: people read a model before they load it, on a model hub or in the store's browser;
the card says what it predicts, from which columns, how well against baselines, from
which members and parents, under which license and for what use.

The card opens with Hugging Face-style YAML front matter (``license``, ``library_name``,
``tags``, ``pipeline_tag``), so a card copied to a model hub renders there.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

CARD_FILE = "README.md"
PIPELINE_TAG = {"classification": "tabular-classification", "regression": "tabular-regression"}


def _cell(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]


def front_matter(manifest: Mapping[str, Any], config: Mapping[str, Any]) -> list[str]:
    """The card's YAML front matter (JSON strings are valid YAML scalars)."""
    tags = [
        "accord",
        "tabular",
        "ensemble",
        *(f"{k}:{v}" for k, v in sorted((config.get("tags") or {}).items())),
    ]
    lines = ["---", f"license: {json.dumps(config.get('license') or 'unknown')}", "library_name: accord"]
    lines.append(f"pipeline_tag: {PIPELINE_TAG.get(str(manifest.get('task')), 'tabular-classification')}")
    lines.append("tags:")
    lines += [f"- {json.dumps(t)}" for t in tags]
    return [*lines, "---"]


def model_card(name: str, manifest: Mapping[str, Any]) -> str:
    """The Markdown card of a version of `name` described by `manifest` (`version_payload`'s).

    Sections: task, intended use and license (from the run's config), metrics against the
    baselines and each member, members and weights, the data schema, lineage (data,
    parents with their versions, code) and library versions.
    """
    lineage = manifest.get("lineage", {})
    config = lineage.get("config", {})
    metrics = manifest.get("metrics", {})
    primary = metrics.get("primary", "")
    task = manifest.get("task", "")
    title = f"{name}:{manifest['version']}" if manifest.get("version") else name
    lines = [*front_matter(manifest, config), "", f"# {title}", ""]
    if config.get("description"):
        lines += [str(config["description"]), ""]
    data = lineage.get("data", {})
    lines += [
        f"An accord ensemble for **{task}** of `{manifest.get('schema', {}).get('target', '')}`: "
        f"{len(manifest.get('members', []))} members combined by `{manifest.get('method')}`, "
        f"trained on {data.get('rows_train', '?')} rows, "
        f"scored on {data.get('rows_test', '?')} held-out rows.",
        "",
        "## Intended use",
        "",
        str(config.get("intended_use") or "Not stated by the publisher."),
        "",
        "## License",
        "",
        str(config.get("license") or "Not stated by the publisher."),
        "",
    ]
    lines += _metrics(metrics, primary)
    lines += _members(manifest)
    lines += _schema(manifest.get("schema", {}))
    lines += _lineage(lineage)
    lines += [
        "## Libraries",
        "",
        *_table(["library", "version"], sorted(manifest.get("libraries", {}).items())),
        "",
    ]
    lines += [
        "## Loading",
        "",
        "```python",
        "import accord",
        "",
        f'model = accord.load("<store>/{title}")  # verifies every file; runs no code from the store',
        "```",
        "",
    ]
    return "\n".join(lines)


def _metrics(metrics: Mapping[str, Any], primary: str) -> list[str]:
    ensemble = metrics.get("ensemble", {})
    names = [primary, *sorted(k for k in ensemble if k != primary)]
    rows = [["ensemble", *(ensemble.get(n) for n in names)]]
    for base, entry in sorted(metrics.get("baselines", {}).items()):
        label = f"baseline: {base}" + (f" ({entry['member']})" if entry.get("member") else "")
        rows.append([label, *(entry.get("metrics", {}).get(n) for n in names)])
    for member, values in sorted(metrics.get("members", {}).items()):
        rows.append([member, *(values.get(n) for n in names)])
    head = [f"## Held-out metrics (primary: {primary})", ""]
    return [*head, *_table(["model", *names], rows), ""]


def _members(manifest: Mapping[str, Any]) -> list[str]:
    weights = manifest.get("weights") or {}
    rows = []
    for m in manifest.get("members", []):
        parent = m.get("parent") or {}
        rows.append(
            [
                m["name"],
                m["kind"],
                weights.get(m["name"]),
                json.dumps(m.get("params") or {}, sort_keys=True),
                parent.get("ref"),
            ]
        )
    out = ["## Members and weights", "", *_table(["member", "kind", "weight", "params", "parent"], rows), ""]
    guard = (manifest.get("metrics") or {}).get("guard")
    if guard:
        out += [guard_line(guard), ""]
    if manifest.get("left_out"):
        out += [
            "Left out by the time limit: " + "; ".join(f"{k} ({v})" for k, v in manifest["left_out"].items())
        ]
        out.append("")
    return out


def _schema(schema: Mapping[str, Any]) -> list[str]:
    rows = [
        [c["name"], c["kind"], c["dtype"], len(c.get("categories", [])) or None]
        for c in schema.get("columns", [])
    ]
    out = [f"## Input schema (target `{schema.get('target')}`)", ""]
    out += _table(["column", "kind", "dtype", "categories seen"], rows)
    if schema.get("classes"):
        out += ["", "Classes: " + ", ".join(f"`{c}`" for c in schema["classes"])]
    if schema.get("dropped"):
        out += ["", "Dropped: " + ", ".join(f"`{k}` ({v})" for k, v in schema["dropped"].items())]
    if schema.get("dates"):
        out += ["", "Dates turned into numbers: " + ", ".join(f"`{d}`" for d in schema["dates"])]
    return [*out, ""]


def _lineage(lineage: Mapping[str, Any]) -> list[str]:
    data = lineage.get("data", {})
    out = ["## Lineage", "", f"- data: `{data.get('source')}` (fingerprint `{data.get('fingerprint')}`)"]
    for p in lineage.get("parents", []):
        out.append(f"- member `{p.get('member')}`: {p.get('relation', 'parent')} of `{p.get('ref')}`")
    out.append(f"- code: accord {lineage.get('code_version')} (source digest `{lineage.get('code_digest')}`)")
    if lineage.get("flow_run_id"):
        out.append(f"- Prefect flow run: `{lineage['flow_run_id']}`")
    return [*out, ""]


def guard_line(guard: Mapping[str, Any]) -> str:
    """One sentence on the weights' guard (`accord.ensembling.evaluation.Report.guard`)."""
    if not guard.get("folds"):
        return "Weights not checked on held-back rows: too few out-of-fold rows."
    share = float(guard["shrink"])
    kept = (
        "the fitted weights whole"
        if share == 1.0
        else (f"{share:.0%} of the fitted weights, the rest on the CV-best member {guard['best']}")
    )
    return (
        f"Guard: {guard['folds']}-fold nested cross-validation over the out-of-fold rows kept {kept} "
        f"(held-back loss {float(guard['nested_cv_loss'][str(share)]):.4f})."
    )

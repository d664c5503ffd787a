"""A version's report: one self-contained HTML page, figures embedded, no script, no outside link.

Why: a page that can be mailed, attached to a ticket or opened from the store shows the
whole model at once: metrics, leaderboard, weights, importance, schema, lineage, library
versions and every figure (`accord.reports.figures`), each PNG inlined as a data URI.

The same function writes the page published with each version (``report.html``) and the
page ``accord models report`` writes from a published version's files.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Mapping
from typing import Any

from accord.ensembling.importance import ranked
from accord.reports.figures import FIGURE_DIR

REPORT_FILE = "report.html"
CAPTIONS = {
    "confusion_matrix": "Confusion matrix of the ensemble on the held-out rows",
    "reliability": "Reliability: the ensemble's and the best member's confidence against accuracy",
    "roc": "ROC curves",
    "precision_recall": "Precision-recall curves",
    "predicted_vs_actual": "Predicted against actual",
    "residuals": "Residuals",
    "weights": "Member weights",
    "error_correlation": "Correlation of the members' out-of-fold errors",
    "leaderboard": "Leaderboard",
    "importance": "Permutation importance on the held-out rows",
}
STYLE = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}
td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th:first-child,td:first-child{text-align:left}figure{display:inline-block;margin:.5em;vertical-align:top}
figcaption{font-size:.9em;color:#555}nav a{margin-right:1em}code{background:#f4f4f4;padding:0 .2em}
"""


def _e(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return html.escape("" if value is None else str(value))


def _table(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_e(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _image(caption: str, png: bytes) -> str:
    source = "data:image/png;base64," + base64.b64encode(png).decode()
    return f'<figure><img alt="{_e(caption)}" src="{source}"><figcaption>{_e(caption)}</figcaption></figure>'


def figure_files(files: Mapping[str, bytes]) -> dict[str, bytes]:
    """The version's figures by stem, in the order `CAPTIONS` lists them."""
    found = {p[len(FIGURE_DIR) + 1 : -4]: b for p, b in files.items() if p.startswith(f"{FIGURE_DIR}/")}
    return {s: found[s] for s in [*CAPTIONS, *sorted(set(found) - set(CAPTIONS))] if s in found}


def report_page(name: str, manifest: Mapping[str, Any], files: Mapping[str, bytes]) -> str:
    """The HTML report of a version of `name` from its manifest and files (figures, importance).

    Tables list mappings in a fixed order (sorted, importance largest first): the manifest
    as stored has sorted keys, so the page from a fetched version equals the published one.
    """
    metrics = manifest.get("metrics", {})
    primary = metrics.get("primary", "")
    title = f"{name}:{manifest['version']}" if manifest.get("version") else name
    sections: list[tuple[str, str, str]] = []
    ensemble = metrics.get("ensemble", {})
    keys = [primary, *sorted(k for k in ensemble if k != primary)]
    rows = [["ensemble", *(ensemble.get(k) for k in keys)]]
    rows += [
        [f"baseline: {b}", *(e.get("metrics", {}).get(k) for k in keys)]
        for b, e in sorted(metrics.get("baselines", {}).items())
    ]
    rows += [[m, *(v.get(k) for k in keys)] for m, v in sorted(metrics.get("members", {}).items())]
    sections.append(("metrics", "Held-out metrics", _table(["model", *keys], rows)))
    weights = manifest.get("weights") or {}
    member_rows = [
        [m["name"], m["kind"], weights.get(m["name"]), json.dumps(m.get("params") or {}, sort_keys=True)]
        for m in manifest.get("members", [])
    ]
    sections.append(
        ("members", "Members and weights", _table(["member", "kind", "weight", "params"], member_rows))
    )
    if "importance.json" in files:
        doc = json.loads(files["importance.json"])
        imp_rows = [[f, e["importance"], e["stddev"], e["n"]] for f, e in ranked(doc)]
        header = ["feature", f"{doc['metric']} increase", "stddev", "repeats"]
        sections.append(("importance", "Permutation importance", _table(header, imp_rows)))
    schema = manifest.get("schema", {})
    col_rows = [[c["name"], c["kind"], c["dtype"]] for c in schema.get("columns", [])]
    sections.append(
        (
            "schema",
            f"Input schema (target {schema.get('target')})",
            _table(["column", "kind", "dtype"], col_rows),
        )
    )
    lineage = manifest.get("lineage", {})
    data = lineage.get("data", {})
    lines = [
        ["data", f"{data.get('source')} ({data.get('rows_train')} training rows)"],
        ["held-out rows", data.get("rows_test")],
        ["fingerprint", data.get("fingerprint")],
        *[
            [f"parent of {p.get('member')}", f"{p.get('ref')} ({p.get('relation')})"]
            for p in lineage.get("parents", [])
        ],
        ["code", f"accord {lineage.get('code_version')} (source {lineage.get('code_digest')})"],
        ["flow run", lineage.get("flow_run_id")],
    ]
    sections.append(("lineage", "Lineage", _table(["", ""], lines)))
    libs = sorted(manifest.get("libraries", {}).items())
    sections.append(
        ("libraries", "Library versions", _table(["library", "version"], [list(x) for x in libs]))
    )
    images = [_image(CAPTIONS.get(stem, stem), png) for stem, png in figure_files(files).items()]
    sections.insert(1, ("figures", "Figures", "".join(images) or "<p>No figures in this version.</p>"))
    nav = "".join(f'<a href="#{key}">{_e(heading)}</a>' for key, heading, _ in sections)
    body = "".join(
        f'<section id="{key}"><h2>{_e(heading)}</h2>{content}</section>' for key, heading, content in sections
    )
    headline = (
        f"{manifest.get('task')} · {manifest.get('method')} · held-out {primary} {_e(ensemble.get(primary))}"
    )
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>'
        f"<style>{STYLE}</style></head><body><h1>{_e(title)}</h1><p>{headline}</p>"
        f"<nav>{nav}</nav>{body}</body></html>"
    )

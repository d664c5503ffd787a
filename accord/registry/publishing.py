"""Lay out a trained ensemble as files plus manifest fields, and publish it."""

from __future__ import annotations

import json
from typing import Any

from accord.data.split import Prepared
from accord.ensembling.ensemble import (
    ENSEMBLE_FILE,
    IMPORTANCE_FILE,
    METRICS_FILE,
    SCHEMA_FILE,
    ensemble_document,
    member_files,
)
from accord.ensembling.evaluation import Report
from accord.registry.card import CARD_FILE, model_card
from accord.registry.provenance import code_version, library_versions, source_digest
from accord.registry.signing import checked_signing_key
from accord.registry.store import Registry, new_version
from accord.reports.page import REPORT_FILE, report_page
from accord.training.fit import RefitResult


def version_payload(
    data: Prepared,
    refits: dict[str, RefitResult],
    report: Report,
    *,
    config: dict[str, Any],
    run_id: str | None = None,
    run_key: str | None = None,
    left_out: dict[str, str] | None = None,
    importance: dict[str, Any] | None = None,
) -> tuple[dict[str, bytes], dict[str, Any]]:
    """Files of a version and the manifest fields that describe it.

    `left_out` (member -> reason) lists the configured members a time limit kept out;
    `importance` (`accord.ensembling.importance.document`) becomes ``importance.json``.
    """
    names = report.members
    files: dict[str, bytes] = {}
    for name in names:
        files.update(member_files(name, refits[name].info, refits[name].files))
    document = ensemble_document(names, [refits[n].kind for n in names], report.rule)
    files[ENSEMBLE_FILE] = json.dumps(document, sort_keys=True).encode()
    files[SCHEMA_FILE] = json.dumps(data.schema.to_dict(), sort_keys=True).encode()
    files[METRICS_FILE] = json.dumps(report.metrics(), sort_keys=True).encode()
    if importance is not None:
        files[IMPORTANCE_FILE] = json.dumps(importance, sort_keys=True).encode()
    manifest: dict[str, Any] = {
        "task": data.task,
        "method": report.rule.method,
        "weights": report.weights,
        "members": [
            {
                "name": n,
                "kind": refits[n].kind,
                "params": refits[n].info.get("params"),
                "parent": refits[n].info.get("parent"),
                "transfer": refits[n].info.get("transfer"),
                **({"trained_on": refits[n].info["trained_on"]} if "trained_on" in refits[n].info else {}),
            }
            for n in names
        ],
        "schema": data.schema.to_dict(),
        "metrics": report.metrics(),
        "timings": report.timings,
        "left_out": dict(left_out or {}),
        "lineage": {
            "parents": [
                {"member": n, **refits[n].info["parent"]} for n in names if refits[n].info.get("parent")
            ],
            "data": {
                "source": data.source,
                "fingerprint": data.fingerprint,
                "rows_train": len(data.y_train),
                "rows_test": len(data.y_test),
            },
            "code_version": code_version(),
            "code_digest": source_digest(),
            "flow_run_id": run_id,
            "run_key": run_key,
            "config": config,
        },
        "libraries": library_versions(),
        **({"privacy": data.privacy} if data.privacy else {}),
    }
    return files, manifest


def find_published(registry: Registry, name: str, key: str, recent: int = 20) -> str | None:
    """The reference of a recent version of `name` published from the same run key, if any.

    A rerun after a crash that came after the manifest was written finds its version
    here instead of publishing a duplicate.
    """
    for version in reversed(registry.versions(name)[-recent:]):
        try:
            lineage = registry.read_manifest(name, version).get("lineage", {})
        except Exception:  # an unreadable manifest is simply not a match
            continue
        if lineage.get("run_key") == key:
            return str(registry.ref(name, version))
    return None


def publish(
    registry: Registry,
    name: str,
    files: dict[str, bytes],
    manifest: dict[str, Any],
    figures: dict[str, bytes] | None = None,
) -> str:
    """Publish a version and return its reference string.

    Besides `files`, the version gets documents for people: `figures` (path -> PNG), its
    model card (`accord.registry.card`) and its report page (`accord.reports.page`), written
    with the version's id, which is chosen here. With ``ACCORD_SIGNING_KEY`` set, the
    version is signed with that key (`accord.registry.signing`).

    Raises:
        ConfigError: ``ACCORD_SIGNING_KEY`` names no usable private key.
    """
    version = new_version()
    described = {**manifest, "name": name, "version": version}
    documents = dict(figures or {})
    documents[CARD_FILE] = model_card(name, described).encode()
    documents[REPORT_FILE] = report_page(name, described, {**files, **documents}).encode()
    registry.publish(name, files, manifest, version, documents, signing_key=checked_signing_key())
    return str(registry.ref(name, version))

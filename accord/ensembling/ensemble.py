"""The published ensemble: members, their combination rule, the schema; and `load`."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from accord.data.schema import Schema
from accord.ensembling.weights import EnsembleWeights
from accord.errors import IntegrityError
from accord.members import Member
from accord.members.bagged import load_member
from accord.registry.refs import parse_ref
from accord.registry.store import Registry

ENSEMBLE_FILE = "ensemble.json"
SCHEMA_FILE = "schema.json"
METRICS_FILE = "metrics.json"


class Ensemble:
    """Fitted members combined as ``sum_i w_i * p_i`` or by a stacking meta-learner.

    For classification with ``caruana`` or ``optimize`` the weighted sum is rescaled by
    the temperature fitted on the out-of-fold predictions (see `accord.ensembling.weights`).
    Members at weight 0 are published, loaded (unless ``load(..., weighted_only=True)``)
    and listed, but `predict` and `predict_proba` do not compute their predictions
    (`member_predictions` does).

    Attributes:
        members: Member name -> fitted member, in combination order.
        weights: Member name -> weight, or None for stacking.
        method: How the weights were fitted.
        classes_: Class labels (classification), in probability-column order.
        schema: The input schema every table is checked against.
        manifest: The published manifest (empty for an unpublished ensemble).
    """

    def __init__(
        self,
        members: Mapping[str, Member],
        rule: EnsembleWeights,
        schema: Schema,
        manifest: Mapping[str, Any] | None = None,
    ) -> None:
        self.members = dict(members)
        self.rule = rule
        self.schema = schema
        self.manifest = dict(manifest or {})

    @property
    def task(self) -> str:
        """Classification or regression."""
        return self.schema.task

    @property
    def method(self) -> str:
        """The weight-fitting method."""
        return self.rule.method

    @property
    def weights(self) -> dict[str, float] | None:
        """Member name -> weight (None for stacking, which has a meta-learner instead)."""
        if self.rule.weights is None:
            return None
        return {n: float(w) for n, w in zip(self.members, self.rule.weights, strict=True)}

    @property
    def classes_(self) -> np.ndarray:
        """Class labels in the order of `predict_proba` columns."""
        return np.asarray(self.schema.classes)

    def member_predictions(self, X: pd.DataFrame) -> dict[str, np.ndarray]:
        """Each loaded member's prediction on a (schema-checked) table, those at weight 0 included."""
        conformed = self.schema.conform(X)
        return {name: m.predict(conformed) for name, m in self.members.items()}

    def _combined(self, X: pd.DataFrame) -> np.ndarray:
        """The rule's combination, predicting only the members it reads (not those at weight 0)."""
        conformed = self.schema.conform(X)
        members = list(self.members.values())
        used, rule = self.rule.over_used(len(members))
        return rule.combine([members[i].predict(conformed) for i in used])

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Class probabilities ``(n, K)`` (classification only)."""
        if self.task != "classification":
            raise TypeError("predict_proba is for classification; this ensemble does regression.")
        return self._combined(X)

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """Class labels (classification) or values (regression)."""
        out = self._combined(X)
        if self.task == "classification":
            return self.classes_[np.argmax(out, axis=1)]
        return out

    def __repr__(self) -> str:
        ref = self.manifest.get("ref", "unpublished")
        return f"Ensemble({self.task}, method={self.method}, members={list(self.members)}, ref={ref})"


def member_files(name: str, member_info: Mapping[str, Any], files: Mapping[str, bytes]) -> dict[str, bytes]:
    """Lay out one member's files under ``members/<name>/`` with its ``member.json``."""
    out = {f"members/{name}/{fname}": data for fname, data in files.items()}
    out[f"members/{name}/member.json"] = json.dumps(member_info, sort_keys=True).encode()
    return out


def ensemble_document(member_names: list[str], kinds: list[str], rule: EnsembleWeights) -> dict[str, Any]:
    """The content of ``ensemble.json``."""
    return {
        "members": [{"name": n, "kind": k} for n, k in zip(member_names, kinds, strict=True)],
        "rule": rule.to_dict(),
    }


def _json(files: Mapping[str, bytes], path: str) -> Any:
    try:
        return json.loads(files[path])
    except KeyError as e:
        raise IntegrityError(f"published version has no {path!r}.") from e
    except json.JSONDecodeError as e:
        raise IntegrityError(f"{path!r} is not valid JSON: {e}") from e


def build_ensemble(
    files: Mapping[str, bytes], manifest: Mapping[str, Any] | None = None, *, weighted_only: bool = False
) -> Ensemble:
    """Rebuild an ensemble from verified version files.

    Args:
        files: The version's files, already verified against its manifest.
        manifest: The version's manifest.
        weighted_only: Deserialise only the members the rule reads (see `load`).
    """
    document = _json(files, ENSEMBLE_FILE)
    schema = Schema.from_dict(_json(files, SCHEMA_FILE))
    rule = EnsembleWeights.from_dict(document["rule"])
    entries = list(document["members"])
    if rule.weights is not None and len(rule.weights) != len(entries):
        raise IntegrityError(f"{ENSEMBLE_FILE} lists {len(entries)} members but {len(rule.weights)} weights.")
    if weighted_only:
        used, rule = rule.over_used(len(entries))
        entries = [entries[i] for i in used]
    members: dict[str, Member] = {}
    for entry in entries:
        name, kind = entry["name"], entry["kind"]
        prefix = f"members/{name}/"
        info = _json(files, prefix + "member.json")
        if info.get("kind") != kind:
            raise IntegrityError(
                f"member {name!r}: ensemble.json says {kind}, member.json says {info.get('kind')}."
            )
        own = {p[len(prefix) :]: d for p, d in files.items() if p.startswith(prefix)}
        members[name] = load_member(kind, own, info)
    return Ensemble(members, rule, schema, manifest)


def load(
    ref: str, storage_options: Mapping[str, Any] | None = None, *, weighted_only: bool = False
) -> Ensemble:
    """Load a published ensemble, verifying every file before deserialising any.

    Args:
        ref: ``<store>/<name>``, ``<store>/<name>:<version>`` or ``<store>/<name>@<alias>``.
            A bare name means the version its ``production`` alias points to, or the newest
            version when that alias is unset (`Registry.resolution`); ``manifest["ref"]`` is
            the pinned version and ``manifest["resolved"]`` says how it was chosen.
        storage_options: fsspec options for the store (credentials normally come from the environment).
        weighted_only: Deserialise only the members that predictions use: those the weights
            left at 0 are verified with the rest but not loaded, and are absent from
            ``members`` and ``weights`` (the manifest still lists them). Predictions are the
            same; loading takes less time and memory. Stacking uses every member.

    Returns:
        The ensemble, with ``predict``, ``predict_proba``, ``classes_``, ``members``,
        ``weights`` and ``manifest``.

    Raises:
        ModelReferenceError: the reference is malformed.
        NotFoundError: the model, version or alias does not exist.
        IntegrityError: a file failed verification or is not in a safe format.
    """
    parsed = parse_ref(ref)
    _, manifest, files = Registry(parsed.store, storage_options).fetch(parsed)  # verifies everything first
    logging.getLogger(__name__).info("loading %s (%s)", manifest["ref"], manifest["resolved"])
    return build_ensemble(files, manifest, weighted_only=weighted_only)

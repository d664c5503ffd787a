"""The published ensemble: members, their combination rule, the schema; and `load`."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin

from accord.data.schema import Schema
from accord.ensembling.weights import EnsembleWeights
from accord.errors import IntegrityError, NotFoundError
from accord.members import Member
from accord.members.bagged import Deferred, load_member
from accord.registry.refs import parse_ref
from accord.registry.signing import as_keys
from accord.registry.signing import trusted_keys as trusted_keys_of
from accord.registry.store import Registry

ENSEMBLE_FILE = "ensemble.json"
SCHEMA_FILE = "schema.json"
METRICS_FILE = "metrics.json"
IMPORTANCE_FILE = "importance.json"  # `accord.ensembling.importance`


class Ensemble(BaseEstimator):
    """Fitted members combined as ``sum_i w_i * p_i`` or by a stacking meta-learner.

    A fitted scikit-learn estimator (`EnsembleClassifier` or `EnsembleRegressor` by task):
    ``score``, ``clone``, ``get_params``, Pipelines, ``permutation_importance`` and, through
    ``sklearn.frozen.FrozenEstimator``, ``cross_val_score`` work on it. It is published and
    cannot be fitted again (`fit` says how to train one). Input is a DataFrame, or a 2-D array
    in the order of ``feature_names_in_`` (`Schema.frame_of`).

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
        n_features_in_, feature_names_in_: The schema's feature columns.
        schema: The input schema every table is checked against.
        manifest: The published manifest (empty for an unpublished ensemble).
    """

    def __init__(
        self,
        members: Mapping[str, Member],
        rule: EnsembleWeights,
        schema: Schema,
        manifest: Mapping[str, Any] | None = None,
        importance: Mapping[str, Any] | None = None,
    ) -> None:
        self.members = dict(members)
        self.rule = rule
        self.schema = schema
        self.manifest = dict(manifest or {})
        self.importance = importance

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True  # every member reads missing values
        tags.input_tags.categorical = True
        tags.input_tags.string = True
        return tags

    def __sklearn_is_fitted__(self) -> bool:
        return True

    def __sklearn_clone__(self) -> Ensemble:
        """The same published model: its members are shared, never changed by predicting."""
        return type(self)(self.members, self.rule, self.schema, self.manifest, self.importance)

    def fit(self, X: Any, y: Any = None) -> Ensemble:
        """Refused: a published ensemble is fitted once, by its run.

        Raises:
            TypeError: always; the message says how to use it where scikit-learn fits
                (``FrozenEstimator``) and how to train a new one (`accord.AccordClassifier`).
        """
        raise TypeError(
            f"{type(self).__name__} is a published, fitted ensemble and is not fitted again. "
            "Where scikit-learn calls fit (cross_val_score, a Pipeline's fit), wrap it: "
            "sklearn.frozen.FrozenEstimator(model). To train a new one, use accord.AccordClassifier "
            "or accord.AccordRegressor."
        )

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

    def feature_importance(self) -> pd.DataFrame:
        """Permutation importance on the run's held-out rows, as published (``importance.json``).

        One row per feature, largest first: ``importance`` (mean increase of the primary
        loss when the column is shuffled), ``stddev`` over the repeats, ``n`` repeats.

        Raises:
            NotFoundError: the version was published without importance (before accord 0.4).
        """
        if not self.importance:
            raise NotFoundError(
                f"{self.manifest.get('ref', 'this ensemble')} has no {IMPORTANCE_FILE}: it was published "
                "before versions carried importance. Compute it with "
                "sklearn.inspection.permutation_importance(model, X, y)."
            )
        frame = pd.DataFrame.from_dict(dict(self.importance["features"]), orient="index")
        frame.index.name = "feature"
        return frame.sort_values("importance", ascending=False)

    @property
    def n_features_in_(self) -> int:
        """The number of feature columns the members read."""
        return len(self.schema.columns)

    @property
    def feature_names_in_(self) -> np.ndarray:
        """The feature columns' names, in the order an array's columns are read."""
        return np.asarray(self.schema.names, dtype=object)

    def member_predictions(self, X: Any) -> dict[str, np.ndarray]:
        """Each loaded member's prediction on a (schema-checked) table, those at weight 0 included."""
        conformed = self.schema.conform(X)
        return {name: m.predict(conformed) for name, m in self.members.items()}

    def _combined(self, X: Any) -> np.ndarray:
        """The rule's combination, predicting only the members it reads (not those at weight 0)."""
        return self.combine_conformed(self.schema.conform(X))

    def combine_conformed(self, conformed: pd.DataFrame) -> np.ndarray:
        """Probabilities ``(n, K)`` or values of a table `Schema.conform` already returned.

        Why: a caller that predicts many variants of one table (permutation importance)
        conforms it once instead of once per variant.
        """
        members = list(self.members.values())
        used, rule = self.rule.over_used(len(members))
        return rule.combine([members[i].predict(conformed) for i in used])

    def predict(self, X: Any) -> np.ndarray:
        """Class labels (classification) or values (regression)."""
        out = self._combined(X)
        if self.task == "classification":
            return np.asarray(self.schema.classes)[np.argmax(out, axis=1)]
        return out

    def __repr__(self, N_CHAR_MAX: int = 700) -> str:
        ref = self.manifest.get("ref", "unpublished")
        members = list(self.members)
        return f"{type(self).__name__}({self.task}, method={self.method}, members={members}, ref={ref})"


class EnsembleClassifier(ClassifierMixin, Ensemble):
    """A published classification ensemble: `Ensemble` with ``classes_`` and ``predict_proba``."""

    @property
    def classes_(self) -> np.ndarray:
        """Class labels in the order of `predict_proba` columns."""
        return np.asarray(self.schema.classes)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities ``(n, K)``, columns in the order of ``classes_``."""
        return self._combined(X)


class EnsembleRegressor(RegressorMixin, Ensemble):
    """A published regression ensemble: `Ensemble` whose ``predict`` gives values."""


def ensemble(
    members: Mapping[str, Member],
    rule: EnsembleWeights,
    schema: Schema,
    manifest: Mapping[str, Any] | None = None,
    importance: Mapping[str, Any] | None = None,
) -> Ensemble:
    """The `Ensemble` of `schema`'s task: an `EnsembleClassifier` or an `EnsembleRegressor`."""
    cls = EnsembleClassifier if schema.task == "classification" else EnsembleRegressor
    return cls(members, rule, schema, manifest, importance)


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
        weighted_only: Leave out the members the rule does not read (see `load`); without
            it they are kept as `accord.members.bagged.Deferred`, deserialised on first use.
    """
    document = _json(files, ENSEMBLE_FILE)
    schema = Schema.from_dict(_json(files, SCHEMA_FILE))
    rule = EnsembleWeights.from_dict(document["rule"])
    entries = list(document["members"])
    if rule.weights is not None and len(rule.weights) != len(entries):
        raise IntegrityError(f"{ENSEMBLE_FILE} lists {len(entries)} members but {len(rule.weights)} weights.")
    used = rule.used(len(entries))
    if weighted_only:
        used, rule = rule.over_used(len(entries))
        entries = [entries[i] for i in used]
        used = list(range(len(entries)))
    members: dict[str, Member] = {}
    for i, entry in enumerate(entries):
        name, kind = entry["name"], entry["kind"]
        prefix = f"members/{name}/"
        info = _json(files, prefix + "member.json")
        if info.get("kind") != kind:
            raise IntegrityError(
                f"member {name!r}: ensemble.json says {kind}, member.json says {info.get('kind')}."
            )
        own = {p[len(prefix) :]: d for p, d in files.items() if p.startswith(prefix)}
        members[name] = load_member(kind, own, info) if i in used else cast(Member, Deferred(kind, own, info))
    importance = _json(files, IMPORTANCE_FILE) if IMPORTANCE_FILE in files else None
    return ensemble(members, rule, schema, manifest, importance)


def load(
    ref: str,
    storage_options: Mapping[str, Any] | None = None,
    *,
    weighted_only: bool = False,
    trusted_keys: str | Path | Sequence[str | Path] | None = None,
    manifest_sha256: str | None = None,
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
            same; loading takes less time and memory. Stacking uses every member. Without
            it those members are kept, deserialised only when first used, so loading
            imports no library (TensorFlow, XGBoost) that only they need.
        trusted_keys: Public keys (paths to PEM files, or PEM text): the version must be
            signed by one of them (`accord.registry.signing`), checked before its manifest
            is parsed or any file read; ``manifest["verified_signer"]`` is then the signing
            key's fingerprint. None accepts unsigned versions.
        manifest_sha256: The manifest's bytes must hash to this (a parent checked by the
            flow, loaded again on a worker).

    Returns:
        The ensemble, with ``predict``, ``predict_proba``, ``classes_``, ``members``,
        ``weights`` and ``manifest``.

    Raises:
        ModelReferenceError: the reference is malformed.
        NotFoundError: the model, version or alias does not exist.
        IntegrityError: a file failed verification or is not in a safe format.
        SignatureError: with `trusted_keys`, the version is unsigned, signed by another
            key, or changed since it was signed.
        ConfigError: a trusted key is no file nor PEM text.
    """
    parsed = parse_ref(ref)
    trusted = None if trusted_keys is None else trusted_keys_of(as_keys(trusted_keys))  # [] is refused
    registry = Registry(parsed.store, storage_options)
    _, manifest, files = registry.fetch(parsed, trusted, manifest_sha256)  # verifies everything first
    logging.getLogger(__name__).info("loading %s (%s)", manifest["ref"], manifest["resolved"])
    return build_ensemble(files, manifest, weighted_only=weighted_only)

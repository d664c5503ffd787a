"""Members that start from a published model: xgboost_continue, keras_transfer, published.

* ``xgboost_continue`` keeps the parent's preprocessing and continues boosting its
  booster on our data (θ_new = θ_old + new trees). Labels must mean the same thing.
* ``keras_transfer`` keeps the parent network's body and preprocessing, puts a new
  head for our task, trains the head with the body frozen, then (``fine_tune``)
  unfreezes the top of the body and trains everything at a low learning rate. The
  body is always called with ``training=False``, so BatchNormalization stays in
  inference mode. It records ‖Δθ‖/‖θ_old‖ per body layer.
* ``published`` takes someone else's published ensemble as a frozen member: it is
  never refit, and because it never saw our data its predictions on our training
  rows serve directly as out-of-fold predictions.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, ClassVar, Self

import numpy as np
import pandas as pd

from accord.data.schema import Schema
from accord.errors import ConfigError, IntegrityError
from accord.members.base import FitShape, Member
from accord.members.keras_kind import KerasMLP, import_keras
from accord.members.parents import (
    CHECKED,
    MANIFEST_SHA256,
    load_parent,
    parent_record,
    pick_member,
    resolve_parent,
)
from accord.members.xgboost_kind import XGBoostMember
from accord.types import Task

KERAS_PARENT_KINDS = ("keras_mlp", "keras_cnn", "keras_transfer")
XGB_PARENT_KINDS = ("xgboost", "xgboost_dask", "xgboost_continue")


class FromParent:
    """A kind that starts from a published version, which `resolve_params` pins before training.

    Its class says where the reference is (`parent_param`), which member kinds it may take
    (`parent_kinds`; None: a whole ensemble) and whether the parent's classes must be ours
    (`same_classes`); `accord.members.parents.resolve_parent` does the rest.
    """

    parent_param: ClassVar[str] = "parent"
    parent_kinds: ClassVar[tuple[str, ...] | None] = None
    same_classes: ClassVar[bool] = True

    @classmethod
    def resolve_params(
        cls,
        member: str,
        params: Mapping[str, Any],
        schema: Schema,
        trusted: Mapping[str, bytes] | None = None,
    ) -> dict[str, Any]:
        """Pin the parent to a checked version (`resolve_parent`)."""
        return resolve_parent(
            member,
            params,
            schema,
            cls.parent_param,
            cls.parent_kinds,
            same_classes=cls.same_classes,
            trusted=trusted,
        )


class XGBoostContinue(FromParent, XGBoostMember):
    """Continue boosting a published XGBoost booster on new data."""

    kind: ClassVar[str] = "xgboost_continue"
    parent_kinds = XGB_PARENT_KINDS
    trees_parent_: int = 0

    @classmethod
    def default_params(cls, task: Task) -> dict[str, Any]:
        return {
            "parent": None,
            "parent_member": None,
            "n_estimators": 100,
            "learning_rate": 0.05,
            "max_depth": 4,
            "tree_method": "hist",
        }

    @classmethod
    def allowed_params(cls, task: Task) -> set[str]:
        return super().allowed_params(task) | {"parent", "parent_member"}

    def _model(self) -> Any:
        import xgboost as xgb

        own = {k: v for k, v in self.params.items() if k not in ("parent", "parent_member", *CHECKED)}
        common = {**own, "n_jobs": self.threads, "random_state": self.seed}
        return xgb.XGBClassifier(**common) if self.task == "classification" else xgb.XGBRegressor(**common)

    def fit(self, X: pd.DataFrame, y: np.ndarray, schema: Schema) -> Self:
        parent = load_parent(self.params["parent"], manifest_sha256=self.params.get(MANIFEST_SHA256))
        _, source = pick_member(parent, XGB_PARENT_KINDS, self.params.get("parent_member"), self.kind)
        self.prep_ = source.prep_  # the parent's encoding, so its trees see the same features
        self.trees_parent_ = int(source.booster_.num_boosted_rounds())
        Xt = self.prep_.transform(X)
        model = self._model().fit(Xt, y, xgb_model=source.booster_)
        self.booster_ = model.get_booster()
        return self

    def info(self) -> dict[str, Any]:
        added = (
            int(self.booster_.num_boosted_rounds()) - self.trees_parent_ if hasattr(self, "booster_") else 0
        )
        return {
            **super().info(),
            "parent": parent_record(self.params, "parent", "continued boosting"),
            "transfer": {"strategy": "continue", "rounds_parent": self.trees_parent_, "rounds_added": added},
        }


class KerasTransfer(FromParent, KerasMLP):
    """Transfer a published Keras network's body to this task with a new head."""

    kind: ClassVar[str] = "keras_transfer"
    parent_kinds = KERAS_PARENT_KINDS
    same_classes = False
    delta_: dict[str, float]

    @classmethod
    def default_params(cls, task: Task) -> dict[str, Any]:
        return {
            "parent": None,
            "parent_member": None,
            "strategy": "fine_tune",
            "unfreeze": -1,
            # The head is one layer over fixed features: at 1e-3, with early stopping on a
            # small validation slice, it stopped far from converged (bench/transfer: 0.948
            # vs 0.967 parity accuracy at 100 rows per class).
            "head_learning_rate": 1e-2,
            "fine_tune_learning_rate": 1e-4,
            "head_epochs": 300,
            "fine_tune_epochs": 50,
            "patience": 30,
            "batch_size": 32,
            "validation_fraction": 0.15,
        }

    @classmethod
    def expected_epochs(cls, params: Mapping[str, Any]) -> int:
        """The head's epochs (ending within three patiences), then the fine-tuning's."""
        head = min(int(params["head_epochs"]), 3 * int(params["patience"]))
        return head + (int(params["fine_tune_epochs"]) if params["strategy"] == "fine_tune" else 0)

    @classmethod
    def check_values(cls, member: str, task: Task, params: Mapping[str, Any]) -> None:
        if params["strategy"] not in ("feature_extraction", "fine_tune"):
            raise ConfigError(
                f"member {member!r} (kind keras_transfer): parameter 'strategy' must be "
                f"'feature_extraction' or 'fine_tune'; found {params['strategy']!r}."
            )
        for key in ("head_epochs", "fine_tune_epochs", "patience", "batch_size"):
            if not isinstance(params[key], int) or params[key] < 1:
                raise ConfigError(
                    f"member {member!r} (kind keras_transfer): parameter {key!r} must be a positive "
                    f"integer; found {params[key]!r}."
                )
        if not isinstance(params["unfreeze"], int):
            raise ConfigError(
                f"member {member!r} (kind keras_transfer): parameter 'unfreeze' must be an integer "
                f"(-1 unfreezes the whole body); found {params['unfreeze']!r}."
            )

    def _body_layers(self, body: Any) -> list[Any]:
        return [layer for layer in body.layers if layer.weights]

    def fit(self, X: pd.DataFrame, y: np.ndarray, schema: Schema) -> Self:
        keras = import_keras(self.threads)
        keras.utils.set_random_seed(self.seed)
        parent = load_parent(self.params["parent"], manifest_sha256=self.params.get(MANIFEST_SHA256))
        _, source = pick_member(parent, KERAS_PARENT_KINDS, self.params.get("parent_member"), self.kind)
        self.prep_ = source.prep_
        net = source.model_
        body = keras.Model(net.inputs, net.layers[-2].output, name="parent_body")  # everything but the head
        before = {w.path: np.array(w.numpy()) for w in body.weights}

        Xt = np.asarray(self.prep_.transform(X), dtype="float32")
        target = self._encode_target(y)
        inputs = keras.Input(shape=net.inputs[0].shape[1:], name="features")
        features = body(inputs, training=False)  # BatchNormalization stays in inference mode
        model = keras.Model(inputs, self._head(features, seed_offset=0), name="accord_transfer")
        body.trainable = False
        self._compile(model, self.params["head_learning_rate"])
        self._train(model, Xt, target, self.params["head_epochs"])
        if self.params["strategy"] == "fine_tune":
            body.trainable = True
            layers = self._body_layers(body)
            keep_frozen = (
                layers
                if self.params["unfreeze"] == 0
                else (
                    []
                    if self.params["unfreeze"] < 0
                    else layers[: max(0, len(layers) - self.params["unfreeze"])]
                )
            )
            for layer in keep_frozen:
                layer.trainable = False
            for layer in body.layers:  # BatchNormalization keeps its learned statistics
                if isinstance(layer, keras.layers.BatchNormalization):
                    layer.trainable = False
            # recompile after changing `trainable`, at a low learning rate
            self._compile(model, self.params["fine_tune_learning_rate"])
            self._train(model, Xt, target, self.params["fine_tune_epochs"])
        self.model_ = model
        self.delta_ = {}
        for w in body.weights:
            old = before[w.path]
            norm = float(np.linalg.norm(old)) or 1.0
            self.delta_[w.path] = float(np.linalg.norm(np.array(w.numpy()) - old) / norm)
        return self

    def info(self) -> dict[str, Any]:
        delta = getattr(self, "delta_", {})
        return {
            **super().info(),
            "parent": parent_record(self.params, "parent", "transfer"),
            "transfer": {
                "strategy": self.params["strategy"],
                "relative_change_per_layer": delta,
                "relative_change_max": max(delta.values(), default=0.0),
            },
        }


class PublishedMember(FromParent, Member):
    """A frozen member: someone else's published ensemble, never refit on our data."""

    kind: ClassVar[str] = "published"
    parent_param = "ref"
    parent_: Any
    files_: dict[str, bytes]

    @classmethod
    def default_params(cls, task: Task) -> dict[str, Any]:
        return {"ref": None}

    @classmethod
    def allowed_params(cls, task: Task) -> set[str]:
        return {"ref"}

    @classmethod
    def fit_seconds(cls, task: Task, params: Mapping[str, Any], shape: FitShape) -> float:
        """Fetching and verifying a published version: no training, whatever the rows."""
        return 0.5

    def fit(self, X: pd.DataFrame, y: np.ndarray, schema: Schema) -> Self:
        from accord.registry.refs import parse_ref
        from accord.registry.store import Registry

        ref = parse_ref(self.params["ref"])  # pinned to a version by resolve_params
        checked = self.params.get(MANIFEST_SHA256)  # the version the flow checked, when it checked one
        _, _, self.files_ = Registry(ref.store).fetch(ref, manifest_sha256=checked)  # verified
        self._build()
        return self

    def _build(self) -> None:
        from accord.ensembling.ensemble import build_ensemble

        self.parent_ = build_ensemble(self.files_, weighted_only=True)  # a frozen ensemble: predictions only

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        table = X[self.parent_.schema.names]
        if self.task == "classification":
            return np.asarray(self.parent_.predict_proba(table), dtype="float64")
        return np.asarray(self.parent_.predict(table), dtype="float64")

    def info(self) -> dict[str, Any]:
        return {**super().info(), "parent": parent_record(self.params, "ref", "published (frozen)")}

    def save(self) -> dict[str, bytes]:
        index = json.dumps(sorted(self.files_)).encode()
        return {"parent-index.json": index, **{f"parent/{p}": d for p, d in self.files_.items()}}

    @classmethod
    def load(cls, files: Mapping[str, bytes], info: Mapping[str, Any]) -> Self:
        member = cls.from_info(info)
        try:
            index = json.loads(files["parent-index.json"])
        except (KeyError, json.JSONDecodeError) as e:
            raise IntegrityError("published member has no valid parent-index.json") from e
        member.files_ = {p: files[f"parent/{p}"] for p in index}
        member._build()
        return member


__all__ = ["KerasTransfer", "PublishedMember", "XGBoostContinue"]

"""XGBoost member: ordinal-encoded categoricals, native missing values, UBJSON booster."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Self

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer

from accord.data.schema import Schema
from accord.errors import ConfigError
from accord.members import skops_io
from accord.members.base import FitShape, Member
from accord.members.preprocess import make_preprocessor
from accord.types import Task

PREPROCESS_FILE = "preprocess.skops"
BOOSTER_FILE = "model.ubj"
MANAGED = frozenset({"n_jobs", "nthread", "random_state", "seed", "objective", "num_class"})
PER_COLUMN = (
    "accord encodes the columns itself (numbers first, then categories as ordinal codes), "
    "so a list per column would not line up with what XGBoost sees"
)
# Estimator parameters accord cannot honour, and why (`Member.not_supported`): refused
# before any training, where XGBoost would otherwise fail mid-run or quietly ignore them.
NOT_SUPPORTED: dict[str, str] = {
    "early_stopping_rounds": "a member fits on its whole training rows, with no validation set to stop on",
    "callbacks": "a config holds no Python callables",
    "feature_weights": PER_COLUMN,
    "feature_types": PER_COLUMN,
    "enable_categorical": "accord gives XGBoost categories as ordinal codes, not as a categorical dtype",
}


class XGBoostMember(Member):
    """Gradient-boosted trees from XGBoost (hist method)."""

    kind: ClassVar[str] = "xgboost"
    not_supported: ClassVar[Mapping[str, str]] = NOT_SUPPORTED
    prep_: ColumnTransformer
    booster_: Any

    @classmethod
    def default_params(cls, task: Task) -> dict[str, Any]:
        return {
            "n_estimators": 300,
            "learning_rate": 0.05,
            "max_depth": 4,
            "subsample": 0.9,
            "colsample_bytree": 0.9,
            "tree_method": "hist",
        }

    @classmethod
    def allowed_params(cls, task: Task) -> set[str]:
        import xgboost as xgb

        model = xgb.XGBClassifier() if task == "classification" else xgb.XGBRegressor()
        return set(model.get_params()) - MANAGED - set(cls.not_supported)

    @classmethod
    def check_values(cls, member: str, task: Task, params: Mapping[str, Any]) -> None:
        for key in ("n_estimators", "max_depth"):
            value = params.get(key)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ConfigError(
                    f"member {member!r} (kind xgboost): parameter {key!r} must be a positive "
                    f"integer; found {value!r}."
                )
        rate = params.get("learning_rate")
        if rate is not None and not (isinstance(rate, int | float) and 0 < rate <= 1):
            raise ConfigError(
                f"member {member!r} (kind xgboost): parameter 'learning_rate' must be in (0, 1]; "
                f"found {rate!r}."
            )

    @classmethod
    def fit_seconds(cls, task: Task, params: Mapping[str, Any], shape: FitShape) -> float:
        """Per tree, a fixed cost and one over rows x columns for each level it grows.

        Each round grows `FitShape.trees_per_round` trees. Measurements: docs/performance.md.
        """
        trees = int(params.get("n_estimators") or 100) * shape.trees_per_round
        depth = int(params.get("max_depth") or 6)
        return trees * (2.0e-3 + 7.8e-10 * shape.rows * shape.features * depth)

    def _model(self) -> Any:
        import xgboost as xgb

        common = {**self.params, "n_jobs": self.threads, "random_state": self.seed}
        if self.task == "classification":
            return xgb.XGBClassifier(**common)
        return xgb.XGBRegressor(**common)

    def fit(self, X: pd.DataFrame, y: np.ndarray, schema: Schema) -> Self:
        self.prep_ = make_preprocessor(schema, encoding="ordinal", scale=False, impute_numeric=False)
        Xt = self.prep_.fit_transform(X)
        model = self._model().fit(Xt, y)
        self.booster_ = model.get_booster()
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        import xgboost as xgb

        matrix = xgb.DMatrix(self.prep_.transform(X), nthread=self.threads)
        raw = np.asarray(self.booster_.predict(matrix), dtype="float64")
        if self.task == "regression":
            return raw
        if raw.ndim == 1:  # binary:logistic gives P(class 1)
            return np.column_stack([1.0 - raw, raw])
        return raw

    def save(self) -> dict[str, bytes]:
        return {
            PREPROCESS_FILE: skops_io.dumps(self.prep_),
            BOOSTER_FILE: bytes(self.booster_.save_raw(raw_format="ubj")),
        }

    @classmethod
    def load(cls, files: Mapping[str, bytes], info: Mapping[str, Any]) -> Self:
        import xgboost as xgb

        member = cls.from_info(info)
        member.prep_ = skops_io.loads(files[PREPROCESS_FILE], where=f"xgboost {PREPROCESS_FILE}")
        booster = xgb.Booster()
        try:
            booster.load_model(bytearray(files[BOOSTER_FILE]))
        except xgb.core.XGBoostError as e:
            from accord.errors import IntegrityError

            raise IntegrityError(f"xgboost {BOOSTER_FILE} is not a valid UBJSON booster: {e}") from e
        booster.set_param({"nthread": member.threads})
        member.booster_ = booster
        return member

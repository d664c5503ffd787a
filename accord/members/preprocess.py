"""Per-member preprocessing: imputation, categorical encoding and scaling.

Each member owns its preprocessing and saves it with itself, so a loaded member
accepts the raw (schema-conformed) table it was trained on.
"""

from __future__ import annotations

from typing import Literal

from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.model_selection import KFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler, TargetEncoder

from accord.data.schema import Schema

Encoding = Literal["onehot", "ordinal"]

MISSING_CATEGORY = "__missing__"
# A one-hot member reads a categorical column with more categories than this through
# cross-fitted target encoding (scikit-learn's TargetEncoder) instead: a column per
# category would swamp a linear, distance or neural model, and cost memory.
HIGH_CARDINALITY = 30


def make_preprocessor(
    schema: Schema, *, encoding: Encoding, scale: bool, impute_numeric: bool = True
) -> ColumnTransformer:
    """Build an unfitted column transformer for a schema.

    Args:
        schema: The input schema (decides numeric vs categorical columns).
        encoding: ``onehot`` for linear, distance and neural models (target encoding for
            columns of more than `HIGH_CARDINALITY` categories); ``ordinal`` for trees.
        scale: Standardise numeric columns (linear, SVM, k-NN, neural models).
        impute_numeric: Fill missing numbers with the median; gradient boosting
            libraries that handle NaN natively pass ``False``.

    Returns:
        A `ColumnTransformer` producing a dense float matrix.
    """
    numeric_steps: list[tuple[str, object]] = []
    if impute_numeric:
        numeric_steps.append(("impute", SimpleImputer(strategy="median", keep_empty_features=True)))
    if scale:
        numeric_steps.append(("scale", StandardScaler()))
    numeric: object = Pipeline(numeric_steps) if numeric_steps else "passthrough"

    encoder: object
    if encoding == "onehot":
        encoder = OneHotEncoder(handle_unknown="ignore", sparse_output=False)
    else:
        encoder = OrdinalEncoder(
            handle_unknown="use_encoded_value", unknown_value=-1, encoded_missing_value=-1
        )
    categorical = Pipeline(
        [
            ("impute", SimpleImputer(strategy="constant", fill_value=MISSING_CATEGORY)),
            ("encode", encoder),
        ]
    )
    high = [
        c.name for c in schema.columns if c.kind == "categorical" and len(c.categories) > HIGH_CARDINALITY
    ]
    if encoding != "onehot":
        high = []
    low = [name for name in schema.categorical if name not in high]
    transformers: list[tuple[str, object, list[str]]] = []
    if schema.numeric:
        transformers.append(("num", numeric, schema.numeric))
    if low:
        transformers.append(("cat", categorical, low))
    if high:
        target_encoded = Pipeline(
            [
                ("impute", SimpleImputer(strategy="constant", fill_value=MISSING_CATEGORY)),
                ("encode", TargetEncoder(cv=KFold(5, shuffle=True, random_state=0))),  # cross-fitted
                *([("scale", StandardScaler())] if scale else []),
            ]
        )
        transformers.append(("target", target_encoded, high))
    return ColumnTransformer(transformers, remainder="drop", sparse_threshold=0.0)

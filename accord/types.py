"""Choices that several stages share, each defined once: the `Literal`s the config forms and the code read."""

from __future__ import annotations

from typing import Literal

Task = Literal["classification", "regression"]
"""What a run learns: class probabilities or values."""

TaskChoice = Literal["auto", "classification", "regression"]
"""The task a user may ask for; ``auto`` infers it from the target."""

Method = Literal["caruana", "optimize", "stacking", "equal", "hard"]
"""How the ensemble's weights are fitted on out-of-fold predictions."""

Preset = Literal["fast", "default", "best"]
"""A named portfolio of member configurations (`accord.portfolio`): few and cheap, balanced, or many."""

Final = Literal["refit", "bag"]
"""What a member predicts with: one model refitted on every training row, or its K fold models averaged."""

PromotionPolicy = Literal["always", "if_better", "never"]
"""When a run moves its alias to the version it published."""

ColumnKind = Literal["numeric", "categorical"]
"""How a feature column is read and encoded."""

TableFormat = Literal["parquet", "csv"]
"""The file formats a table is read from and written to."""

MemberKind = Literal[
    "logreg",
    "svc",
    "random_forest",
    "extra_trees",
    "hist_gb",
    "knn",
    "xgboost",
    "xgboost_dask",
    "keras_mlp",
    "keras_cnn",
    "keras_transfer",
    "xgboost_continue",
    "published",
    "dp_logreg",
]
"""Every member kind a run may name; `accord.members.KINDS` maps each to its class (kept equal by a test)."""

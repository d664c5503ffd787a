"""The input schema a model was trained on, and the check that enforces it.

A schema lists each feature column with its kind (numeric or categorical), its
pandas dtype and, for categorical columns, the categories seen in training.
`Schema.conform` is the single gate every table passes before a member sees it:
it normalises dtypes, accepts reordered columns and refuses anything else with
a readable diff.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from accord.data.columns import reapply
from accord.errors import DataError, SchemaError
from accord.types import ColumnKind, Task

MAX_CATEGORIES_RECORDED = 1000


def column_kind(series: pd.Series) -> ColumnKind:
    """Classify a column as numeric or categorical, refusing types accord cannot train on."""
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_numeric_dtype(dtype):
        return "numeric"
    if (
        isinstance(dtype, pd.CategoricalDtype)
        or pd.api.types.is_string_dtype(dtype)
        or pd.api.types.is_object_dtype(dtype)
    ):
        return "categorical"
    raise DataError(
        f"column {series.name!r} has dtype {dtype}, which accord cannot train on; "
        "expected numbers or strings. Convert it (e.g. a date to a number of days) or drop it."
    )


def normalise_column(series: pd.Series, kind: ColumnKind) -> pd.Series:
    """Return the column as float64 (numeric, with +-inf as NaN) or object strings (categorical)."""
    if kind == "numeric":
        values = series.astype("float64")
        return values.replace([np.inf, -np.inf], np.nan)
    as_object = series.astype("object")
    mask = as_object.isna()
    out = as_object.astype(str).astype("object")
    out[mask] = np.nan
    return out


@dataclass(frozen=True)
class Column:
    """One feature column of the schema."""

    name: str
    kind: ColumnKind
    dtype: str
    categories: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready mapping."""
        out: dict[str, Any] = {"name": self.name, "kind": self.kind, "dtype": self.dtype}
        if self.kind == "categorical":
            out["categories"] = list(self.categories)
        return out


@dataclass(frozen=True)
class Schema:
    """Feature columns, target and task of a trained model.

    `dropped` (column -> why) and `dates` (source columns whose parts are features) record
    what `accord.data.columns.derive` decided on the training table; `conform` applies the
    same to every later table.
    """

    columns: tuple[Column, ...]
    target: str
    task: Task
    classes: tuple[Any, ...] = field(default=())
    dropped: dict[str, str] = field(default_factory=dict)
    dates: tuple[str, ...] = ()

    @property
    def names(self) -> list[str]:
        """Feature column names in training order."""
        return [c.name for c in self.columns]

    @property
    def numeric(self) -> list[str]:
        """Names of numeric columns."""
        return [c.name for c in self.columns if c.kind == "numeric"]

    @property
    def categorical(self) -> list[str]:
        """Names of categorical columns."""
        return [c.name for c in self.columns if c.kind == "categorical"]

    @classmethod
    def infer(
        cls,
        frame: pd.DataFrame,
        target: str,
        task: Task,
        classes: tuple[Any, ...] = (),
    ) -> Schema:
        """Capture the schema of a feature table."""
        columns = []
        for name in frame.columns:
            series = frame[name]
            kind = column_kind(series)
            cats: tuple[str, ...] = ()
            if kind == "categorical":
                seen = sorted(series.dropna().astype(str).unique().tolist())
                cats = tuple(seen[:MAX_CATEGORIES_RECORDED])
            columns.append(Column(str(name), kind, str(series.dtype), cats))
        return cls(tuple(columns), target, task, tuple(classes))

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready mapping (``dropped`` and ``dates`` only when there are some)."""
        out: dict[str, Any] = {
            "target": self.target,
            "task": self.task,
            "classes": [_jsonable(c) for c in self.classes],
            "columns": [c.to_dict() for c in self.columns],
        }
        if self.dropped:
            out["dropped"] = dict(self.dropped)
        if self.dates:
            out["dates"] = list(self.dates)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Schema:
        """Rebuild a schema from `to_dict` output."""
        columns = tuple(
            Column(c["name"], c["kind"], c["dtype"], tuple(c.get("categories", ()))) for c in data["columns"]
        )
        return cls(
            columns,
            data["target"],
            data["task"],
            tuple(data.get("classes", ())),
            dict(data.get("dropped", {})),
            tuple(data.get("dates", ())),
        )

    def diff(self, frame: pd.DataFrame) -> list[str]:
        """List every way `frame` differs from this schema (empty when it conforms).

        `frame` is taken as it is: `conform` first drops the `dropped` columns and expands
        the `dates`.

        A column whose every value is missing conforms to either kind: a chunk of a table
        may hold no value of a column, and missing is missing whatever the dtype.
        """
        problems: list[str] = []
        expected = self.names
        present = [str(c) for c in frame.columns]
        missing = [c for c in expected if c not in present]
        extra = [c for c in present if c not in expected and c != self.target]
        if missing:
            problems.append(f"missing columns: {missing}")
        if extra:
            problems.append(f"unexpected columns: {extra}")
        for col in self.columns:
            if col.name not in present:
                continue
            series = frame[col.name]
            kind: str | None
            try:
                kind = column_kind(series)
            except DataError:
                kind = None
            if kind != col.kind and not (len(series) and bool(series.isna().all())):
                problems.append(
                    f"column {col.name!r}: expected {col.kind} ({col.dtype}), found {series.dtype}"
                )
        return problems

    def frame_of(self, values: Any) -> pd.DataFrame:
        """A 2-D array (NumPy, or anything `numpy.asarray` takes) as a table of `names`, in that order.

        Why: scikit-learn's tools (and users) pass arrays; the schema says what each column is.
        Numeric columns must hold numbers; categorical columns may hold anything (as text).

        Raises:
            SchemaError: not 2-D, a column count other than ``len(names)``, or a numeric
                column holding something that is not a number (named).
        """
        array = np.asarray(values, dtype=object) if not isinstance(values, np.ndarray) else values
        if array.ndim != 2 or array.shape[1] != len(self.columns):
            raise SchemaError(
                f"expected a pandas DataFrame, or a 2-D array of {len(self.columns)} columns in the "
                f"order {self.names}; found {type(values).__name__} of shape {array.shape}. "
                "Pass a DataFrame with those column names, or an array with those columns in that order."
            )
        columns = {}
        for i, col in enumerate(self.columns):
            values_i = pd.Series(array[:, i], name=col.name)
            if col.kind == "numeric":
                try:
                    values_i = pd.to_numeric(values_i, errors="raise").astype("float64")
                except (TypeError, ValueError) as e:
                    raise SchemaError(
                        f"column {i} ({col.name!r}) must hold numbers; found {e}. "
                        "Convert it, or pass a DataFrame."
                    ) from e
            else:
                values_i = values_i.astype("object")
            columns[col.name] = values_i
        return pd.DataFrame(columns)

    def conform(self, frame: Any) -> pd.DataFrame:
        """Check `frame` against the schema and return it normalised and in training order.

        `frame` is a DataFrame, or a 2-D array in the order of `names` (`frame_of`).

        Raises:
            SchemaError: columns are missing, unexpected or of another kind.
        """
        if not isinstance(frame, pd.DataFrame):
            frame = self.frame_of(frame)
        if self.dropped or self.dates:
            frame = reapply(frame, self.dropped, self.dates)
        problems = self.diff(frame)
        if problems:
            raise SchemaError(
                "the table does not match the model's schema: "
                + "; ".join(problems)
                + ". Rename, add or convert the columns to match the schema in the manifest."
            )
        return pd.DataFrame(
            {c.name: normalise_column(frame[c.name], c.kind) for c in self.columns},
            index=frame.index,
        )


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return value

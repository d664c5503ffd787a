"""Data sources, task inference and validation.

A source is a string: ``sklearn:<name>`` for scikit-learn's bundled datasets,
``synthetic:<classification|regression>?opt=value&...`` for seeded synthetic
tables, or any fsspec URL ending in ``.csv`` or ``.parquet``. `load_dataset`
reads it, refuses what cannot be trained on with a message that names the
column or parameter, and captures the input schema.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import parse_qsl

import numpy as np
import pandas as pd

from accord.data.columns import derive
from accord.data.schema import Schema, column_kind, normalise_column
from accord.data.tables import (
    csv_header,
    refuse_duplicate_columns,
    show_cells,
    table_format,
    unparsed_numbers,
    unreadable,
)
from accord.errors import ConfigError, DataError
from accord.types import Task, TaskChoice

SKLEARN_DATASETS = ("digits", "breast_cancer", "wine", "iris", "diabetes")
DEFAULT_TARGET = "target"
MAX_CLASSES_FOR_INTEGER_TARGET = 20

_SYNTHETIC_OPTIONS: dict[str, type] = {
    "n_rows": int,
    "n_features": int,
    "n_informative": int,
    "n_classes": int,
    "noise": float,
    "seed": int,
    "n_categorical": int,
    "missing": float,
}


@dataclass(frozen=True)
class Dataset:
    """A validated table: features, raw target, task and schema."""

    X: pd.DataFrame
    y: pd.Series
    task: Task
    schema: Schema
    source: str
    fingerprint: str

    @property
    def classes(self) -> tuple[Any, ...]:
        """Sorted class labels (classification) or an empty tuple."""
        return self.schema.classes


def read_source(source: str, target: str | None = None) -> tuple[pd.DataFrame, str]:
    """Read a source into one table (features and target) and return it with the target name.

    Raises:
        DataError: the source is unknown, unreadable or malformed.
    """
    if source.startswith("sklearn:"):
        name, _, query = source.removeprefix("sklearn:").partition("?")
        return _select(_read_sklearn(name), query, source), target or DEFAULT_TARGET
    if source.startswith("synthetic:"):
        return _read_synthetic(source.removeprefix("synthetic:")), target or DEFAULT_TARGET
    if target is None:
        raise DataError(
            f"data source {source!r} is a file, so the target column must be named; "
            "pass --target COLUMN (or `target:` in the config)."
        )
    return _read_file(source), target


def _read_sklearn(name: str) -> pd.DataFrame:
    from sklearn import datasets

    if name not in SKLEARN_DATASETS:
        raise DataError(
            f"unknown bundled dataset 'sklearn:{name}'; expected one of "
            f"{['sklearn:' + n for n in SKLEARN_DATASETS]}."
        )
    bunch = getattr(datasets, f"load_{name}")(as_frame=True)
    frame: pd.DataFrame = bunch.frame.copy()
    frame.columns = [str(c).replace(" ", "_") for c in frame.columns]
    return frame


_SELECT_OPTIONS = ("classes", "relabel", "per_class", "n_rows", "part", "seed")


def _select(frame: pd.DataFrame, query: str, source: str) -> pd.DataFrame:
    """Row selections on bundled datasets, for transfer experiments.

    Options: ``classes=0,1,2`` keeps those labels; ``part=a|b`` keeps one of two
    disjoint seeded halves (a source task and a target task never share rows);
    ``per_class=N`` or ``n_rows=N`` subsamples, seeded; ``relabel=parity`` maps an
    integer label to ``label % 2``.
    """
    if not query:
        return frame
    options = dict(parse_qsl(query, keep_blank_values=True))
    unknown = sorted(set(options) - set(_SELECT_OPTIONS))
    if unknown:
        raise DataError(
            f"unknown option(s) {unknown} in {source!r}; expected some of {list(_SELECT_OPTIONS)}."
        )
    try:
        seed = int(options.get("seed", 0))
        rng = np.random.default_rng(seed)
        if "part" in options:
            if options["part"] not in ("a", "b"):
                raise DataError(f"option 'part' in {source!r} must be 'a' or 'b'; found {options['part']!r}.")
            order = np.random.default_rng(12345).permutation(len(frame))
            half = order[: len(frame) // 2] if options["part"] == "a" else order[len(frame) // 2 :]
            frame = frame.iloc[np.sort(half)]
        if "classes" in options:
            keep = [int(c) for c in options["classes"].split(",") if c != ""]
            frame = frame[frame[DEFAULT_TARGET].isin(keep)]
        if "per_class" in options:
            n = int(options["per_class"])
            picks = [
                rng.permutation(np.flatnonzero(frame[DEFAULT_TARGET].to_numpy() == c))[:n]
                for c in np.unique(frame[DEFAULT_TARGET])
            ]
            frame = frame.iloc[np.sort(np.concatenate(picks))]
        if "n_rows" in options:
            n = int(options["n_rows"])
            frame = frame.iloc[np.sort(rng.permutation(len(frame))[:n])]
        if options.get("relabel") == "parity":
            frame = frame.assign(**{DEFAULT_TARGET: frame[DEFAULT_TARGET].astype(int) % 2})
        elif "relabel" in options:
            raise DataError(f"option 'relabel' in {source!r} must be 'parity'; found {options['relabel']!r}.")
    except ValueError as e:
        raise DataError(f"bad option value in {source!r}: {e}") from e
    return frame.reset_index(drop=True)


def _parse_synthetic(spec: str) -> tuple[str, dict[str, Any]]:
    kind, _, query = spec.partition("?")
    if kind not in ("classification", "regression"):
        raise DataError(
            f"unknown synthetic source 'synthetic:{kind}'; expected synthetic:classification "
            "or synthetic:regression."
        )
    options: dict[str, Any] = {}
    for key, value in parse_qsl(query, keep_blank_values=True, strict_parsing=False):
        if key not in _SYNTHETIC_OPTIONS:
            raise DataError(
                f"unknown option {key!r} in 'synthetic:{spec}'; expected some of "
                f"{sorted(_SYNTHETIC_OPTIONS)}."
            )
        try:
            options[key] = _SYNTHETIC_OPTIONS[key](value)
        except ValueError as e:
            raise DataError(
                f"option {key!r} in 'synthetic:{spec}' must be a {_SYNTHETIC_OPTIONS[key].__name__}; "
                f"found {value!r}."
            ) from e
    return kind, options


def _read_synthetic(spec: str) -> pd.DataFrame:
    from sklearn.datasets import make_classification, make_regression

    kind, opts = _parse_synthetic(spec)
    n_rows = opts.get("n_rows", 1000)
    n_features = opts.get("n_features", 20)
    seed = opts.get("seed", 0)
    n_categorical = opts.get("n_categorical", 0)
    missing = opts.get("missing", 0.0)
    for key, value, low in (("n_rows", n_rows, 1), ("n_features", n_features, 1)):
        if value < low:
            raise DataError(f"option {key!r} must be at least {low}; found {value}.")
    if not 0.0 <= missing < 1.0:
        raise DataError(f"option 'missing' must be in [0, 1); found {missing}.")
    if not 0 <= n_categorical <= n_features:
        raise DataError(
            f"option 'n_categorical' must be between 0 and n_features={n_features}; found {n_categorical}."
        )
    n_classes = opts.get("n_classes", 2)
    needed = int(np.ceil(np.log2(2 * max(n_classes, 2))))  # make_classification: 2 clusters per class
    informative = opts.get("n_informative", min(n_features, max(n_features // 2, needed)))
    try:
        if kind == "classification":
            X, y = make_classification(
                n_samples=n_rows,
                n_features=n_features,
                n_informative=min(informative, n_features),
                n_redundant=0,
                n_classes=n_classes,
                flip_y=opts.get("noise", 0.01),
                class_sep=1.0,
                random_state=seed,
            )
        else:
            X, y = make_regression(
                n_samples=n_rows,
                n_features=n_features,
                n_informative=min(informative, n_features),
                noise=opts.get("noise", 10.0),
                random_state=seed,
            )
    except ValueError as e:
        raise DataError(f"cannot make 'synthetic:{spec}': {e}") from e
    frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(n_features)])
    rng = np.random.default_rng(seed)
    for i in range(n_categorical):
        col = f"x{i}"
        frame[col] = pd.cut(frame[col], bins=4, labels=["a", "b", "c", "d"]).astype(str)
        frame = frame.rename(columns={col: f"c{i}"})
    if missing > 0:
        mask = rng.random(frame.shape) < missing
        frame = frame.mask(mask)
    frame[DEFAULT_TARGET] = y
    return frame


def _read_file(url: str) -> pd.DataFrame:
    try:
        reader = table_format(url, "data")
    except ConfigError as e:
        raise DataError(str(e)) from e
    import fsspec

    if reader == "csv":
        refuse_duplicate_columns(csv_header(url), url)
    try:
        with fsspec.open(url, "rb", compression="infer") as f:
            frame = pd.read_parquet(f) if reader == "parquet" else pd.read_csv(f)
    except (FileNotFoundError, PermissionError) as e:
        raise unreadable(url, e) from e
    except Exception as e:  # parsers and filesystems raise many types; all mean "unreadable"
        raise DataError(
            f"cannot read {url!r} as {reader}: {type(e).__name__}: {e}. Check the URL and format."
        ) from e
    refuse_duplicate_columns([str(c) for c in frame.columns], url)
    return frame


def _mostly_numbers(y: pd.Series) -> bool:
    """Whether a text column is numbers with a few malformed cells (at least 90% parse, some don't)."""
    if column_kind(y) != "categorical" or isinstance(y.dtype, pd.CategoricalDtype):
        return False
    present = int(y.notna().sum())
    bad = len(unparsed_numbers(y))
    return present > 0 and bad > 0 and (present - bad) >= 0.9 * present


def _refuse_unparsed(y: pd.Series, source: str, why: str) -> DataError:
    y = y.reset_index(drop=True)  # rows by position, whatever index the source had
    bad = unparsed_numbers(y)
    positions = bad.index.to_numpy()
    shown = show_cells(list(zip(positions.tolist(), bad.tolist(), strict=True)))
    return DataError(
        f"target column {y.name!r} in {source!r} {why}, but {len(bad)} value(s) do not parse as numbers "
        f"({shown}; rows count from 0). Fix those cells (e.g. remove thousands separators) or "
        "drop those rows; if the values are labels, pass --task classification."
    )


def infer_task(y: pd.Series, source: str = "the data") -> Task:
    """Infer classification or regression from the target column.

    Raises:
        DataError: the target is numbers with a few cells that do not parse (``1,234.5``):
            guessing would flip the task on a typo, so the cells are named instead.
    """
    if _mostly_numbers(y):
        raise _refuse_unparsed(y, source, "looks numeric (at least 90% of its values are numbers)")
    if column_kind(y) == "categorical" or pd.api.types.is_bool_dtype(y.dtype):
        return "classification"
    values = y.dropna().to_numpy(dtype="float64")
    integral = (
        values.size > 0 and bool(np.all(np.isfinite(values))) and bool(np.all(values == np.round(values)))
    )
    if integral and np.unique(values).size <= MAX_CLASSES_FOR_INTEGER_TARGET:
        return "classification"
    return "regression"


def fingerprint(X: pd.DataFrame, y: pd.Series) -> str:
    """Return a sha256 fingerprint of the table's content and column names."""
    h = hashlib.sha256()
    h.update("\x1f".join(map(str, X.columns)).encode())
    h.update(pd.util.hash_pandas_object(X, index=False).to_numpy().tobytes())
    h.update(pd.util.hash_pandas_object(y, index=False).to_numpy().tobytes())
    return h.hexdigest()


def validate_target(y: pd.Series, task: Task, source: str) -> None:
    """Refuse targets accord cannot learn from, naming the column and what was found."""
    name = y.name
    missing = y.isna()
    if missing.any():
        rows = [int(i) for i in np.flatnonzero(missing.to_numpy())[:5]]
        raise DataError(
            f"target column {name!r} has {int(missing.sum())} missing (NaN) values "
            f"(first rows {rows}); drop or fill those rows before training."
        )
    if task == "regression":
        if column_kind(y) != "numeric" and len(unparsed_numbers(y)) < int(y.notna().sum()):
            raise _refuse_unparsed(y, source, "must be numeric for regression")  # some cells are numbers
        if column_kind(y) != "numeric":
            raise DataError(
                f"target column {name!r} must be numeric for regression; found dtype {y.dtype} "
                f"(e.g. {y.iloc[0]!r}). Use --task classification or convert the column."
            )
        values = y.to_numpy(dtype="float64")
        if not np.all(np.isfinite(values)):
            bad = int((~np.isfinite(values)).sum())
            raise DataError(
                f"target column {name!r} has {bad} infinite values; regression needs finite numbers."
            )
        return
    if column_kind(y) == "numeric":
        values = y.to_numpy(dtype="float64")
        if not np.all(np.isfinite(values)):
            bad = int((~np.isfinite(values)).sum())
            raise DataError(
                f"target column {name!r} has {bad} infinite values; classes must be finite labels."
            )
    classes = y.unique()
    if classes.size < 2:
        raise DataError(
            f"target column {name!r} has 1 class ({classes[0]!r}) in {source!r}; "
            "at least 2 are needed for classification."
        )


def checked_target(
    y: pd.Series, n_features: int, task: TaskChoice, source: str
) -> tuple[pd.Series, Task, tuple[Any, ...]]:
    """Refuse an empty table, a table of only the target, or a target accord cannot learn.

    Returns:
        The target normalised (string labels, or float values), the task, and the sorted
        classes (empty for regression).

    Raises:
        DataError: naming the column and what was found.
    """
    if len(y) == 0:
        raise DataError(f"data source {source!r} has no rows; at least one row per fold is needed.")
    if n_features == 0:
        raise DataError(f"data source {source!r} has no feature columns besides the target {y.name!r}.")
    resolved: Task = infer_task(y, source) if task == "auto" else task
    validate_target(y, resolved, source)
    if resolved == "regression":
        return y.astype("float64"), resolved, ()
    if column_kind(y) == "categorical":
        y = normalise_column(y, "categorical")
    return y, resolved, tuple(_plain(c) for c in np.sort(y.unique()))


def load_dataset(
    source: str,
    target: str | None = None,
    task: TaskChoice = "auto",
    ignore_columns: Sequence[str] = (),
) -> Dataset:
    """Read, validate and describe a data source.

    Args:
        source: ``sklearn:<name>``, ``synthetic:<kind>?...`` or a CSV/Parquet URL.
        target: Target column; required for files.
        task: ``auto`` infers the task from the target.
        ignore_columns: Feature columns to leave out. ID-like columns are left out too, and
            date columns become numbers (`accord.data.columns`); the schema records both.

    Returns:
        The validated dataset with its schema and fingerprint.

    Raises:
        DataError: the source cannot be read or trained on.
        ConfigError: an ignored column is not in the table, or is the target.
    """
    frame, target_name = read_source(source, target)
    if target_name not in frame.columns:
        raise DataError(
            f"target column {target_name!r} not found in {source!r}; columns are "
            f"{[str(c) for c in frame.columns][:30]}. Pass --target with one of them."
        )
    if target_name in ignore_columns:
        raise ConfigError(
            f"ignore_columns: {target_name!r} is the target column; remove it from ignore_columns."
        )
    derived = derive(frame.drop(columns=[target_name]), ignore_columns)
    X = derived.X
    y, resolved, classes = checked_target(frame[target_name], X.shape[1], task, source)
    kinds = {str(c): column_kind(X[c]) for c in X.columns}
    X = pd.DataFrame({str(c): normalise_column(X[c], kinds[str(c)]) for c in X.columns}, index=X.index)
    schema = replace(
        Schema.infer(X, target_name, resolved, classes), dropped=derived.dropped, dates=derived.dates
    )
    return Dataset(X, y, resolved, schema, source, fingerprint(X, y))


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return value

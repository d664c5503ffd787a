"""Feature columns as a user's table brings them: ignored ones, ID-like ones and dates.

Why: a real table has a row ID, a date column and columns the user wants left out; a
model should not learn the ID, cannot read a date as text, and must treat every later
table (`accord.load`, batch prediction) exactly as it treated the training one. What is
decided here is recorded in the schema (`Schema.dropped`, `Schema.dates`) and applied
again by `Schema.conform`.

- ``ignore_columns`` are dropped.
- ID-like columns are dropped: text or whole numbers, one distinct value per row, in a
  table of at least `ID_MIN_ROWS` rows (a continuous number is distinct per row too, and
  is kept).
- Date columns (a datetime dtype, or text whose every value is an ISO 8601 date or
  timestamp) become numbers: ``<col>.year``, ``.month``, ``.day``, ``.weekday``,
  ``.dayofyear`` and ``.days`` (days since 1970-01-01).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import pandas as pd

from accord.errors import ConfigError

ID_MIN_ROWS = 20
DATE_PARTS = ("year", "month", "day", "weekday", "dayofyear", "days")
IGNORED = "ignored (ignore_columns)"
ID_LIKE = "ID-like: a different value in every row"


@dataclass(frozen=True)
class Derived:
    """A feature table after `derive`, and what it decided."""

    X: pd.DataFrame
    dropped: dict[str, str] = field(default_factory=dict)
    dates: tuple[str, ...] = ()


def is_id_like(series: pd.Series) -> bool:
    """Text or whole numbers, no value missing or repeated, in at least `ID_MIN_ROWS` rows."""
    if len(series) < ID_MIN_ROWS or series.isna().any():
        return False
    dtype = series.dtype
    textual = pd.api.types.is_object_dtype(dtype) or pd.api.types.is_string_dtype(dtype)
    whole = pd.api.types.is_integer_dtype(dtype)
    return (textual or whole) and bool(series.is_unique)


def _naive(series: pd.Series) -> pd.Series:
    """Datetimes (or ISO 8601 text) as datetimes without a time zone, in UTC; unparsed: NaT."""
    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        values = pd.to_datetime(series)
    else:
        values = pd.to_datetime(series, format="ISO8601", errors="coerce", utc=True)
    return values.dt.tz_convert("UTC").dt.tz_localize(None) if values.dt.tz is not None else values


def as_dates(series: pd.Series) -> pd.Series | None:
    """The column as datetimes if it holds dates (see the module), else None."""
    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        return _naive(series)
    if not (pd.api.types.is_object_dtype(series.dtype) or pd.api.types.is_string_dtype(series.dtype)):
        return None
    present = series.dropna()
    if present.empty or not present.map(lambda v: isinstance(v, str) and len(v) >= 8 and v[4] == "-").all():
        return None
    if pd.to_datetime(present, format="ISO8601", errors="coerce", utc=True).isna().any():
        return None
    return _naive(series)


def date_parts(name: str, values: pd.Series) -> pd.DataFrame:
    """`DATE_PARTS` of a datetime column, as float columns named ``<name>.<part>`` (missing: NaN)."""
    days = (values - pd.Timestamp("1970-01-01")) / pd.Timedelta(days=1)
    parts = {
        "year": values.dt.year,
        "month": values.dt.month,
        "day": values.dt.day,
        "weekday": values.dt.weekday,
        "dayofyear": values.dt.dayofyear,
        "days": days,
    }
    return pd.DataFrame({f"{name}.{p}": parts[p].astype("float64") for p in DATE_PARTS}, index=values.index)


def derive(X: pd.DataFrame, ignore: Iterable[str] = ()) -> Derived:
    """Drop ignored and ID-like columns and turn date columns into numbers (see the module).

    Raises:
        ConfigError: an ignored column is not in the table.
    """
    ignore = list(ignore)
    unknown = [c for c in ignore if c not in X.columns]
    if unknown:
        raise ConfigError(
            f"ignore_columns: {unknown} not in the table; its feature columns are "
            f"{[str(c) for c in X.columns][:30]}. Remove them from ignore_columns."
        )
    dropped = dict.fromkeys(ignore, IGNORED)
    dates: list[str] = []
    pieces: list[pd.DataFrame] = []
    for name in X.columns:
        if name in dropped:
            continue
        series = X[name]
        parsed = as_dates(series)
        if parsed is not None:
            dates.append(str(name))
            pieces.append(date_parts(str(name), parsed))
        elif is_id_like(series):
            dropped[str(name)] = ID_LIKE
        else:
            pieces.append(series.to_frame())
    kept = pd.concat(pieces, axis=1) if pieces else X.iloc[:, :0]
    return Derived(kept, dropped, tuple(dates))


def reapply(frame: pd.DataFrame, dropped: Iterable[str], dates: Iterable[str]) -> pd.DataFrame:
    """Apply a schema's decisions to a later table: drop its dropped columns, expand its dates.

    A table that already holds the date parts (no source column) passes as it is.
    """
    dates = [d for d in dates if d in frame.columns]
    out = frame.drop(columns=[c for c in dropped if c in frame.columns])
    if not dates:
        return out
    for name in dates:
        parsed = _naive(out[name])
        position = list(out.columns).index(name)
        parts = date_parts(name, parsed)
        out = pd.concat([out.iloc[:, :position], parts, out.iloc[:, position + 1 :]], axis=1)
    return out

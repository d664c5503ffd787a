"""Tables read in chunks without Prefect: plan the chunks of an input, read them, check the whole input.

A Parquet input is planned by row groups, so each chunk is read by the worker that
uses it; a CSV input has no index to seek by, so it is read in order (in chunks) by
the caller.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from accord.data.schema import Schema
from accord.data.tables import (
    MAX_SHOWN,
    csv_header,
    file_stamp,
    refuse_duplicate_columns,
    show_cells,
    table_format,
    unparsed_numbers,
    unreadable,
)
from accord.errors import ConfigError, DataError
from accord.types import TableFormat

SCHEMA_SAMPLE_ROWS = 1000


@dataclass(frozen=True)
class Chunk:
    """Rows ``[start, stop)`` of a Parquet file, read from the row groups that hold them."""

    url: str
    index: int
    row_groups: tuple[int, ...]
    start: int  # offset of the first row within the first listed row group
    rows: int
    columns: tuple[str, ...] | None = None

    def read(self) -> pd.DataFrame:
        """Read this chunk's rows (and only its row groups)."""
        import fsspec
        import pyarrow.parquet as pq

        with fsspec.open(self.url, "rb") as f:
            table = pq.ParquetFile(f).read_row_groups(
                list(self.row_groups), columns=list(self.columns) if self.columns else None
            )
        frame: pd.DataFrame = table.slice(self.start, self.rows).to_pandas()
        return frame.reset_index(drop=True)


@dataclass
class Plan:
    """How an input is split: Parquet chunks (read by workers) or a CSV read in order."""

    url: str
    format: TableFormat
    chunk_rows: int
    chunks: list[Chunk] = field(default_factory=list)
    total_rows: int | None = None


def absolute(url: str) -> str:
    """`url`, a local path made absolute: workers (a warm stack's among them) may run in another directory."""
    return url if "://" in url else str(Path(url).expanduser().resolve())


def plan(url: str, chunk_rows: int) -> Plan:
    """Split an input table into chunks of about `chunk_rows` rows.

    Raises:
        ConfigError: `chunk_rows` is not positive or the format is unknown.
        DataError: the input cannot be read.
    """
    if chunk_rows < 1:
        raise ConfigError(f"chunk_rows must be at least 1; found {chunk_rows}.")
    fmt = table_format(url, "input")
    url = absolute(url)
    out = Plan(url, fmt, chunk_rows)
    if fmt == "csv":
        return out
    import fsspec
    import pyarrow.parquet as pq

    try:
        with fsspec.open(url, "rb") as f:
            meta = pq.ParquetFile(f).metadata
    except Exception as e:  # filesystems and parsers raise many types; all mean "unreadable"
        raise unreadable(url, e) from e
    sizes = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
    out.total_rows = sum(sizes)
    # Walk the rows in order; each chunk names the row groups it overlaps.
    offsets = np.cumsum([0, *sizes])
    for index, begin in enumerate(range(0, out.total_rows, chunk_rows)):
        end = min(begin + chunk_rows, out.total_rows)
        first = int(np.searchsorted(offsets, begin, side="right") - 1)
        last = int(np.searchsorted(offsets, end, side="left") - 1)
        groups = tuple(range(first, last + 1))
        out.chunks.append(Chunk(url, index, groups, int(begin - offsets[first]), end - begin))
    return out


def csv_dtypes(schema: Schema | None) -> dict[str, str]:
    """How a CSV input is read: categorical columns as text, true/false columns as booleans.

    Read by inference, a chunk whose categorical column is all missing comes out as
    numbers (NaN), a chunk whose codes look numeric (``"007"``) loses them, and a
    true/false column with an empty cell becomes text; read by the schema, every chunk is
    read as the whole table would be. Other numeric columns are left to inference;
    `check_input` has checked that they parse.
    """
    if schema is None:
        return {}
    dtypes = {c.name: "object" for c in schema.columns if c.kind == "categorical"}
    dtypes.update({c.name: "boolean" for c in schema.columns if c.dtype in ("bool", "boolean")})
    return dtypes


def sample(p: Plan, schema: Schema | None = None) -> pd.DataFrame:
    """The first rows of the input, read as `csv_chunks` reads them, to check before any scoring."""
    import fsspec

    try:
        if p.format == "csv":
            with fsspec.open(p.url, "rb", compression="infer") as f:
                return pd.read_csv(f, nrows=SCHEMA_SAMPLE_ROWS, dtype=csv_dtypes(schema))
        if not p.chunks:
            raise DataError(f"input {p.url!r} has no rows; expected a table to score.")
        first = p.chunks[0]
        return Chunk(p.url, 0, first.row_groups[:1], first.start, min(first.rows, SCHEMA_SAMPLE_ROWS)).read()
    except DataError:
        raise
    except Exception as e:
        raise unreadable(p.url, e) from e


def csv_chunks(p: Plan, schema: Schema | None = None) -> Iterator[pd.DataFrame]:
    """Read a CSV input in order, `chunk_rows` rows at a time, with the schema's `csv_dtypes`."""
    import fsspec

    with fsspec.open(p.url, "rb", compression="infer") as f:
        yield from pd.read_csv(f, chunksize=p.chunk_rows, dtype=csv_dtypes(schema))


def _unparsed_numbers(p: Plan, schema: Schema) -> dict[str, tuple[list[tuple[int, str]], int]]:
    """Per numeric column of the whole CSV: the first cells that do not parse as numbers, and their count."""
    import fsspec

    numeric = set(schema.numeric)
    dtypes = csv_dtypes(schema)
    bad: dict[str, tuple[list[tuple[int, str]], int]] = {}
    with fsspec.open(p.url, "rb", compression="infer") as f:
        reader = pd.read_csv(
            f, chunksize=max(p.chunk_rows, 10_000), usecols=lambda c: c in numeric, dtype=dtypes
        )
        for chunk in reader:
            for name in chunk.columns:
                column = chunk[name]
                if pd.api.types.is_numeric_dtype(column.dtype) or pd.api.types.is_bool_dtype(column.dtype):
                    continue
                cells = unparsed_numbers(column)
                shown, count = bad.get(str(name), ([], 0))
                room = MAX_SHOWN - len(shown)
                shown += [(int(r), str(v)) for r, v in cells.iloc[:room].items()]  # type: ignore[call-overload]
                bad[str(name)] = (shown, count + len(cells))
    return bad


def check_input(p: Plan, schema: Schema, keep: Sequence[str]) -> None:
    """Check the whole input against the model's schema before the first chunk is scored.

    The header (every column, repeats refused), the pass-through columns and each
    column's kind are checked on the input's first rows; a Parquet file's types hold for
    all of its rows, and for a CSV file every cell of a numeric column is checked to
    parse. Chunks are then read with the same dtypes (`csv_dtypes`), so a chunk whose
    column happens to be all missing is scored as the whole table would be.

    Raises:
        DataError: the input cannot be read, repeats a column name, lacks a `keep` column
            or has numeric cells that do not parse (naming the column, rows and values).
        SchemaError: columns are missing, unexpected or of another kind.
    """
    if p.format == "csv":
        refuse_duplicate_columns(csv_header(p.url), p.url)
    head = sample(p, schema)
    if p.format == "parquet":
        refuse_duplicate_columns([str(c) for c in head.columns], p.url)
    check_keep(head, keep, p.url)
    schema.conform(features(head, schema, keep))
    if p.format != "csv":
        return
    stamp = _stamp(p.url, schema, keep)
    if stamp is not None and stamp in _checked:
        return
    try:
        bad = _unparsed_numbers(p, schema)
    except Exception as e:
        raise unreadable(p.url, e) from e
    if bad:
        parts = [f"column {name!r} ({show_cells(cells, count)})" for name, (cells, count) in bad.items()]
        raise DataError(
            f"input {p.url!r}: numeric columns hold values that do not parse as numbers: "
            + "; ".join(parts)
            + ". Rows count from 0 after the header. Fix those cells or leave them empty (missing)."
        )
    if stamp is not None:
        _checked.add(stamp)


_checked: set[tuple[str, ...]] = set()
"""Inputs whose every cell passed `check_input` in this process, by URL, size, modification and model."""


def _stamp(url: str, schema: Schema, keep: Sequence[str]) -> tuple[str, ...] | None:
    """What identifies a checked CSV: its `file_stamp`, the schema and `keep`; None without a stamp.

    The CLI checks an input before it starts the flow, which checks it again: an input
    unchanged since is not read a second time.
    """
    stamp = file_stamp(url)
    if stamp is None:
        return None
    return (*stamp, json.dumps(schema.to_dict(), sort_keys=True, default=str), ",".join(keep))


def features(frame: pd.DataFrame, schema: Schema, keep: Sequence[str]) -> pd.DataFrame:
    """The columns of `frame` the model reads: `keep` columns pass through, unless the model reads them."""
    passed = [c for c in keep if c not in schema.names]
    return frame.drop(columns=passed) if passed else frame


def check_keep(frame: pd.DataFrame, keep: Sequence[str], url: str) -> None:
    """Refuse pass-through columns the input lacks."""
    missing = [c for c in keep if c not in frame.columns]
    if missing:
        raise DataError(
            f"keep: columns {missing} are not in {url!r}; found {list(frame.columns)}. "
            "Name existing columns (e.g. an id) to copy into the output."
        )

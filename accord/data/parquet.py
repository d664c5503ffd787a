"""A Parquet table described without loading its features.

When every member of a run trains across the cluster (``xgboost_dask``), the flow
never needs the feature columns in one process: the workers read them in partitions.
`describe_parquet` reads what the flow does need (the target column, the column types
from the Parquet footer, the categories of string columns) and validates it exactly as
`accord.data.load_dataset` validates a loaded table. The features of the returned
`Dataset` are a frame with the right number of rows and no columns.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from accord.data.dataset import Dataset, checked_target
from accord.data.schema import MAX_CATEGORIES_RECORDED, Column, Schema
from accord.errors import DataError
from accord.types import ColumnKind, TaskChoice

if TYPE_CHECKING:
    import pyarrow as pa

    from accord.data.split import Prepared


def _kind(name: str, dtype: pa.DataType) -> ColumnKind:
    import pyarrow as pa

    if pa.types.is_integer(dtype) or pa.types.is_floating(dtype) or pa.types.is_boolean(dtype):
        return "numeric"
    if pa.types.is_decimal(dtype):
        return "numeric"
    if pa.types.is_string(dtype) or pa.types.is_large_string(dtype) or pa.types.is_dictionary(dtype):
        return "categorical"
    raise DataError(
        f"column {name!r} has Parquet type {dtype}, which accord cannot train on; "
        "expected numbers or strings. Convert it (e.g. a date to a number of days) or drop it."
    )


def describe_parquet(source: str, target: str | None, task: TaskChoice) -> Dataset:
    """Validate and describe a Parquet source from its footer, target and string columns.

    Raises:
        DataError: the source cannot be read or trained on (the same checks and messages
            as for a loaded table).
    """
    import fsspec
    import pyarrow.parquet as pq

    if not target:
        raise DataError(f"data source {source!r} needs a target column; pass --target.")
    try:
        with fsspec.open(source, "rb") as f:
            pf = pq.ParquetFile(f)
            arrow = pf.schema_arrow
            names = [str(n) for n in arrow.names]
            if target not in names:
                raise DataError(
                    f"target column {target!r} not found in {source!r}; columns are {names[:30]}. "
                    "Pass --target with one of them."
                )
            features = [n for n in names if n != target]
            kinds = {n: _kind(n, arrow.field(n).type) for n in features}
            y = pf.read(columns=[target]).column(0).to_pandas().rename(target)
            categories = {
                n: tuple(
                    sorted(pf.read(columns=[n]).column(0).to_pandas().dropna().astype(str).unique().tolist())[
                        :MAX_CATEGORIES_RECORDED
                    ]
                )
                for n in features
                if kinds[n] == "categorical"
            }
            footer = _footer_digest(pf)
    except DataError:
        raise
    except FileNotFoundError as e:
        raise DataError(f"cannot read {source!r}: no such file. Check the URL.") from e
    except Exception as e:  # filesystems and parsers raise many types; all mean "unreadable"
        raise DataError(f"cannot read {source!r} as parquet: {type(e).__name__}: {e}. Check the URL.") from e
    y, resolved, classes = checked_target(y, len(features), task, source)
    columns = tuple(
        Column(n, kinds[n], "float64" if kinds[n] == "numeric" else "object", categories.get(n, ()))
        for n in features
    )
    schema = Schema(columns, target, resolved, classes)
    h = hashlib.sha256(footer.encode())
    h.update(pd.util.hash_pandas_object(y, index=False).to_numpy().tobytes())
    return Dataset(pd.DataFrame(index=pd.RangeIndex(len(y))), y, resolved, schema, source, h.hexdigest())


def _footer_digest(pf: Any) -> str:
    """Names, row counts, sizes and column statistics of every row group: the table's identity."""
    meta = pf.metadata
    h = hashlib.sha256(str(pf.schema_arrow).encode())
    for i in range(meta.num_row_groups):
        group = meta.row_group(i)
        h.update(f"{group.num_rows}:{group.total_byte_size}".encode())
        for j in range(group.num_columns):
            stats = group.column(j).statistics
            h.update(str(stats.to_dict() if stats is not None else None).encode())
    return h.hexdigest()


def held_out_frames(data: Prepared, chunk_rows: int = 100_000) -> Iterator[pd.DataFrame]:
    """The test rows of a partitioned source, read chunk by chunk in order (features only)."""
    from accord.data.chunks import plan

    if data.test_rows is None:
        raise RuntimeError("the prepared data does not record its test rows")
    test = np.zeros(len(data.y_train) + len(data.y_test), dtype=bool)
    test[data.test_rows] = True
    for i, chunk in enumerate(plan(data.source, chunk_rows).chunks):
        mask = test[i * chunk_rows : i * chunk_rows + chunk.rows]
        if mask.any():
            yield data.schema.conform(chunk.read().loc[mask].reset_index(drop=True))

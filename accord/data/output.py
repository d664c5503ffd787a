"""Predictions as a table: score a chunk, write the output whole, read its receipt.

Predictions are written to a local temporary file in chunk order, then put at the
output URL in one step: a local rename or a single object PUT, so no reader ever sees
a partial output.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import json
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from accord.data.chunks import Plan, csv_chunks, features
from accord.data.tables import (
    table_format,
)
from accord.errors import DataError

PROBA_PREFIX = "proba_"
PREDICTION = "prediction"
METADATA_KEY = b"accord"


def score(ensemble: Any, frame: pd.DataFrame, keep: Sequence[str] = ()) -> pd.DataFrame:
    """Predictions for one chunk: kept columns, ``prediction`` and ``proba_<class>`` columns.

    Args:
        ensemble: A loaded `accord.ensembling.ensemble.Ensemble`.
        frame: The chunk (its schema is enforced by the ensemble).
        keep: Input columns copied to the output unchanged (e.g. an id).
    """
    X = features(frame, ensemble.schema, keep)
    out = pd.DataFrame({c: frame[c].to_numpy() for c in keep})
    if ensemble.task == "classification":
        proba = ensemble.predict_proba(X)
        classes = ensemble.classes_
        out[PREDICTION] = classes[np.argmax(proba, axis=1)]
        for j, c in enumerate(classes):
            out[f"{PROBA_PREFIX}{c}"] = proba[:, j]
    else:
        out[PREDICTION] = ensemble.predict(X)
    return out


def score_small(
    ensemble: Any, p: Plan, keep: Sequence[str], output: str, metadata: dict[str, Any]
) -> dict[str, Any] | None:
    """Score an input of one chunk at most in this process and write it whole at `output`.

    Why: for a chunk or less, starting a cluster costs more than the scoring.

    Args:
        ensemble: A loaded `accord.ensembling.ensemble.Ensemble`, the input checked against it.
        p: The input's plan (`accord.data.chunks.plan`).
        keep: Input columns copied to the output.
        output: Where the predictions go.
        metadata: What the output records (`OutputWriter`).

    Returns:
        What `OutputWriter.commit` returns; None, with nothing written, when the input has
        more than one chunk (a CSV is read as far as its second chunk to tell; Parquet's
        chunks are counted from its metadata, none read).

    Raises:
        DataError: the input has no rows, or a chunk cannot be scored.
    """
    if p.format == "parquet":  # its chunks are known from the files' metadata, unread
        if len(p.chunks) > 1:
            return None
        frames = [c.read() for c in p.chunks]
    else:
        frames = list(itertools.islice(csv_chunks(p, ensemble.schema), 2))
        if len(frames) > 1:
            return None
    with OutputWriter(output, metadata) as out:
        for frame in frames:
            out.write(score(ensemble, frame, keep))
        return out.commit()


class OutputWriter:
    """Append chunks to a local temporary file, then publish it whole at `url`.

    Use as a context manager: `commit` puts the file; leaving the block without
    committing (an exception) removes the temporary file and writes nothing.
    """

    def __init__(self, url: str, metadata: dict[str, Any]) -> None:
        self.url = url
        self.format = table_format(url, "output", compressed=False)
        self.metadata = metadata
        self.rows = 0
        self._tmp = tempfile.TemporaryDirectory(prefix="accord-predict-")
        self._path = Path(self._tmp.name) / f"out.{self.format}"
        self._writer: Any = None

    def __enter__(self) -> OutputWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
        self._tmp.cleanup()

    def write(self, frame: pd.DataFrame) -> None:
        """Append one chunk (chunks must arrive in order and share columns)."""
        if self.format == "csv":
            frame.to_csv(self._path, mode="a", header=self.rows == 0, index=False)
        else:
            import pyarrow as pa
            import pyarrow.parquet as pq

            table = pa.Table.from_pandas(frame, preserve_index=False)
            if self._writer is None:
                meta = dict(table.schema.metadata or {})
                meta[METADATA_KEY] = json.dumps(self.metadata, sort_keys=True).encode()
                self._writer = pq.ParquetWriter(self._path, table.schema.with_metadata(meta))
            self._writer.write_table(table)
        self.rows += len(frame)

    def close(self) -> None:
        """Finish the local file."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def commit(self) -> dict[str, Any]:
        """Put the finished file at the output URL in one step; return rows, size and sha256."""
        import fsspec

        from accord.registry.store import put_whole

        self.close()
        if self.rows == 0:
            raise DataError("no rows were scored; nothing to write.")
        data = self._path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        fs, path = fsspec.core.url_to_fs(self.url)
        put_whole(fs, self._path, path)
        return {"rows": self.rows, "size": len(data), "sha256": digest}


def receipt(model_ref: str, input_url: str, output_url: str, written: dict[str, Any]) -> dict[str, Any]:
    """What a batch run records: which model version scored which input into which output."""
    return {
        "model": model_ref,
        "input": input_url,
        "output": output_url,
        "scored_at": dt.datetime.now(dt.UTC).isoformat(),
        **written,
    }


def read_output_metadata(url: str) -> dict[str, Any]:
    """The accord metadata embedded in a Parquet output (model reference and version)."""
    import fsspec
    import pyarrow.parquet as pq

    with fsspec.open(url, "rb") as f:
        meta = pq.ParquetFile(f).schema_arrow.metadata or {}
    raw = meta.get(METADATA_KEY)
    return json.loads(raw) if raw else {}

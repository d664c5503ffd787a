"""Batch prediction: score a table with a published ensemble across the Dask cluster.

Run it with ``accord predict --model REF --input URL --output URL`` or
``python -m flows.predict ...``.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from accord.data.chunks import check_input, csv_chunks, plan
from accord.data.output import OutputWriter, receipt
from accord.data.tables import table_format
from accord.ensembling.ensemble import load
from accord.errors import ConfigError
from runtime.local_workers import start_ahead
from runtime.runner import task_runner_for
from tasks.ensemble import artifact_key
from tasks.predict import score_chunk, score_frame


@dataclass(frozen=True)
class PredictOptions:
    """Cluster options of a batch run."""

    workers: int
    dask_address: str | None


@flow(name="batch-predict", log_prints=True, validate_parameters=True)
def batch_predict(
    model: str,
    input: str,
    output: str,
    keep: list[str] | None = None,
    chunk_rows: int = 50_000,
    workers: int = 2,
    dask_address: str | None = None,
) -> dict[str, Any]:
    """Score a table with a published ensemble and write the predictions whole.

    Args:
        model: Model reference: <store>/<name>, <store>/<name>:<version> or <store>/<name>@<alias>.
        input: Table to score: a Parquet or CSV file at any fsspec URL.
        output: Where predictions go: a .parquet or .csv URL, written in one step.
        keep: Input columns copied unchanged into the output (e.g. an id column).
        chunk_rows: Rows per scoring task.
        workers: Worker processes of the local Dask cluster.
        dask_address: Address of an existing Dask scheduler; empty starts a LocalCluster.

    Returns:
        ``{"model", "input", "output", "rows", "size", "sha256", "scored_at"}``; ``model`` is
        the pinned reference of the version that scored the table.
    """
    logger = get_run_logger()
    keep = list(keep or [])
    table_format(output, "output", compressed=False)
    if workers < 1:
        raise ConfigError(f"workers must be at least 1; found {workers}.")
    start_ahead(dask_address)  # the local workers' fork server imports while the model loads
    ensemble = load(model, weighted_only=True)  # verified here once, before any cluster starts
    pinned = str(ensemble.manifest["ref"])
    p = plan(input, chunk_rows)
    check_input(p, ensemble.schema, keep)  # the whole input, before the first chunk is scored
    logger.info("scoring %s with %s in chunks of %d rows", input, pinned, chunk_rows)
    metadata = {"model": pinned, "input": input}
    with (
        task_runner_for(PredictOptions(workers, dask_address)) as runner,
        OutputWriter(output, metadata) as out,
    ):
        if p.format == "parquet":
            futures = [
                runner.submit(score_chunk, {"model": pinned, "chunk": c, "keep": keep}) for c in p.chunks
            ]
        else:
            futures = [
                runner.submit(score_frame, {"model": pinned, "frame": frame, "index": i, "keep": keep})
                for i, frame in enumerate(csv_chunks(p, ensemble.schema))
            ]
        for future in futures:  # in input order
            out.write(future.result())
        written = out.commit()
    result = receipt(pinned, input, output, written)
    create_markdown_artifact(
        f"## accord batch prediction\n\n- model: `{pinned}`\n- input: `{input}`\n- output: `{output}`\n"
        f"- rows: {written['rows']}\n- sha256: `{written['sha256']}`\n",
        key=f"{artifact_key(ensemble.manifest.get('name', 'model'))}-batch-predict",
        description="Batch prediction summary",
    )
    logger.info("wrote %d predictions to %s (model %s)", written["rows"], output, pinned)
    return result


if __name__ == "__main__":
    from deployments.cli import console

    console(["predict", *sys.argv[1:]])

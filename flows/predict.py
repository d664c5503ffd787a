"""Batch prediction: score a table with a published ensemble across the Dask cluster.

Run it with ``accord predict --model REF --input URL --output URL`` or
``python -m flows.predict --model REF --input URL --output URL``.
"""

from __future__ import annotations

import sys
from typing import Any

from prefect import flow, get_run_logger

from accord.config import PredictConfig
from accord.data.chunks import check_input, csv_chunks, plan
from accord.data.output import OutputWriter, receipt, score_small
from accord.data.tables import table_format
from accord.ensembling.ensemble import load
from accord.errors import ConfigError
from runtime.entry import run_from_command_line
from runtime.runner import task_runner_for
from tasks.predict import batch_artifact, score_chunk, score_frame


@flow(name="batch-predict", log_prints=True, validate_parameters=True)
def batch_predict(config: PredictConfig) -> dict[str, Any]:
    """Score a table with a published ensemble and write the predictions whole.

    An input of one chunk at most (``chunk_rows``) is scored in this process; a larger one
    chunk by chunk across the Dask cluster.

    Returns:
        ``{"model", "input", "output", "rows", "size", "sha256", "scored_at"}``; ``model`` is
        the pinned reference of the version that scored the table.
    """
    logger = get_run_logger()
    table_format(config.output, "output", compressed=False)
    if config.workers < 1:
        raise ConfigError(f"workers must be at least 1; found {config.workers}.")
    ensemble = load(config.model, weighted_only=True)  # verified here once, before any cluster starts
    pinned, keep = str(ensemble.manifest["ref"]), config.keep
    p = plan(config.input, config.chunk_rows)
    check_input(p, ensemble.schema, keep)  # the whole input, before the first chunk is scored
    metadata = {"model": pinned, "input": config.input}
    written = score_small(ensemble, p, keep, config.output, metadata)
    if written is not None:
        logger.info("scored %s with %s in this process (one chunk)", config.input, pinned)
    else:
        logger.info("scoring %s with %s in chunks of %d rows", config.input, pinned, config.chunk_rows)
        with task_runner_for(config) as runner, OutputWriter(config.output, metadata) as out:
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
    batch_artifact(ensemble.manifest.get("name", "model"), pinned, config.input, config.output, written)
    logger.info("wrote %d predictions to %s (model %s)", written["rows"], config.output, pinned)
    return receipt(pinned, config.input, config.output, written)


if __name__ == "__main__":
    run_from_command_line(batch_predict, PredictConfig, sys.argv[1:])

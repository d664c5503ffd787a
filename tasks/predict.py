"""Tasks that score chunks of a table with a published ensemble; the work lives in `accord.data`."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import pandas as pd
from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from accord.data.chunks import Chunk
from accord.data.output import score
from accord.ensembling.ensemble import Ensemble, load
from tasks.ensemble import artifact_key
from tasks.training import log_placement


@functools.lru_cache(maxsize=4)
def _cached(pinned_ref: str) -> Ensemble:
    """Each worker process loads (and verifies) a pinned version once; versions never change."""
    return load(pinned_ref, weighted_only=True)  # members at weight 0 are never predicted


@task(
    name="score-chunk", task_run_name="score-chunk-{chunk.index}", cache_policy=NO_CACHE, persist_result=False
)
def score_chunk(model: str, chunk: Chunk, keep: Sequence[str]) -> pd.DataFrame:
    """Read one Parquet chunk on this worker and score it with the pinned model version."""
    log_placement(f"score chunk {chunk.index} ({chunk.rows} rows)")
    return score(_cached(model), chunk.read(), keep)


@task(name="score-frame", task_run_name="score-frame-{index}", cache_policy=NO_CACHE, persist_result=False)
def score_frame(model: str, frame: pd.DataFrame, index: int, keep: Sequence[str]) -> pd.DataFrame:
    """Score one chunk read by the flow (CSV input) with the pinned model version."""
    log_placement(f"score frame {index} ({len(frame)} rows)")
    return score(_cached(model), frame, keep)


def batch_artifact(name: str, pinned: str, input_url: str, output: str, written: dict[str, Any]) -> None:
    """Show a batch run's model, input, output, rows and checksum as a Prefect artifact of the run."""
    create_markdown_artifact(
        f"## accord batch prediction\n\n- model: `{pinned}`\n- input: `{input_url}`\n- output: `{output}`\n"
        f"- rows: {written['rows']}\n- sha256: `{written['sha256']}`\n",
        key=f"{artifact_key(name)}-batch-predict",
        description="Batch prediction summary",
    )

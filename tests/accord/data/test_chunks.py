"""Tables planned in chunks: every row once, across Parquet row groups."""

from __future__ import annotations

import pandas as pd

from accord.data.chunks import plan


def test_plan_covers_every_row_once_across_row_groups(table):
    frame, path = table
    p = plan(path.as_uri(), chunk_rows=130)  # chunks straddle the 100-row groups
    assert p.total_rows == len(frame) and [c.rows for c in p.chunks] == [130, 130, 130, 60]
    assert p.chunks[1].row_groups == (1, 2) and p.chunks[1].start == 30
    together = pd.concat([c.read() for c in p.chunks], ignore_index=True)
    pd.testing.assert_frame_equal(together, frame.reset_index(drop=True))

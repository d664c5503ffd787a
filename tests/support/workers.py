"""What a Dask worker reports about itself (threads, collector, processes), for the runtime tests."""

from __future__ import annotations


def collector_state() -> dict[str, object]:
    import gc

    return {"enabled": gc.isenabled(), "frozen": gc.get_freeze_count()}

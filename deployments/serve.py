"""Embedded mode: serve every deployment from one process, so schedules fire with no work pool.

``accord serve`` or ``python -m deployments.serve``. Uses ``$PREFECT_API_URL`` when set, else
the warm stack's server and workers (`runtime.warm`) when one is up; otherwise starts a
local Prefect server for as long as it serves.
"""

from __future__ import annotations

import signal
import sys
from types import FrameType


def _interrupt(signum: int, frame: FrameType | None) -> None:
    """Ctrl-C: raise `KeyboardInterrupt` in the main thread, as Python's default handler does.

    Installed whatever SIGINT did before: a process started as a background job of a
    non-interactive shell (``accord serve &`` in a script) inherits SIGINT *ignored*, and
    ``asyncio.run`` then leaves it ignored, so Prefect's runner served on through any number
    of Ctrl-C. With this handler (asyncio keeps a handler that is not Python's default),
    Prefect's `serve` gets the `KeyboardInterrupt`, pauses the schedules and stops.
    """
    raise KeyboardInterrupt


def serve_all() -> None:
    """Register the deployments and run their flow runs until interrupted."""
    from runtime.warm import prefect_api

    with prefect_api() as url:
        from prefect import serve

        from deployments.definitions import runner_deployments

        print(f"accord: serving deployments against {url} (Ctrl-C stops)", file=sys.stderr)
        previous = signal.signal(signal.SIGINT, _interrupt)
        try:
            serve(*runner_deployments(), print_starting_message=True)
        finally:
            signal.signal(signal.SIGINT, previous)


if __name__ == "__main__":
    serve_all()

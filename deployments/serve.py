"""Embedded mode: serve every deployment from one process, so schedules fire with no work pool.

``accord serve`` or ``python -m deployments.serve``. Uses ``$PREFECT_API_URL`` when set;
otherwise starts a local Prefect server for as long as it serves.
"""

from __future__ import annotations

import sys


def serve_all() -> None:
    """Register the deployments and run their flow runs until interrupted."""
    from flows.server import prefect_api

    with prefect_api() as url:
        from prefect import serve

        from deployments.definitions import runner_deployments

        print(f"accord: serving deployments against {url} (Ctrl-C stops)", file=sys.stderr)
        serve(*runner_deployments(), print_starting_message=True)


if __name__ == "__main__":
    serve_all()

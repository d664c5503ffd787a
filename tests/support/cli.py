"""The ``accord`` console script as a subprocess, as scripts and schedulers run it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ACCORD = str(Path(sys.executable).parent / "accord")


def run_cli(
    *args: str, timeout: float = 600, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``accord ARGS`` to completion; stdout and stderr captured as text."""
    return subprocess.run(
        [ACCORD, *args], capture_output=True, text=True, timeout=timeout, env=env or os.environ.copy()
    )

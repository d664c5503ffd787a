"""Debian's Chromium for the tests that drive a real browser (the Prefect UI, a version's report).

Playwright's Python package drives it with ``executable_path``; no browser is downloaded from the web.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def chromium() -> str:
    """Debian's Chromium, installed from the package registry when it is missing and we may."""
    found = shutil.which("chromium")
    if found:
        return found
    apt = shutil.which("apt-get")
    if not apt or os.geteuid() != 0:
        pytest.skip("Chromium is not installed and cannot be: needs root and apt-get (Debian's 'chromium').")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = [apt, "install", "-y", "--no-install-recommends", "chromium"]
    if subprocess.run(install, env=env, capture_output=True, timeout=900).returncode != 0:
        subprocess.run([apt, "update"], env=env, capture_output=True, timeout=600)
        done = subprocess.run(install, env=env, capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            pytest.skip(f"Chromium could not be installed from Debian's packages: {done.stderr[-500:]}")
    found = shutil.which("chromium")
    if not found:
        pytest.skip("Debian's chromium package installed no 'chromium' executable.")
    return found

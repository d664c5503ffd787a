"""What a non-editable install ships: every package directory is a regular package."""

from __future__ import annotations

from setuptools import find_packages

from tests.support import ROOT


def test_every_source_directory_is_a_package_that_setuptools_finds():
    found = set(find_packages(str(ROOT), include=["accord*", "runtime*", "tasks*", "flows*", "deployments*"]))
    for top in ("accord", "runtime", "tasks", "flows", "deployments"):
        for directory in [ROOT / top, *(p for p in (ROOT / top).rglob("*") if p.is_dir())]:
            if directory.name == "__pycache__" or not any(directory.glob("*.py")):
                continue
            dotted = ".".join(directory.relative_to(ROOT).parts)
            assert (directory / "__init__.py").exists(), f"{dotted} has modules but no __init__.py"
            assert dotted in found, f"{dotted} would be missing from the wheel"

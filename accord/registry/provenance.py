"""What produced a result: accord's version and source, and the libraries it ran with.

Published versions record it (their lineage), and it is part of every key that lets a run
reuse earlier work (the result cache, a rerun's published version): a result trained by
other code or other libraries is never taken for this run's.
"""

from __future__ import annotations

import functools
import hashlib
import json
import platform
from importlib import metadata
from pathlib import Path

from accord.version import __version__

LIBRARIES = ("accord", "scikit-learn", "xgboost", "keras", "tensorflow", "skops", "numpy", "scipy", "pandas")
# Distributions that install a library under another name: TensorFlow's CPU-only build.
ALSO_DISTRIBUTED_AS = {"tensorflow": ("tensorflow-cpu",)}
PACKAGE = Path(__file__).resolve().parents[1]  # the accord package


def library_versions() -> dict[str, str | None]:
    """Installed versions of Python and of the libraries that train and load members."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    for lib in LIBRARIES:
        out[lib] = None
        for name in (lib, *ALSO_DISTRIBUTED_AS.get(lib, ())):
            try:
                out[lib] = metadata.version(name)
                break
            except metadata.PackageNotFoundError:
                continue
    return out


def code_version() -> str:
    """Accord's release version, as installed; `source_digest` tells the exact source apart."""
    return __version__


@functools.cache
def source_digest() -> str:
    """SHA-256 over the ``accord`` package's Python sources (relative paths and bytes).

    It changes with any edit, committed or not, where `code_version` changes only with a
    release; it is the same wherever the package is installed.
    """
    h = hashlib.sha256()
    for path in sorted(PACKAGE.rglob("*.py")):
        h.update(path.relative_to(PACKAGE).as_posix().encode() + b"\0")
        h.update(path.read_bytes() + b"\0")
    return h.hexdigest()


@functools.cache
def environment_digest() -> str:
    """SHA-256 of accord's version, its source (`source_digest`) and `library_versions`."""
    document = {"accord": __version__, "source": source_digest(), "libraries": library_versions()}
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()

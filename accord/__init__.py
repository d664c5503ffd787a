"""accord: train many models in parallel, weight them, publish them safely.

Loading a published ensemble needs only this package and its ML libraries:

    >>> import accord
    >>> model = accord.load("file:///srv/registry/demo")          # doctest: +SKIP
    >>> model.predict(table)                                       # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.3.0"

if TYPE_CHECKING:
    from accord.ensembling.ensemble import Ensemble


def load(ref: str, storage_options: dict[str, Any] | None = None, *, weighted_only: bool = False) -> Ensemble:
    """Load a published ensemble by reference; see `accord.ensembling.ensemble.load`."""
    from accord.ensembling.ensemble import load as _load

    return _load(ref, storage_options, weighted_only=weighted_only)


__all__ = ["__version__", "load"]

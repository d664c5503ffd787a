"""accord: train many models in parallel, weight them, publish them safely.

Loading a published ensemble needs only this package and its ML libraries:

    >>> import accord
    >>> model = accord.load("file:///srv/registry/demo")          # doctest: +SKIP
    >>> model.predict(table)                                       # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from accord.version import __version__

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from accord.ensembling.ensemble import Ensemble


def load(
    ref: str,
    storage_options: dict[str, Any] | None = None,
    *,
    weighted_only: bool = False,
    trusted_keys: str | Path | Sequence[str | Path] | None = None,
) -> Ensemble:
    """Load a published ensemble by reference; see `accord.ensembling.ensemble.load`."""
    from accord.ensembling.ensemble import load as _load

    return _load(ref, storage_options, weighted_only=weighted_only, trusted_keys=trusted_keys)


def __getattr__(name: str) -> Any:
    """`AccordClassifier` and `AccordRegressor` (`deployments.estimators`), imported when first used.

    They train through the Prefect flow; importing them only when asked keeps ``import accord``
    and `load` free of Prefect and Dask.
    """
    if name in ("AccordClassifier", "AccordRegressor"):
        from deployments import estimators

        return getattr(estimators, name)
    raise AttributeError(f"module 'accord' has no attribute {name!r}")


__all__ = ["AccordClassifier", "AccordRegressor", "__version__", "load"]

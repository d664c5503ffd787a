"""accord's environment variables, read in one place.

``ACCORD_STORE``, ``ACCORD_CACHE_DAYS``, ``ACCORD_THREADS_PER_TASK`` and ``ACCORD_DASK_ADDRESS``.

Read when asked (`setting`), never cached, so a variable set after import counts.
"""

from __future__ import annotations

import math
import os
from typing import Any

from pydantic import Field, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from accord.errors import ConfigError

PREFIX = "ACCORD_"
WHAT = {
    "cache_days": "a number of days >= 0 (how long cached member results are kept; default 7)",
    "threads_per_task": "a whole number >= 1 (library threads one member task may use; default 1)",
}


class Settings(BaseSettings):
    """The ``ACCORD_*`` variables of this process."""

    model_config = SettingsConfigDict(env_prefix=PREFIX, extra="ignore")

    store: str | None = Field(default=None, description="Default store URL.")
    cache_days: float = Field(default=7.0, ge=0, description="Days cached member results are kept.")
    threads_per_task: int = Field(default=1, ge=1, description="Library threads per member task.")
    dask_address: str | None = Field(default=None, description="Dask scheduler every run uses.")

    @field_validator("store", "dask_address", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("cache_days", "threads_per_task", mode="before")
    @classmethod
    def _blank_is_default(cls, value: object, info: ValidationInfo) -> object:
        if isinstance(value, str) and not value.strip():
            return cls.model_fields[str(info.field_name)].default
        return value

    @field_validator("cache_days")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("not finite")
        return value


def setting(name: str) -> Any:
    """The value of ``ACCORD_<NAME>`` (a field of `Settings`) now: its default when unset or blank.

    Another variable holding a bad value does not stop this one from being read.

    Raises:
        ConfigError: this variable holds a value of the wrong kind; the message names it, says
            what it must be, what it holds, and how to fix it.
    """
    try:
        return getattr(Settings(), name)
    except ValidationError as e:
        bad = {str(err["loc"][0]) for err in e.errors()}
        if name not in bad:  # values given to the model outrank the environment
            return getattr(Settings(**{f: Settings.model_fields[f].default for f in bad}), name)
    variable = PREFIX + name.upper()
    raise ConfigError(
        f"{variable} must be {WHAT.get(name, 'valid')}; found {os.environ.get(variable)!r}. "
        f"Set it to a valid value, or unset it."
    )

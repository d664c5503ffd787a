"""accord's environment variables, read in one place.

``ACCORD_STORE``, ``ACCORD_CACHE_DAYS``, ``ACCORD_THREADS_PER_TASK`` and ``ACCORD_DASK_ADDRESS``.

Read when asked (`settings()`), never cached, so a variable set after import counts.
"""

from __future__ import annotations

import math

from pydantic import Field, ValidationError, field_validator
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
    def _blank_is_default(cls, value: object, info: object) -> object:
        if isinstance(value, str) and not value.strip():
            return cls.model_fields[info.field_name].default  # type: ignore[attr-defined]
        return value

    @field_validator("cache_days")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("not finite")
        return value


def settings() -> Settings:
    """The ``ACCORD_*`` variables as they are now.

    Raises:
        ConfigError: a variable holds a value of the wrong kind; the message names it, says what
            it must be, what it holds, and how to fix it.
    """
    try:
        return Settings()
    except ValidationError as e:
        import os

        field = str(e.errors()[0]["loc"][0])
        name = PREFIX + field.upper()
        raise ConfigError(
            f"{name} must be {WHAT.get(field, 'valid')}; found {os.environ.get(name)!r}. "
            f"Set it to a valid value, or unset it."
        ) from None

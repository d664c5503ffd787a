"""Presets: ordered portfolios of member configurations, read from ``portfolio.yaml`` beside this module.

Why: one default configuration per kind leaves quality on the table; several per kind,
chosen by how much each adds to an ensemble across many tables, is where AutoGluon's
quality comes from. The file is data, written by ``python -m bench.portfolio`` from
out-of-fold predictions on the bench suite; it is not edited by hand.

Each task has one order of configurations, best addition first. A preset is a prefix of
that order (``fast`` the first few, ``best`` all of them); under a time limit a run
starts them in that order, as many as fit (`accord.training.budget`).
"""

from __future__ import annotations

import functools
from importlib import resources
from typing import Any, get_args

import yaml

from accord.errors import ConfigError
from accord.types import Preset, Task

FILE = "portfolio.yaml"


@functools.cache
def _document() -> dict[str, Any]:
    text = resources.files("accord").joinpath(FILE).read_text()
    document: dict[str, Any] = yaml.safe_load(text)
    return document


def preset_members(preset: Preset, task: Task) -> list[dict[str, Any]]:
    """The member configurations of `preset` for `task`, in portfolio order.

    Returns:
        ``[{"name", "kind", "params"}, ...]``, ready for `accord.config.MemberSpec`.

    Raises:
        ConfigError: the preset is unknown.
    """
    if preset not in get_args(Preset):
        raise ConfigError(f"preset: unknown preset {preset!r}; expected one of {list(get_args(Preset))}.")
    document = _document()
    order = document["order"][task]
    count = int(document["presets"][preset])
    return [
        {"name": c["name"], "kind": c["kind"], "params": dict(c.get("params") or {})} for c in order[:count]
    ]

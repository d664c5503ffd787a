"""Prepare a run: load, validate and split its data, and check its members and method.

`prepare` does every check that bad input can fail, before any training. `precheck`
does the same where a run is about to start (the CLI, before its Prefect server and
cluster start) and hands its result to the run's own `prepare`, so the data is read and
checked once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from accord.config import MemberSpec, TrainConfig
from accord.data.chunks import absolute
from accord.data.columns import DATE_PARTS
from accord.data.dataset import load_dataset
from accord.data.parquet import describe_parquet
from accord.data.schema import Schema
from accord.data.split import Prepared, split
from accord.data.tables import file_stamp
from accord.ensembling.weights import check_method
from accord.errors import ConfigError
from accord.members import check_member_specs, member_class
from accord.registry.signing import trusted_keys
from accord.training.cluster import is_distributed, is_parquet
from accord.training.privacy import account

_prechecked: tuple[tuple[str, ...], Prepared] | None = None
"""The last `precheck`'s result, until a `prepare` of the same run takes it."""


def _run_key(config: TrainConfig) -> tuple[str, ...] | None:
    """The run's options and its data file's `file_stamp`; None when the source is a file without one."""
    options = config.model_dump_json()
    if config.data.startswith(("sklearn:", "synthetic:")):
        return (options,)
    stamp = file_stamp(config.data)
    return None if stamp is None else (options, *stamp)


def precheck(config: TrainConfig) -> Prepared:
    """`prepare` a run now, and keep the result for the run's own `prepare` (if its data is unchanged).

    Raises:
        DataError: the data cannot be trained on.
        ConfigError: a member kind, parameter or the method does not fit the task.
    """
    global _prechecked
    prepared = _prepare(config)
    key = _run_key(config)
    _prechecked = None if key is None else (key, prepared)
    return prepared


def prepare(config: TrainConfig) -> Prepared:
    """Load, validate and split the data of a run, and check its members and method.

    A `precheck` of the same options on the same unchanged data file hands over its
    result instead.

    Raises:
        DataError: the data cannot be trained on.
        ConfigError: a member kind, parameter or the method does not fit the task.
    """
    global _prechecked
    held, _prechecked = _prechecked, None
    if held is not None and held[0] == _run_key(config):
        return held[1]
    return _prepare(config)


def _prepare(config: TrainConfig) -> Prepared:
    partitioned = is_partitioned_run(config)
    if partitioned:
        if config.ignore_columns:
            raise ConfigError(
                "ignore_columns: a partitioned run (every member trains across the cluster on Parquet) "
                "reads the features where they are; drop the columns from the files instead."
            )
        dataset = describe_parquet(absolute(config.data), config.target, config.task)  # workers read it
    else:
        dataset = load_dataset(config.data, config.target, config.task, config.ignore_columns)
    check_method(config.method, dataset.task)
    members = config.members_for(dataset.task)
    check_member_specs(((s.label, s.kind, s.params) for s in members), dataset.task)
    bag = config.final == "bag"
    if bag:
        spanning = [s.label for s in members if is_distributed(s.kind)]
        if spanning:
            raise ConfigError(
                f"final: 'bag' keeps every fold model, but member(s) {spanning} train across the "
                "cluster and keep none; use final: refit, or leave those members out."
            )
    trusted = trusted_keys(config.trusted_signers) if config.trusted_signers else None
    resolved = tuple(
        spec.model_copy(update={"params": _resolved(spec, dataset.schema, trusted)}) for spec in members
    )
    resolved, privacy = account(resolved, config.folds, bag, config.privacy_budget)  # before any training
    prepared = split(dataset, config.folds, config.test_size, config.seed)
    return replace(prepared, members=resolved, partitioned=partitioned, bag=bag, privacy=privacy)


def column_notes(schema: Schema) -> list[str]:
    """One line per column the run left out (and why) or read as a date."""
    notes = [f"column {name!r} left out: {why}" for name, why in schema.dropped.items()]
    notes += [
        f"column {name!r} read as dates: {', '.join(DATE_PARTS)} (as {name}.<part>)" for name in schema.dates
    ]
    return notes


def is_partitioned_run(config: TrainConfig) -> bool:
    """Whether no process needs the whole feature table.

    True when every member trains across the cluster and the source is Parquet, which
    the workers read in partitions.
    """
    return (
        bool(config.members)
        and all(is_distributed(s.kind) for s in config.members)
        and is_parquet(config.data)
    )


def _resolved(spec: MemberSpec, schema: Schema, trusted: Mapping[str, bytes] | None) -> dict[str, Any]:
    """A member's parameters with its references resolved (`Member.resolve_params`)."""
    return member_class(spec.kind).resolve_params(spec.label, spec.params, schema, trusted)

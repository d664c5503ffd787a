"""Prepare a run: load, validate and split its data, and check its members and method.

`prepare` does every check that bad input can fail, before any training.
"""

from __future__ import annotations

from dataclasses import replace

from accord.config import TrainConfig
from accord.data.dataset import load_dataset
from accord.data.split import Prepared, split
from accord.ensembling.weights import check_method
from accord.members import check_member_specs, member_class
from accord.training.cluster import is_distributed, is_parquet


def prepare(config: TrainConfig) -> Prepared:
    """Load, validate and split the data of a run, and check its members and method.

    Raises:
        DataError: the data cannot be trained on.
        ConfigError: a member kind, parameter or the method does not fit the task.
    """
    partitioned = is_partitioned_run(config)
    if partitioned:
        from accord.data.parquet import describe_parquet

        dataset = describe_parquet(config.data, config.target, config.task)
    else:
        dataset = load_dataset(config.data, config.target, config.task)
    check_method(config.method, dataset.task)
    check_member_specs(((s.label, s.kind, s.params) for s in config.members), dataset.task)
    resolved = tuple(
        spec.model_copy(
            update={"params": member_class(spec.kind).resolve_params(spec.label, spec.params, dataset.schema)}
        )
        for spec in config.members
    )
    prepared = split(dataset, config.folds, config.test_size, config.seed)
    return replace(prepared, members=resolved, partitioned=partitioned)


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

"""Pretrain a source model and publish it as an ordinary version, ready to be a parent.

A Keras network (``keras_mlp`` for tables, ``keras_cnn`` for images such as
``sklearn:digits``) and/or an XGBoost booster, trained on any source accord reads.
Run it with ``accord pretrain ...`` or ``python -m flows.pretrain``.
"""

from __future__ import annotations

import sys
from typing import Any, Literal

from prefect import flow
from pydantic import BaseModel, ConfigDict, Field

from accord.config import NAME_PATTERN, MemberSpec, TrainConfig, default_store
from accord.store.refs import DEFAULT_ALIAS
from flows.train import train_ensemble

SourceKind = Literal["keras_mlp", "keras_cnn", "xgboost"]


def _default_kinds() -> list[SourceKind]:
    return ["keras_mlp"]


class PretrainConfig(BaseModel):
    """A source model to pretrain: data, model kinds and where to publish."""

    model_config = ConfigDict(extra="forbid")

    data: str = Field(default="sklearn:digits", description="Source-task data (any accord data source).")
    target: str | None = Field(default=None, description="Target column (files only).")
    task: Literal["auto", "classification", "regression"] = Field(
        default="auto", description="Learning task."
    )
    kinds: list[SourceKind] = Field(
        default_factory=_default_kinds, min_length=1, description="Source models to train and publish."
    )
    params: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="Parameters per kind, e.g. {keras_cnn: {epochs: 40}}."
    )
    store: str = Field(default_factory=default_store, description="Where to publish (fsspec URL).")
    name: str = Field(default="source", pattern=NAME_PATTERN, description="Model name in the store.")
    alias: str = Field(
        default=DEFAULT_ALIAS, pattern=NAME_PATTERN, description="Alias set on the new version."
    )
    seed: int = Field(default=0, ge=0, description="Random seed.")
    workers: int = Field(default=2, ge=1, description="Local Dask worker processes.")
    dask_address: str | None = Field(default=None, description="Existing Dask scheduler address.")

    def to_train_config(self) -> TrainConfig:
        """The ordinary training run that pretraining is: each kind a member, two folds, equal weights."""
        members = [MemberSpec(kind=k, params=self.params.get(k, {})) for k in self.kinds]
        return TrainConfig(
            data=self.data,
            target=self.target,
            task=self.task,
            members=members,
            folds=2,
            method="equal",
            store=self.store,
            name=self.name,
            seed=self.seed,
            workers=self.workers,
            dask_address=self.dask_address,
            promote="always",
            alias=self.alias,
        )


@flow(name="pretrain", log_prints=True)
def pretrain(config: PretrainConfig) -> dict[str, Any]:
    """Train the source model(s) and publish them as one version; return the reference."""
    return train_ensemble(config.to_train_config())


if __name__ == "__main__":
    from deployments.cli import console

    console(["pretrain", *sys.argv[1:]])

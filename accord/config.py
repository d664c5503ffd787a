"""Typed configuration: the one parameter of the training flow.

`TrainConfig` is at once the Prefect UI's form, the CLI's options and the schema
of a config file (YAML or JSON). Every field has a description; choices are
`Literal`s so that forms render them as drop-downs.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from accord.errors import ConfigError, ModelReferenceError
from accord.portfolio import preset_members
from accord.registry.refs import DEFAULT_ALIAS, NAME_RE, check_alias, check_tags
from accord.settings import setting
from accord.types import Final, MemberKind, Method, Preset, PromotionPolicy, Task, TaskChoice

NAME_PATTERN = NAME_RE.pattern
M = TypeVar("M", bound=BaseModel)
DEMO_NAME = "demo"

DEFAULT_MEMBER_KINDS: tuple[MemberKind, ...] = (
    "logreg",
    "random_forest",
    "extra_trees",
    "hist_gb",
    "knn",
    "xgboost",
    "keras_mlp",
)


def default_store() -> str:
    """Return the default store: ``$ACCORD_STORE`` or a ``registry/`` folder in the working directory."""
    return setting("store") or (Path.cwd() / "registry").resolve().as_uri()


class MemberSpec(BaseModel):
    """One base model of the ensemble: a kind and its parameters (unfitted)."""

    model_config = ConfigDict(extra="forbid")

    kind: MemberKind = Field(description="Which model family this member is.")
    name: str | None = Field(
        default=None,
        pattern=NAME_PATTERN,
        description="Unique member name within the ensemble; defaults to the kind (suffixed when repeated).",
    )
    params: dict[str, Any] = Field(
        default_factory=dict,
        description="Parameters passed to the model (e.g. n_estimators); unknown ones are refused.",
    )

    @property
    def label(self) -> str:
        """The member's name, or its kind while it has none (before `TrainConfig` names it)."""
        return self.name or self.kind


def name_for_data(data: str) -> str:
    """The model name a run publishes under when none is given.

    A file's own name, made a valid name (``s3://b/House Prices.csv.gz``: ``house-prices``),
    so that a user's table is never published as the bundled demo; ``demo`` for bundled
    and synthetic data.

    Raises:
        ConfigError: nothing of the file's name is usable as a model name.
    """
    if data.startswith(("sklearn:", "synthetic:")):
        return DEMO_NAME
    stem = data.split("?")[0].rstrip("/").rsplit("/", 1)[-1].lower()
    for suffix in (".gz", ".bz2", ".zst", ".xz", ".csv", ".parquet", ".pq"):
        stem = stem.removesuffix(suffix)
    name = re.sub(r"\.{2,}", ".", re.sub(r"[^a-z0-9._-]+", "-", stem)).lstrip("._-")[:64].rstrip("._-")
    if not name:
        raise ConfigError(
            f"name: cannot derive a model name from the data file {data!r}; pass --name NAME "
            "(a-z, 0-9, '.', '_' or '-')."
        )
    return name


def _default_members() -> list[MemberSpec]:
    return [MemberSpec(kind=kind) for kind in DEFAULT_MEMBER_KINDS]


class PrivacyBudget(BaseModel):
    """The most a run may spend of its training rows' privacy, over every DP member and fit."""

    model_config = ConfigDict(extra="forbid")

    epsilon: float = Field(gt=0, description="Epsilon over every fit of every DP member.")
    delta: float = Field(gt=0, lt=1, description="Delta at which epsilon is counted, e.g. 1e-5.")


class AdaptOptions(BaseModel):
    """Adaptive scaling: Dask adds workers while tasks wait and retires them when idle."""

    model_config = ConfigDict(extra="forbid")

    minimum: int = Field(default=1, ge=0, le=1024, description="Fewest workers the cluster keeps.")
    maximum: int = Field(default=4, ge=1, le=1024, description="Most workers the cluster may start.")

    @model_validator(mode="after")
    def _ordered(self) -> AdaptOptions:
        if self.minimum > self.maximum:
            raise ValueError(f"adapt.minimum ({self.minimum}) must not exceed adapt.maximum ({self.maximum})")
        return self


def _alias(value: str) -> str:
    """`check_alias` for a pydantic validator (its refusal as a ValueError)."""
    try:
        return check_alias(value)
    except ModelReferenceError as e:
        raise ValueError(str(e)) from e


class TrainConfig(BaseModel):
    """Everything one training run needs: data, members, validation, weights, store and cluster."""

    model_config = ConfigDict(extra="forbid")

    data: str = Field(
        default="sklearn:breast_cancer",
        description=(
            "Data source: sklearn:<digits|breast_cancer|wine|iris|diabetes>, "
            "synthetic:<classification|regression>?n_rows=..&n_features=..&n_classes=..&noise=..&seed=.., "
            "or a CSV/Parquet file at any fsspec URL."
        ),
    )
    target: str | None = Field(
        default=None,
        description="Target column. Required for files; bundled and synthetic sources use 'target'.",
    )
    task: TaskChoice = Field(
        default="auto", description="Learning task; 'auto' infers it from the target column."
    )
    ignore_columns: list[str] = Field(
        default_factory=list,
        description="Feature columns to leave out. ID-like columns (a different value in every row) are "
        "left out too, and date columns become numbers (year, month, day, weekday, day of year, days "
        "since 1970); the schema records it, so loading and batch prediction do the same.",
    )
    members: list[MemberSpec] = Field(
        default_factory=_default_members,
        description="Base models trained in parallel; each yields out-of-fold predictions. "
        "Empty when a preset chooses them.",
    )
    preset: Preset | None = Field(
        default=None,
        description="Instead of members: a portfolio of member configurations, several per kind, in the "
        "order they add most (fast: a few cheap ones; default; best: all). Under a time limit, as many "
        "as fit, in that order.",
    )
    folds: int = Field(default=5, ge=2, le=20, description="Number of cross-validation folds (K).")
    time_limit: float | None = Field(
        default=None,
        ge=10,
        le=7 * 86400,
        description="Seconds the run may take from its start to its published version; empty: no limit. "
        "Members whose fits would not end in time are not started; fits still running at the limit "
        "are left out; both are listed. 10% (at least 5 s) is kept for weights and publishing.",
    )
    test_size: float = Field(
        default=0.2, gt=0.0, lt=0.9, description="Fraction of rows held out for the final test."
    )
    method: Method = Field(default="caruana", description="How ensemble weights are fitted.")
    final: Final = Field(
        default="refit",
        description="What each member predicts with: 'refit', one model refitted on every training row; "
        "'bag', the average of its K fold models (no refit), the same models whose out-of-fold "
        "predictions the weights were fitted on.",
    )
    ensemble_size: int = Field(
        default=25, ge=1, le=500, description="Greedy selection steps for the 'caruana' method."
    )
    store: str = Field(
        default_factory=default_store,
        description="Where to publish: an fsspec URL (file://, s3://, memory://).",
    )
    name: str | None = Field(
        default=None,
        pattern=NAME_PATTERN,
        description="Model name in the store. Left empty, it is the data file's name (house.csv: house), "
        "or 'demo' for bundled and synthetic data.",
    )
    seed: int = Field(default=0, ge=0, description="Seed for splits, folds and every member.")
    promote: PromotionPolicy = Field(
        default="if_better",
        description="When to move the alias to the new version: always, only if it beats the trivial "
        "baseline and the incumbent on this run's held-out data, or never.",
    )
    alias: str = Field(
        default=DEFAULT_ALIAS, pattern=NAME_PATTERN, description="The alias the promotion gate moves."
    )
    description: str | None = Field(
        default=None, max_length=10_000, description="What the model is, for its model card (README.md)."
    )
    tags: dict[str, str] = Field(
        default_factory=dict,
        description="key: value tags of the version, e.g. {team: risk}; `accord models list --tag` "
        "filters by them, `accord models tag` changes them later.",
    )
    license: str | None = Field(
        default=None,
        max_length=200,
        description="The license the model is published under (e.g. apache-2.0), for its model card.",
    )
    intended_use: str | None = Field(
        default=None, max_length=10_000, description="What the model is for and not for, for its model card."
    )
    trusted_signers: list[str] = Field(
        default_factory=list,
        description="Public keys (paths to accord.pub files, or PEM text) that the version of every "
        "published member and transfer parent must be signed by, checked before it is loaded; empty "
        "accepts unsigned parents.",
    )
    workers: int = Field(default=2, ge=1, le=256, description="Worker processes of the local Dask cluster.")
    dask_address: str | None = Field(
        default=None,
        description="Address of an existing Dask scheduler (tcp://host:8786); empty starts a LocalCluster.",
    )
    cluster_class: str | None = Field(
        default=None,
        description="A Dask cluster class to start instead of a LocalCluster, e.g. "
        "dask_kubernetes.operator.KubeCluster or dask_jobqueue.SLURMCluster.",
    )
    cluster_kwargs: dict[str, Any] = Field(
        default_factory=dict, description="Keyword arguments for cluster_class (image, cores, memory, ...)."
    )
    adapt: AdaptOptions | None = Field(
        default=None,
        description="Scale the cluster with the work between a minimum and a maximum of workers.",
    )
    privacy_budget: PrivacyBudget | None = Field(
        default=None,
        description="Refuse, before any training, a run whose DP members would together spend more than "
        "this (epsilon, delta), or that trains a member without DP.",
    )

    @model_validator(mode="after")
    def _name_from_data(self) -> TrainConfig:
        if self.name is None:
            self.name = name_for_data(self.data)
        return self

    @property
    def model_name(self) -> str:
        """The name the run publishes under (``name``, filled from the data when left empty)."""
        return self.name or name_for_data(self.data)

    @field_validator("name")
    @classmethod
    def _no_double_dots(cls, value: str | None) -> str | None:
        if value is not None and ".." in value:
            raise ValueError("a name may not contain '..'")
        return value

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: dict[str, str]) -> dict[str, str]:
        try:
            return check_tags(value)
        except ModelReferenceError as e:
            raise ValueError(str(e)) from e

    @field_validator("alias")
    @classmethod
    def _alias_not_a_version(cls, value: str) -> str:
        return _alias(value)

    @model_validator(mode="after")
    def _preset_or_members(self) -> TrainConfig:
        if self.preset is not None and self.members:
            raise ValueError(
                f"give members or a preset, not both (preset {self.preset!r} chooses the members); "
                "drop one of them"
            )
        if self.preset is None and not self.members:
            raise ValueError("members: give at least one member (e.g. [{kind: logreg}]), or a preset")
        return self

    @model_validator(mode="before")
    @classmethod
    def _a_preset_lists_no_members(cls, values: Any) -> Any:
        """With a preset and no members given, members are empty (not the defaults).

        So the config's dump (a flow's parameters, a manifest's lineage) validates again as it is.
        """
        if isinstance(values, dict) and values.get("preset") is not None and "members" not in values:
            return {**values, "members": []}
        return values

    def members_for(self, task: Task) -> list[MemberSpec]:
        """The run's members: the preset's configurations for `task` in portfolio order, or `members`."""
        if self.preset is None:
            return self.members
        return [MemberSpec.model_validate(m) for m in preset_members(self.preset, task)]

    @model_validator(mode="after")
    def _name_members(self) -> TrainConfig:
        seen: dict[str, int] = {}
        named: list[MemberSpec] = []
        for spec in self.members:
            base = spec.label
            count = seen.get(base, 0)
            seen[base] = count + 1
            name = base if count == 0 else f"{base}-{count + 1}"
            named.append(spec.model_copy(update={"name": name}))
        names = [s.label for s in named]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"member names must be unique; repeated: {duplicates}")
        self.members = named
        return self


def format_validation_error(error: ValidationError, what: str = "TrainConfig") -> str:
    """Turn a pydantic error into one readable message naming each bad field."""
    lines = [f"invalid {what}:"]
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"]) or "(root)"
        got = item.get("input")
        shown = repr(got) if not isinstance(got, dict | list) else json.dumps(got)[:120]
        lines.append(f"  - {where}: {item['msg']} (got {shown})")
    return "\n".join(lines)


def validated(model: type[M], values: dict[str, Any]) -> M:
    """Validate a mapping into `model`, raising `ConfigError` with one readable line per bad field."""
    try:
        return model.model_validate(values)
    except ValidationError as e:
        raise ConfigError(format_validation_error(e, model.__name__)) from e


def make_config(values: dict[str, Any]) -> TrainConfig:
    """Validate a mapping into a `TrainConfig` (see `validated`)."""
    return validated(TrainConfig, values)


def read_config_file(path: str) -> dict[str, Any]:
    """Read a YAML or JSON config file into a mapping (not yet validated)."""
    import fsspec

    try:
        with fsspec.open(path, "r") as f:
            text = f.read()
    except (OSError, ValueError) as e:
        raise ConfigError(f"cannot read config file {path!r}: {e}. Check the path.") from e
    try:
        loaded = yaml.safe_load(text) if not path.endswith(".json") else json.loads(text)
    except (yaml.YAMLError, json.JSONDecodeError) as e:
        raise ConfigError(f"config file {path!r} is not valid YAML/JSON: {e}") from e
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(
            f"config file {path!r} must hold a mapping of TrainConfig fields; found {type(loaded).__name__}."
        )
    return loaded


SourceKind = Literal["keras_mlp", "keras_cnn", "xgboost"]


def _default_kinds() -> list[SourceKind]:
    return ["keras_mlp"]


class PretrainConfig(BaseModel):
    """A source model to pretrain: data, model kinds and where to publish."""

    model_config = ConfigDict(extra="forbid")

    data: str = Field(default="sklearn:digits", description="Source-task data (any accord data source).")
    target: str | None = Field(default=None, description="Target column (files only).")
    task: TaskChoice = Field(default="auto", description="Learning task.")
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


class PredictConfig(BaseModel):
    """Parameters of the batch prediction flow (`flows.predict.batch_predict`)."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(
        description="Model reference: <store>/<name>, <store>/<name>:<version> or <store>/<name>@<alias>; "
        "a bare name means its production alias, else its newest version."
    )
    input: str = Field(description="Table to score: a Parquet or CSV file at any fsspec URL.")
    output: str = Field(description="Where predictions go: a .parquet or .csv URL, written in one step.")
    keep: list[str] = Field(
        default_factory=list,
        description="Input columns copied unchanged into the output (e.g. an id column).",
    )
    chunk_rows: int = Field(default=50_000, ge=1, description="Rows per scoring task.")
    workers: int = Field(default=2, description="Worker processes of the local Dask cluster.")
    dask_address: str | None = Field(
        default=None, description="Address of an existing Dask scheduler; empty starts a LocalCluster."
    )

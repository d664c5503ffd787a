"""The deployments, defined once: names, schedules, concurrency and parameter defaults.

`prefect.yaml` declares the same deployments for production (``prefect deploy`` to a
process work pool); tests check that both agree.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from accord.config import TrainConfig, default_store

TRAIN = "train-ensemble/nightly"
PRETRAIN = "pretrain/weekly"
PREDICT = "batch-predict/daily"

PREDICT_INPUT_ENV = "ACCORD_PREDICT_INPUT"
PREDICT_OUTPUT_ENV = "ACCORD_PREDICT_OUTPUT"


@dataclass(frozen=True)
class Definition:
    """One deployment: which flow, when, how many at once, and its default parameters."""

    flow: str  # the flow's name, e.g. "train-ensemble"
    name: str  # the deployment's name, e.g. "nightly"
    entrypoint: str  # path:function, as in prefect.yaml
    cron: str
    description: str
    parameters: dict[str, Any]
    schedule_active: bool = True
    concurrency_limit: int | None = None  # None: unlimited
    tags: tuple[str, ...] = field(default=("accord",))

    @property
    def full_name(self) -> str:
        """``<flow>/<deployment>``, as `prefect deployment run` takes it."""
        return f"{self.flow}/{self.name}"


def definitions() -> list[Definition]:
    """Every accord deployment with defaults for this environment (store from ``$ACCORD_STORE``)."""
    from flows.pretrain import PretrainConfig

    store = default_store()
    predict_input = os.environ.get(PREDICT_INPUT_ENV, "")
    predict_output = (
        os.environ.get(PREDICT_OUTPUT_ENV) or (Path.cwd() / "predictions" / "demo.parquet").as_uri()
    )
    return [
        Definition(
            flow="train-ensemble",
            name="nightly",
            entrypoint="flows/train.py:train_ensemble",
            cron="0 2 * * *",
            description="Retrain every night; the alias moves only if the new version is better.",
            parameters={"config": TrainConfig(store=store).model_dump(mode="json")},
            concurrency_limit=1,
        ),
        Definition(
            flow="pretrain",
            name="weekly",
            entrypoint="flows/pretrain.py:pretrain",
            cron="0 3 * * 0",
            description="Pretrain the source network that transfer members start from, every Sunday.",
            parameters={"config": PretrainConfig(store=store).model_dump(mode="json")},
            concurrency_limit=1,
        ),
        Definition(
            flow="batch-predict",
            name="daily",
            entrypoint="flows/predict.py:batch_predict",
            cron="0 6 * * *",
            description=(
                "Score a table with the production ensemble every morning "
                f"(the schedule is active when ${PREDICT_INPUT_ENV} names the input)."
            ),
            parameters={
                "config": {
                    "model": f"{store.rstrip('/')}/demo@production",
                    "input": predict_input,
                    "output": predict_output,
                }
            },
            schedule_active=bool(predict_input),
        ),
    ]


def runner_deployments() -> list[Any]:
    """The definitions as Prefect `RunnerDeployment`s, ready for `prefect.serve`."""
    from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
    from prefect.schedules import Cron

    from flows.predict import batch_predict
    from flows.pretrain import pretrain
    from flows.train import train_ensemble

    flows: dict[str, Any] = {
        "train-ensemble": train_ensemble,
        "pretrain": pretrain,
        "batch-predict": batch_predict,
    }
    out = []
    for d in definitions():
        limit = (
            ConcurrencyLimitConfig(
                limit=d.concurrency_limit, collision_strategy=ConcurrencyLimitStrategy.ENQUEUE
            )
            if d.concurrency_limit
            else None
        )
        out.append(
            flows[d.flow].to_deployment(
                name=d.name,
                schedules=[Cron(d.cron, timezone="UTC", active=d.schedule_active)],
                concurrency_limit=limit,
                parameters=d.parameters,
                description=d.description,
                tags=list(d.tags),
            )
        )
    return out

"""Pretrain a source model and publish it as an ordinary version, ready to be a parent.

A Keras network (``keras_mlp`` for tables, ``keras_cnn`` for images such as
``sklearn:digits``) and/or an XGBoost booster, trained on any source accord reads.
Run it with ``accord pretrain ...`` or ``python -m flows.pretrain --data SRC --kinds keras_mlp``.
"""

from __future__ import annotations

import sys
from typing import Any

from prefect import flow

from accord.config import PretrainConfig
from flows.train import train_ensemble
from runtime.entry import run_from_command_line

__all__ = ["PretrainConfig", "pretrain"]


@flow(name="pretrain", log_prints=True)
def pretrain(config: PretrainConfig) -> dict[str, Any]:
    """Train the source model(s) and publish them as one version; return the reference."""
    return train_ensemble(config.to_train_config())


if __name__ == "__main__":
    run_from_command_line(pretrain, PretrainConfig, sys.argv[1:])

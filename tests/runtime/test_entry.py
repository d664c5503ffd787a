"""python -m flows.<name>: options read from the flow's parameter model, a config file under them."""

from __future__ import annotations

import pytest

from accord.config import PredictConfig, TrainConfig
from accord.errors import ConfigError
from runtime.entry import parse, parser

REQUIRED = ["--model", "file:///r/m@production", "--input", "file:///in.csv", "--output", "file:///out.csv"]


def test_scalar_and_list_fields_are_options_parsed_to_their_types():
    config = parse(PredictConfig, [*REQUIRED, "--keep", "id, x1", "--chunk-rows", "500"], "p")
    assert isinstance(config, PredictConfig)
    assert (config.keep, config.chunk_rows, config.workers) == (["id", "x1"], 500, 2)


def test_options_override_the_config_file_and_the_file_fills_the_rest(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("data: sklearn:wine\nfolds: 3\nmembers:\n  - kind: logreg\n")
    config = parse(TrainConfig, ["--config", str(path), "--folds", "4", "--method", "equal"], "p")
    assert isinstance(config, TrainConfig)
    assert (config.data, config.folds, config.method) == ("sklearn:wine", 4, "equal")
    assert [m.kind for m in config.members] == ["logreg"]


def test_only_fields_with_plain_values_are_options():
    flags = {a.dest for a in parser(TrainConfig, "p")._actions}
    assert {"data", "target", "folds", "test_size", "method", "store", "seed", "dask_address"} <= flags
    assert not {"members", "adapt", "cluster_kwargs"} & flags  # structured: the config file's


def test_bad_or_missing_values_name_the_field():
    with pytest.raises(ConfigError, match=r"chunk_rows: Input should be greater than or equal to 1"):
        parse(PredictConfig, [*REQUIRED, "--chunk-rows", "0"], "p")
    with pytest.raises(ConfigError, match=r"invalid PredictConfig:\n  - model: Field required"):
        parse(PredictConfig, REQUIRED[2:], "p")

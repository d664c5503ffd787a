"""accord.portfolio and TrainConfig.preset: the presets are prefixes of a derived, valid order."""

from __future__ import annotations

import pytest
import yaml

from accord.config import NAME_PATTERN, make_config
from accord.errors import ConfigError
from accord.members import check_member_specs
from accord.portfolio import FILE, preset_members
from accord.training.prepare import prepare
from bench.portfolio import PORTFOLIO, PRESET_SIZES, members
from tests.support import ROOT


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_presets_are_growing_prefixes_of_one_valid_order(task):
    fast, default, best = (preset_members(p, task) for p in ("fast", "default", "best"))
    assert len(fast) < len(default) < len(best)
    assert default[: len(fast)] == fast and best[: len(default)] == default
    names = [m["name"] for m in best]
    assert len(set(names)) == len(names)
    assert all(__import__("re").fullmatch(NAME_PATTERN, n) for n in names)
    check_member_specs(((m["name"], m["kind"], m["params"]) for m in best), task)  # raises if invalid
    assert len({m["kind"] for m in default}) >= 3  # several kinds, not one family


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_the_file_is_what_the_bench_script_derives_from_its_candidates(task):
    assert PORTFOLIO == ROOT / "accord" / FILE
    document = yaml.safe_load(PORTFOLIO.read_text())
    assert document["presets"] == PRESET_SIZES
    candidates = {m["name"]: m for m in members(task)}
    assert sorted(m["name"] for m in document["order"][task]) == sorted(candidates)
    for entry in document["order"][task]:
        assert entry == candidates[entry["name"]]  # no hand edits: every entry is a candidate as defined


def test_a_preset_chooses_the_members_of_the_run_for_its_task():
    config = make_config({"data": "sklearn:iris", "preset": "fast", "folds": 2})
    data = prepare(config)
    assert [s.label for s in data.members] == [m["name"] for m in preset_members("fast", "classification")]
    assert [s.params for s in data.members] == [m["params"] for m in preset_members("fast", "classification")]


def test_a_preset_and_members_together_are_refused():
    with pytest.raises(ConfigError, match="give members or a preset, not both"):
        make_config({"preset": "best", "members": [{"kind": "logreg"}]})
    with pytest.raises(ConfigError, match=r"preset.*'fast', 'default' or 'best'|preset: Input should be"):
        make_config({"preset": "quick"})


def test_a_preset_config_validates_again_as_a_flow_parameter_and_from_its_dump():
    """The dump (flow parameters, a manifest's lineage, the UI's form) is a valid config as it is.

    `accord train --preset` failed here once: the dump listed the default members beside the preset.
    """
    from flows.train import train_ensemble

    config = make_config({"data": "sklearn:iris", "preset": "fast"})
    assert config.members == []
    dumped = config.model_dump(mode="json")
    again = train_ensemble.validate_parameters({"config": dumped})["config"]
    assert again == config and again.members_for("classification") == config.members_for("classification")
    with pytest.raises(ConfigError, match="give at least one member"):
        make_config({"members": []})

"""The layers of the tree hold: no import cycles, and each package imports only what lies below it."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from tests.support.imports import ROOT, cycles, graph

# Modules of the library that may import Dask: those where a member trains across the cluster.
DASK_IN_LIBRARY = {"accord.training.cluster", "accord.members.xgboost_dask"}
THIRD_PARTY_DASK = ("dask", "distributed", "dask_ml", "prefect_dask")


def _top(module: str) -> str:
    return module.split(".")[0]


def _imports_of(prefix: str) -> dict[str, set[str]]:
    return {m: out for m, out in graph().items() if m == prefix or m.startswith(prefix + ".")}


def test_no_module_imports_itself_through_others_lazily_or_not():
    assert cycles(graph()) == []


def test_the_cycle_check_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"a"}}) == [["a"]]


def _reaching(prefix: str, tops: tuple[str, ...]) -> dict[str, list[str]]:
    """Modules under `prefix` that import a package named in `tops`, with what they import from it."""
    found = {m: sorted(o for o in out if _top(o) in tops) for m, out in _imports_of(prefix).items()}
    return {m: out for m, out in found.items() if out}


def test_the_library_imports_no_prefect_no_runtime_and_dask_only_where_a_member_spans_the_cluster():
    assert len(_imports_of("accord")) > 30  # the walk found the library
    # one exception: `accord.AccordClassifier` / `AccordRegressor`, imported from the
    # deployments layer only when first used (they train through the flow)
    assert _reaching("accord", ("prefect", "runtime", "tasks", "flows", "deployments")) == {
        "accord": ["deployments.estimators"]
    }
    assert set(_reaching("accord", THIRD_PARTY_DASK)) == DASK_IN_LIBRARY


def test_runtime_imports_no_tasks_flows_or_deployments():
    assert _reaching("runtime", ("tasks", "flows", "deployments")) == {}


def test_tasks_import_no_flows_runtime_or_deployments():
    assert _reaching("tasks", ("flows", "runtime", "deployments")) == {}


def test_flows_import_no_deployments():
    assert _reaching("flows", ("deployments",)) == {}


LOAD_SCRIPT = """
import sys
from accord.config import make_config
from accord.ensembling.evaluation import evaluate
from accord.registry.publishing import publish, version_payload
from accord.registry.store import Registry
from accord.training.fit import fit_all
from accord.training.prepare import prepare

store = sys.argv[1]
members = [{"kind": "logreg"}, {"kind": "random_forest", "params": {"n_estimators": 10}}]
config = make_config({"data": "sklearn:iris", "members": members, "folds": 2, "store": store, "name": "iris"})
p = prepare(config)
oof, refits = fit_all(p, 0)
report = evaluate(p, oof, refits, "caruana")
files, manifest = version_payload(p, refits, report, config=config.model_dump(mode="json"))
print(publish(Registry(store), "iris", files, manifest))
"""

LOADER = """
import sys
import accord
from accord.data.dataset import read_source
model = accord.load(sys.argv[1])
frame, target = read_source("sklearn:iris")
assert (model.predict(frame.drop(columns=[target])) == frame[target]).mean() > 0.9
heavy = {"prefect", "prefect_dask", "distributed", "tensorflow", "keras", "xgboost", "matplotlib"}
print(sorted({m.split(".")[0] for m in sys.modules} & heavy))
"""


@pytest.mark.slow
def test_loading_a_model_imports_neither_prefect_nor_dasks_cluster_nor_unneeded_kinds(tmp_path):
    """`accord.load` of a scikit-learn model: no Prefect, Dask cluster, TensorFlow, XGBoost or matplotlib.

    (``dask.array`` itself is imported by skops: its trusted-type list walks every
    scikit-learn module, one of which wraps ``dask.array`` when Dask is installed.)
    """
    store = (tmp_path / "registry").as_uri()
    run = {"capture_output": True, "text": True, "timeout": 300, "cwd": ROOT}
    published = subprocess.run([sys.executable, "-c", textwrap.dedent(LOAD_SCRIPT), store], **run)
    assert published.returncode == 0, published.stderr[-2000:]
    ref = published.stdout.strip().splitlines()[-1]
    loaded = subprocess.run([sys.executable, "-c", textwrap.dedent(LOADER), ref], **run)
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    assert loaded.stdout.strip() == "[]"

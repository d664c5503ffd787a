"""The `accord` console script as scripts and schedulers use it: exit codes, stderr, --json."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import accord
from accord.config import PredictConfig, PretrainConfig, TrainConfig
from accord.registry.store import Registry
from runtime.warm import NO_STACK_NOTE
from tests.support import ROOT
from tests.support.cli import run_cli


@pytest.fixture(scope="module")
def tables(tmp_path_factory) -> dict[str, str]:
    d = tmp_path_factory.mktemp("tables")
    rng = np.random.default_rng(0)
    base = pd.DataFrame(
        {"x": rng.normal(size=60), "city": rng.choice(["a", "b"], 60), "y": rng.choice(["p", "q"], 60)}
    )
    out = {}

    def save(name: str, frame: pd.DataFrame) -> None:
        path = d / f"{name}.csv"
        frame.to_csv(path, index=False)
        out[name] = path.as_uri()

    save("good", base)
    save("empty", base.iloc[:0])
    save("one_class", base.assign(y="p"))
    save("nan_target", base.assign(y=base["y"].where(np.arange(60) != 3)))
    save("inf_target", base.assign(y=np.where(np.arange(60) == 5, np.inf, rng.normal(size=60))))
    save("text_target", base.assign(y=rng.choice(["low", "high"], 60)))
    save("rare_class", base.assign(y=np.where(np.arange(60) < 4, "rare", "common")))
    bad_params = d / "bad_params.yaml"
    bad_params.write_text(
        f"data: {out['good']}\ntarget: y\nmembers:\n  - kind: random_forest\n    params: {{n_trees: 5}}\n"
    )
    out["bad_params"] = str(bad_params)
    return out


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--data", "{good}", "--target", "label"],
            "target column 'label' not found in .*; columns are \\['x', 'city', 'y'\\]",
        ),
        (["--data", "{empty}", "--target", "y"], "has no rows"),
        (["--data", "{one_class}", "--target", "y"], "target column 'y' has 1 class \\('p'\\)"),
        (
            ["--data", "{nan_target}", "--target", "y"],
            "target column 'y' has 1 missing \\(NaN\\) values \\(first rows \\[3\\]\\)",
        ),
        (
            ["--data", "{inf_target}", "--target", "y", "--task", "regression"],
            "target column 'y' has 1 infinite values",
        ),
        (
            ["--data", "{text_target}", "--target", "y", "--task", "regression"],
            "target column 'y' must be numeric for regression",
        ),
        (
            ["--data", "{rare_class}", "--target", "y", "--folds", "5"],
            "class 'rare' of target column 'y' has \\d rows in the training split; 5-fold",
        ),
        (
            ["--data", "{good}", "--target", "y", "--members", "logreg,gpt"],
            "members.1.kind: Input should be 'logreg', 'svc'",
        ),
        (
            ["--config", "{bad_params}"],
            "member 'random_forest' \\(kind random_forest\\): unknown parameter 'n_trees'",
        ),
        (
            ["--data", "file:///nonexistent/data.csv", "--target", "y"],
            "cannot read 'file:///nonexistent/data.csv': no such file",
        ),
        (
            ["--data", "s3://no-such-bucket-accord/data.parquet", "--target", "y"],
            "cannot read 's3://no-such-bucket-accord/data.parquet'",
        ),
        (["--data", "{good}", "--target", "y", "--method", "best"], "method: Input should be 'caruana'"),
        (["--data", "{good}", "--target", "y", "--name", "../escape"], "name: String should match pattern"),
        (
            ["--data", "{good}", "--target", "y", "--folds", "1"],
            "folds: Input should be greater than or equal to 2",
        ),
    ],
)
def test_bad_input_exits_2_with_a_clear_message_and_publishes_nothing(tmp_path, tables, args, message):
    import re

    store = (tmp_path / "registry").as_uri()
    filled = [a.format(**tables) for a in args]
    name = [] if "--name" in args else ["--name", "bad"]
    out = run_cli("train", *filled, "--store", store, *name, "--json", timeout=120)
    assert out.returncode == 2, out.stderr[-2000:]
    assert re.search(message, out.stderr), out.stderr[-2000:]
    assert out.stdout == ""
    assert Registry(store).names() == []


def test_unknown_flag_is_a_usage_error():
    out = run_cli("train", "--no-such-flag")
    assert out.returncode == 2
    assert "No such option" in out.stderr


@pytest.mark.slow
def test_train_json_to_s3_and_load_back_with_its_own_prefect_server(s3_store, tables, tmp_path):
    # No PREFECT_API_URL: the CLI starts one local server and hands it to the flow and every worker.
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env["PREFECT_HOME"] = str(tmp_path / "prefect-home")
    out = run_cli(
        "train",
        "--data",
        tables["good"],
        "--target",
        "y",
        "--members",
        "logreg,knn,xgboost",
        "--folds",
        "3",
        "--test-size",
        "0.25",
        "--method",
        "optimize",
        "--store",
        s3_store,
        "--name",
        "cities",
        "--seed",
        "3",
        "--workers",
        "2",
        "--json",
        env=env,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "database is locked" not in out.stderr
    assert "temporary server" not in out.stderr.lower()
    # next to the run's "View at" link: that link dies with this command, and how to keep runs visible
    assert out.stderr.count(NO_STACK_NOTE) == 1 and "View at http://127.0.0.1:" in out.stderr
    result = json.loads(out.stdout)  # stdout holds exactly one JSON object
    assert set(result) == {
        "ref",
        "version",
        "unchanged",
        "weights",
        "metrics",
        "left_out",
        "promoted",
        "reason",
    }
    assert result["left_out"] == {}
    # the labels are coin flips: the ensemble cannot beat the class prior, so no alias moves to it
    assert (
        result["promoted"] is False
        and "does not beat the trivial baseline (baseline:prior" in result["reason"]
    )
    assert "baseline:prior" in out.stderr  # said in the alias line too
    assert set(result["metrics"]["baselines"]) == {"prior", "equal_vote", "best_cv_member"}
    assert "12 fits (members x folds, and refits), estimated" in out.stderr  # before training
    assert "fits 1/12 done, " in out.stderr and "fits 12/12 done, " in out.stderr  # the first and the last
    assert result["ref"] == f"{s3_store}/cities:{result['version']}"
    assert sum(result["weights"].values()) == pytest.approx(1.0)
    assert "fit-knn-fold-2" in out.stderr  # progress goes to stderr
    model = accord.load(f"{s3_store}/cities")
    assert model.manifest["version"] == result["version"]
    frame = pd.read_csv(tables["good"])
    assert set(model.predict(frame.drop(columns=["y"]))) <= {"p", "q"}
    assert model.manifest["method"] == "optimize"
    # the version loaded back from S3 scores exactly what the flow measured in memory
    from accord.config import make_config
    from accord.ensembling.metrics import score
    from accord.training.prepare import prepare

    data = prepare(
        make_config(
            {
                "data": tables["good"],
                "target": "y",
                "folds": 3,
                "test_size": 0.25,
                "seed": 3,
                "members": [{"kind": k} for k in ("logreg", "knn", "xgboost")],
            }
        )
    )
    proba = model.predict_proba(data.X_test)
    assert score("classification", data.y_test, proba, 2) == pytest.approx(
        result["metrics"]["ensemble"], rel=1e-9
    )


@pytest.mark.slow
def test_python_m_flows_train_takes_the_same_options(tmp_path, tables):
    store = (tmp_path / "registry").as_uri()
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "flows.train",
            "--data",
            tables["one_class"],
            "--target",
            "y",
            "--store",
            store,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert out.returncode == 2, out.stderr[-2000:]
    assert "target column 'y' has 1 class ('p')" in out.stderr
    assert Registry(store).names() == []


@pytest.mark.slow
def test_pretrain_refuses_bad_input_with_exit_2(tmp_path):
    store = (tmp_path / "registry").as_uri()
    out = run_cli("pretrain", "--data", "sklearn:wine", "--kinds", "keras_cnn", "--store", store, "--json")
    assert out.returncode == 2, out.stderr[-2000:]
    assert "(kind keras_cnn) needs square images as numeric pixel columns; found 13 columns" in out.stderr
    out = run_cli("pretrain", "--kinds", "random_forest", "--store", store)
    assert out.returncode == 2
    assert "kinds.0: Input should be 'keras_mlp', 'keras_cnn' or 'xgboost'" in out.stderr
    assert Registry(store).names() == []


JSON_MODE_SCRIPT = """
import json, subprocess, sys
from deployments.cli import json_stdout

with json_stdout(True) as out:
    subprocess.run([sys.executable, "-c", "print('a child process talking')"], check=True)
    print("a library talking", flush=True)
    print(json.dumps({"ref": "x"}), file=out)
print("stdout is back")
"""


def test_json_mode_keeps_stdout_for_the_json_object():
    """Worker processes and native libraries print to file descriptor 1; with --json that goes to stderr."""
    done = subprocess.run(
        [sys.executable, "-c", JSON_MODE_SCRIPT],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    lines = done.stdout.splitlines()
    assert json.loads(lines[0]) == {"ref": "x"}
    assert lines[1:] == ["stdout is back"]
    assert "a child process talking" in done.stderr and "a library talking" in done.stderr


def _summary_result(with_gaps: bool, task: str = "classification") -> dict:
    if task == "classification":
        ensemble = {"log_loss": 0.12, "accuracy": 0.96, "balanced_accuracy": 0.95, "f1_macro": 0.95}
        ensemble["roc_auc"] = 0.99
        first, worse = {**ensemble, "log_loss": 0.0777}, {**ensemble, "log_loss": 0.2}
    else:
        ensemble = {"rmse": 11.3474, "mae": 8.1, "r2": 0.61}
        first, worse = {**ensemble, "rmse": 10.9}, {**ensemble, "rmse": 14.2}
    result = {
        "ref": "file:///tmp/registry/demo:v1",
        "weights": {"logreg": 0.25, "knn": 0.75},
        "metrics": {
            "ensemble": ensemble,
            "members": {"logreg": first, "knn": worse},
            "baselines": {
                "best_cv_member": {"member": "logreg", "metrics": first},
                "equal_vote": {"metrics": worse},
                "prior": {"kind": "prior", "metrics": worse},
            },
        },
        "timings": {
            "logreg": {"fit_seconds": 0.3125, "predict_seconds": 0.0104},
            "knn": {"fit_seconds": 12.5, "predict_seconds": None},
            "ensemble": {"fit_seconds": 12.8125, "predict_seconds": None},
        },
    }
    if with_gaps:
        result["vs_ensemble"] = {
            "logreg": {"gap": -0.0423, "se": 0.0273},
            "knn": {"gap": 0.08, "se": 0.031},
            "baseline:best_cv_member": {"gap": -0.0423, "se": 0.0273},
            "baseline:equal_vote": {"gap": 0.08, "se": 0.031},
            "baseline:prior": {"gap": 0.08, "se": 0.031},
        }
    return result


def _summary(result: dict, width: int = 80) -> list[str]:
    import io

    from rich.console import Console

    from deployments.report import print_summary

    console = Console(width=width, file=io.StringIO())
    print_summary(result, console)
    return console.file.getvalue().splitlines()  # type: ignore[attr-defined]


def test_the_leaderboard_fits_80_columns_with_gaps_fit_and_predict_seconds():
    lines = _summary(_summary_result(with_gaps=True))
    assert max(len(line) for line in lines) <= 80
    names = ("ensemble", "logreg", "knn", "baseline:prior")
    rows = {line.split()[0]: line for line in lines if line.split() and line.split()[0] in names}
    assert rows["logreg"].split() == [
        "logreg",
        "0.250",
        "0.0777",
        "0.96",
        "0.99",
        "-0.042±0.027",
        "0.31",
        "0.01",
    ]
    assert rows["knn"].split()[-2:] == ["+0.08±0.031", "12.5"]  # no predict time: an empty cell
    assert "±" not in rows["ensemble"] and rows["ensemble"].split()[-1] == "12.8"
    assert "+0.08±0.031" in rows["baseline:prior"]
    text = "\n".join(lines)
    assert "(log loss)" in text and "within the noise of this test split" in text
    assert "vs ensemble" not in "\n".join(_summary(_summary_result(with_gaps=False)))  # older results: none


def test_for_regression_the_gap_column_names_its_unit():
    lines = _summary(_summary_result(with_gaps=True, task="regression"))
    assert max(len(line) for line in lines) <= 80
    header = "\n".join(lines[:4])
    assert "rmse" in header and "(sq. error)" in header  # squared error beside rmse, said in the header
    assert any(line.split()[:3] == ["logreg", "0.250", "10.9"] for line in lines)


@pytest.mark.slow
def test_help_version_and_readable_options():
    assert run_cli("-h").returncode == 0 and "Usage: accord [OPTIONS] COMMAND" in run_cli("-h").stdout
    import accord as package

    assert run_cli("--version").stdout.strip() == f"accord {package.__version__}"
    train = " ".join(run_cli("train", "--help").stdout.split())  # as read, whatever the wrapping
    assert "--folds K" in train and "[default: 5]" in train and "[default: caruana]" in train
    assert "[default: sklearn:breast_cancer]" in train and "the data file's name" in train
    assert "<str>" not in train and "<int>" not in train
    listing = run_cli("models", "list", "-h").stdout
    assert (
        "Usage: accord models list [OPTIONS] STORE" in listing
        and "{" not in listing
        and "<str>" not in listing
    )


@pytest.mark.parametrize(("args", "code"), [(["--help"], 0), (["train", "--folds", "1"], 2)])
def test_the_console_script_keeps_the_exit_code_and_exits_with_the_heap_frozen(args, code):
    from importlib.metadata import entry_points

    from deployments.thin import console

    (script,) = [e for e in entry_points(group="console_scripts") if e.name == "accord"]
    assert script.load() is console  # what the installed `accord` runs (here: no warm stack)
    # What the collector holds frozen as the process exits (atexit runs after sys.exit).
    probe = (
        "import atexit, gc, sys; atexit.register(lambda: print('frozen', gc.get_freeze_count())); "
        f"from deployments.thin import console; sys.argv = ['accord', *{args!r}]; console()"
    )
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert run.returncode == code, run.stderr
    frozen = [int(line.split()[1]) for line in run.stdout.splitlines() if line.startswith("frozen ")]
    assert len(frozen) == 1 and frozen[0] > 10_000, run.stdout


@pytest.fixture(scope="module")
def house(tmp_path_factory) -> str:
    """A user's own regression table, saved as house.csv: price grows with area and rooms."""
    rng = np.random.default_rng(1)
    area = rng.uniform(40, 200, 160)
    rooms = rng.integers(1, 6, 160)
    frame = pd.DataFrame(
        {"area": area, "rooms": rooms, "price": 3 * area + 20 * rooms + rng.normal(0, 10, 160)}
    )
    path = tmp_path_factory.mktemp("user") / "house.csv"
    frame.to_csv(path, index=False)
    return str(path)


@pytest.mark.slow
def test_a_users_file_is_published_under_its_own_name_and_a_rerun_says_it_changed_nothing(house, tmp_path):
    store = (tmp_path / "registry").as_uri()
    args = (
        "train",
        "--data",
        house,
        "--target",
        "price",
        "--members",
        "knn,hist_gb",
        "--folds",
        "2",
        "--store",
        store,
    )
    first = run_cli(*args, "--json")
    assert first.returncode == 0, first.stderr[-3000:]
    assert "accord: publishing as 'house' (from the data; --name NAME to choose another)" in first.stderr
    result = json.loads(first.stdout)
    assert result["ref"] == f"{store}/house:{result['version']}" and Registry(store).names() == ["house"]
    assert result["promoted"] is True and result["reason"] == "alias 'production' was unset"
    assert result["unchanged"] is False
    again = run_cli(*args)  # same data, members and seed: the cached fits, the same version
    assert again.returncode == 0, again.stderr[-3000:]
    said = " ".join(again.stdout.split())
    identical = "an identical earlier run (same data, members, settings and code)"
    assert f"unchanged: {identical} published {result['ref']}" in said
    assert "published:" not in again.stdout and "does not beat" not in again.stderr
    assert (
        f"accord: alias 'production' unchanged: 'production' already points to {result['version']}"
        in again.stderr
    )
    assert "fits 6/6 done (6 reused from the cache)" in again.stderr
    assert Registry(store).versions("house") == [result["version"]]

    listing = run_cli("models", "list", store)
    assert listing.returncode == 0, listing.stderr
    row = next(line for line in listing.stdout.splitlines() if result["version"] in line)
    published = f"{result['version'][:4]}-{result['version'][4:6]}-{result['version'][6:8]}"
    rmse = result["metrics"]["ensemble"]["rmse"]
    assert published in row and "production" in row and f"rmse {rmse:.4f}" in row
    shown = run_cli("models", "show", f"{store}/house")
    assert shown.returncode == 0, shown.stderr
    assert (
        f"accord: {result['ref']} (alias 'production'" in shown.stderr
    )  # the version a bare name resolved to
    tree = shown.stdout.splitlines()
    assert tree[0].startswith(f"house:{result['version']}")
    assert tree[-1].startswith("└── held-out rmse") and all(not line.startswith("└──") for line in tree[:-1])
    members = [line for line in tree if "[knn]" in line or "[hist_gb]" in line]
    assert members[0].lstrip("│ ").startswith("├──") and members[1].lstrip("│ ").startswith("└──")


def test_the_command_line_imports_no_prefect_until_a_command_runs_a_flow():
    # Prefect reads its settings when imported: the CLI must not import it before the API URL is set.
    probe = (
        "import sys, deployments.cli; print(sorted(m for m in sys.modules if m.split('.')[0] == 'prefect'))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("name", "model", "own"),
    [
        ("train", TrainConfig, {"config", "as_json"}),
        ("pretrain", PretrainConfig, {"config", "as_json"}),
        ("predict", PredictConfig, {"as_json"}),
    ],
)
def test_each_option_is_a_field_of_the_commands_parameter_model_with_its_default(name, model, own):
    from deployments.cli import command

    fields = model.model_fields
    options = {("input" if p.name == "input_url" else p.name): p for p in command().commands[name].params}
    assert set(options) - own <= set(fields)
    for field, option in options.items():
        if field in own:
            continue
        if fields[field].is_required():
            assert option.required, field
            continue
        default = fields[field].get_default(call_default_factory=True)
        if field in ("members", "kinds"):  # comma-separated kinds on the command line
            default = ",".join(getattr(k, "kind", k) for k in default)
        derived = fields[field].default_factory is not None or default is None  # e.g. the store
        assert option.default == default or (option.default is None and derived), field

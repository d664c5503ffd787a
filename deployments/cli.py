"""The ``accord`` command line: ad-hoc runs of the flows.

Exit codes: 0 done, 2 bad input (nothing trained or published), 1 any other failure.
"""

from __future__ import annotations

import gc
import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any, NoReturn, TextIO

import typer

from accord.config import TrainConfig, make_config, read_config_file
from accord.errors import InputError

app = typer.Typer(
    add_completion=False, no_args_is_help=True, help="accord: parallel ensembles, published safely."
)

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2


def _err(message: str) -> None:
    print(message, file=sys.stderr)


@contextmanager
def json_stdout(enabled: bool) -> Iterator[TextIO]:
    """Keep stdout for the one JSON object: while the run works, file descriptor 1 points at stderr.

    Dask worker processes inherit file descriptor 1 and native libraries (XGBoost's
    collective, TensorFlow) print to it; with ``--json`` all of that goes to stderr, and
    the stream yielded here writes to the real stdout.
    """
    if not enabled:
        yield sys.stdout
        return
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    out = os.fdopen(os.dup(saved), "w")
    try:
        yield out
    finally:
        out.flush()
        out.close()
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def build_config(config_file: str | None, overrides: dict[str, Any]) -> TrainConfig:
    """Merge a config file (if any) with command-line overrides and validate."""
    values: dict[str, Any] = read_config_file(config_file) if config_file else {}
    values.update({k: v for k, v in overrides.items() if v is not None})
    return make_config(values)


def _flow(flow_name: str) -> Any:
    """Import a flow only once the Prefect API URL is in the environment."""
    if flow_name == "pretrain":
        from flows.pretrain import pretrain

        return pretrain
    if flow_name == "predict":
        from flows.predict import batch_predict

        return batch_predict
    from flows.train import train_ensemble

    return train_ensemble


def run_flow(flow_name: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """Run a flow against a Prefect API (a local server is started when none is set)."""
    from flows.server import drain_prefect_clients, prefect_api

    with prefect_api() as url:
        from prefect.settings import PREFECT_API_URL, temporary_settings

        with temporary_settings({PREFECT_API_URL: url}):
            try:
                result: dict[str, Any] = _flow(flow_name)(*args, **kwargs)
                return result
            finally:
                drain_prefect_clients()


def run_training(config: TrainConfig) -> dict[str, Any]:
    """Run the training flow; see `run_flow`."""
    return run_flow("train", config)


def _report(result: dict[str, Any], as_json: bool, out: TextIO | None = None) -> None:
    promotion = result.get("promotion") or {}
    if promotion:
        state = "moved" if promotion["promoted"] else "kept"
        _err(f"accord: alias {promotion['alias']!r} {state}: {promotion['reason']}")
    if as_json:
        keys = ("ref", "version", "weights", "metrics")
        print(json.dumps({k: result[k] for k in keys}, default=float), file=out or sys.stdout)
    else:
        print_summary(result)


SUMMARY_METRICS = {
    "classification": ("log_loss", "accuracy", "balanced_accuracy", "f1_macro", "roc_auc"),
    "regression": ("rmse", "mae", "r2"),
}


def print_summary(result: dict[str, Any]) -> None:
    """Leaderboard, reference and a two-line loading example, for people.

    Beside each model other than the ensemble, ``vs ensemble`` is its held-out loss minus
    the ensemble's with one standard error (``result["vs_ensemble"]``, when present): on a
    small test split a ranking can be chance, and this says when it is.
    """
    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(Console().width, 124))
    metrics = result["metrics"]
    task = "classification" if "log_loss" in metrics["ensemble"] else "regression"
    names = SUMMARY_METRICS[task]
    primary = names[0]
    rows = [("ensemble", metrics["ensemble"])]
    rows += [(f"baseline:{k}", v["metrics"]) for k, v in metrics["baselines"].items()]
    rows += list(metrics["members"].items())
    rows.sort(key=lambda r: r[1][primary])
    gaps = result.get("vs_ensemble") or {}
    loss_name = "log loss" if task == "classification" else "squared error"
    table = Table(title=f"held-out leaderboard (sorted by {primary}, lower is better)")
    table.add_column("model")
    table.add_column("weight", justify="right")
    for n in names:
        table.add_column(n, justify="right")
    if gaps:
        table.add_column("vs ensemble", justify="right", no_wrap=True)
    weights = result.get("weights") or {}
    for model, values in rows:
        w = f"{weights[model]:.3f}" if model in weights else ""
        style = "bold" if model == "ensemble" else None
        cells = ["" if values.get(n) is None else f"{values[n]:.4f}" for n in names]
        if gaps:
            gap = gaps.get(model)
            cells.append("" if gap is None else f"{gap['gap']:+.4f} ± {gap['se']:.4f}")
        table.add_row(model, w, *cells, style=style)
    console.print(table)
    if gaps:
        print(
            f"vs ensemble: the model's {loss_name} per held-out row minus the ensemble's, on average, "
            "± one standard error; positive: the ensemble did better. A gap within about two "
            "standard errors is within the noise of this test split."
        )
    print(f"published: {result['ref']}")
    print("load it:")
    print("  import accord")
    print(f'  model = accord.load("{result["ref"]}"); model.predict(table)')


@app.callback()
def _root() -> None:
    """accord: parallel ensembles, published safely."""


@app.command()
def train(
    data: Annotated[
        str | None, typer.Option(help="Data source (sklearn:NAME, synthetic:KIND?..., or a CSV/Parquet URL).")
    ] = None,
    target: Annotated[str | None, typer.Option(help="Target column.")] = None,
    task: Annotated[str | None, typer.Option(help="auto|classification|regression.")] = None,
    members: Annotated[
        str | None, typer.Option(help="Comma-separated member kinds, e.g. logreg,xgboost,keras_mlp.")
    ] = None,
    folds: Annotated[int | None, typer.Option(help="Cross-validation folds.")] = None,
    test_size: Annotated[float | None, typer.Option("--test-size", help="Held-out fraction.")] = None,
    method: Annotated[str | None, typer.Option(help="caruana|optimize|stacking|equal|hard.")] = None,
    store: Annotated[str | None, typer.Option(help="Store URL (file://, s3://, memory://).")] = None,
    name: Annotated[str | None, typer.Option(help="Model name in the store.")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed.")] = None,
    workers: Annotated[int | None, typer.Option(help="Local Dask worker processes.")] = None,
    dask_address: Annotated[
        str | None, typer.Option("--dask-address", help="Existing Dask scheduler address.")
    ] = None,
    config: Annotated[
        str | None, typer.Option("--config", help="YAML or JSON file of TrainConfig; flags override it.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")] = False,
) -> None:
    """Train an ensemble on Dask, fit its weights, publish it."""
    overrides: dict[str, Any] = {
        "data": data,
        "target": target,
        "task": task,
        "folds": folds,
        "test_size": test_size,
        "method": method,
        "store": store,
        "name": name,
        "seed": seed,
        "workers": workers,
        "dask_address": dask_address,
    }
    if members is not None:
        overrides["members"] = [{"kind": k.strip()} for k in members.split(",") if k.strip()]
    cfg = build_config(config, overrides)
    from accord.training import prepare

    prepare(cfg)  # refuse bad input in seconds, before a server or cluster starts
    from flows.local_workers import start_ahead

    start_ahead(cfg.dask_address, cfg.cluster_class)
    with json_stdout(as_json) as out:
        _report(run_training(cfg), as_json, out)


@app.command()
def pretrain(
    data: Annotated[str | None, typer.Option(help="Source-task data source.")] = None,
    target: Annotated[str | None, typer.Option(help="Target column.")] = None,
    task: Annotated[str | None, typer.Option(help="auto|classification|regression.")] = None,
    kinds: Annotated[str | None, typer.Option(help="Comma-separated: keras_mlp, keras_cnn, xgboost.")] = None,
    store: Annotated[str | None, typer.Option(help="Store URL.")] = None,
    name: Annotated[str | None, typer.Option(help="Model name in the store.")] = None,
    alias: Annotated[str | None, typer.Option(help="Alias to set on the new version.")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed.")] = None,
    workers: Annotated[int | None, typer.Option(help="Local Dask worker processes.")] = None,
    dask_address: Annotated[str | None, typer.Option("--dask-address", help="Existing scheduler.")] = None,
    config: Annotated[str | None, typer.Option("--config", help="YAML/JSON of PretrainConfig.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")] = False,
) -> None:
    """Pretrain a source model (Keras network and/or XGBoost booster) and publish it."""
    from pydantic import ValidationError

    from accord.config import format_validation_error
    from accord.errors import ConfigError
    from flows.pretrain import PretrainConfig

    values: dict[str, Any] = read_config_file(config) if config else {}
    overrides = {
        "data": data,
        "target": target,
        "task": task,
        "store": store,
        "name": name,
        "alias": alias,
        "seed": seed,
        "workers": workers,
        "dask_address": dask_address,
    }
    values.update({k: v for k, v in overrides.items() if v is not None})
    if kinds is not None:
        values["kinds"] = [k.strip() for k in kinds.split(",") if k.strip()]
    try:
        cfg = PretrainConfig.model_validate(values)
    except ValidationError as e:
        raise ConfigError(format_validation_error(e, "PretrainConfig")) from e
    from accord.training import prepare

    prepare(cfg.to_train_config())
    from flows.local_workers import start_ahead

    start_ahead(cfg.dask_address)
    with json_stdout(as_json) as out:
        _report(run_flow("pretrain", cfg), as_json, out)


@app.command()
def predict(
    model: Annotated[str, typer.Option(help="Model reference: <store>/<name>[:version|@alias].")],
    input_url: Annotated[str, typer.Option("--input", help="Table to score (Parquet or CSV URL).")],
    output: Annotated[str, typer.Option(help="Where predictions go (.parquet or .csv URL).")],
    keep: Annotated[
        str | None, typer.Option(help="Comma-separated input columns copied to the output (e.g. id).")
    ] = None,
    chunk_rows: Annotated[int, typer.Option("--chunk-rows", help="Rows per scoring task.")] = 50_000,
    workers: Annotated[int, typer.Option(help="Local Dask worker processes.")] = 2,
    dask_address: Annotated[str | None, typer.Option("--dask-address", help="Existing scheduler.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")] = False,
) -> None:
    """Score a table with a published ensemble; write predictions (and probabilities) whole."""
    from accord.batch import file_format, plan, sample
    from accord.ensemble import load

    file_format(output, "output")
    columns = [c.strip() for c in keep.split(",") if c.strip()] if keep else []
    ensemble = load(model, weighted_only=True)  # refuse a bad reference, tampered files or bad input
    head = sample(plan(input_url, chunk_rows))
    ensemble.schema.conform(head.drop(columns=[c for c in columns if c in head.columns]))
    from flows.local_workers import start_ahead

    start_ahead(dask_address)
    with json_stdout(as_json) as out:
        result = run_flow(
            "predict",
            model=model,
            input=input_url,
            output=output,
            keep=columns,
            chunk_rows=chunk_rows,
            workers=workers,
            dask_address=dask_address,
        )
        if as_json:
            print(json.dumps(result), file=out)
    if not as_json:
        print(f"wrote {result['rows']} predictions to {result['output']} (model {result['model']})")


@app.command()
def serve() -> None:
    """Serve every deployment (schedules included) from this process; Ctrl-C stops."""
    from deployments.serve import serve_all

    serve_all()


models = typer.Typer(no_args_is_help=True, help="Inspect the registry and move aliases.")
app.add_typer(models, name="models")


@models.command("list")
def models_list(
    store: Annotated[str, typer.Argument(help="Store URL.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List models, their versions and aliases."""
    from accord.lineage import list_models

    listing = list_models(store)
    if as_json:
        print(json.dumps(listing))
        return
    for entry in listing:
        aliases = ", ".join(f"{a} -> {v}" for a, v in sorted(entry["aliases"].items())) or "no aliases"
        print(f"{entry['name']}  ({len(entry['versions'])} versions; {aliases})")
        for version in reversed(entry["versions"]):
            print(f"  {version}")


@models.command("show")
def models_show(
    ref: Annotated[str, typer.Argument(help="Model reference: <store>/<name>[:version|@alias].")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the manifest as JSON.")] = False,
) -> None:
    """Show a version's manifest, metrics and lineage (files verified)."""
    from accord.lineage import lineage_tree, show

    manifest = show(ref)
    if as_json:
        print(json.dumps(manifest, indent=2))
        return
    print("\n".join(lineage_tree(manifest)))


@models.command("promote")
def models_promote(
    ref: Annotated[str, typer.Argument(help="Reference of the version to promote.")],
    alias: Annotated[str, typer.Argument(help="Alias to point at it, e.g. production.")],
) -> None:
    """Point an alias at a version (by hand; no gate)."""
    from accord.store.refs import parse_ref
    from accord.store.registry import Registry

    parsed = parse_ref(ref)
    registry = Registry(parsed.store)
    version = registry.resolve(parsed)
    registry.set_alias(parsed.name, alias, version)
    print(f"{parsed.name}@{alias} -> {version}")


def main(argv: list[str] | None = None) -> int:
    """Run the ``accord`` command line with `argv` (default: ``sys.argv[1:]``); return the exit code."""
    args = sys.argv[1:] if argv is None else argv
    try:
        app(args=args, prog_name="accord", standalone_mode=False)
    except InputError as e:
        _err(f"accord: error: {e}")
        return EXIT_BAD_INPUT
    except typer.Exit as e:
        return int(e.exit_code or 0)
    except Exception as e:
        if hasattr(e, "show") and hasattr(e, "exit_code"):  # click's usage errors (bad flags)
            e.show()
            return EXIT_BAD_INPUT
        _err(f"accord: failed: {type(e).__name__}: {e}")
        return EXIT_FAILED
    return EXIT_OK


def console(argv: list[str] | None = None) -> NoReturn:
    """The ``accord`` console script (and ``python -m flows.train`` etc.): `main`, then exit.

    Before the process exits, everything it holds is frozen out of Python's cyclic garbage
    collector (`gc.freeze`). A run leaves Prefect, Dask, scikit-learn and pandas loaded,
    and the interpreter's last collections at exit walked all of their objects: the process
    ended 0.86-0.89 s after printing its last line, against 0.09 s frozen. Exit handlers
    (``atexit``, logging's flush) still run; the memory goes back to the OS with the process.
    """
    code = main(argv)
    gc.freeze()
    sys.exit(code)


if __name__ == "__main__":
    console()

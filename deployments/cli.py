"""The ``accord`` command line: ad-hoc runs of the flows.

Exit codes: 0 done, 2 bad input (nothing trained or published), 1 any other failure.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer

from accord.config import TrainConfig, make_config, read_config_file
from accord.errors import InputError

app = typer.Typer(
    add_completion=False, no_args_is_help=True, help="accord: parallel ensembles, published safely."
)

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2


def _err(message: str) -> None:
    print(message, file=sys.stderr)


def build_config(config_file: str | None, overrides: dict[str, Any]) -> TrainConfig:
    """Merge a config file (if any) with command-line overrides and validate."""
    values: dict[str, Any] = read_config_file(config_file) if config_file else {}
    values.update({k: v for k, v in overrides.items() if v is not None})
    return make_config(values)


def run_training(config: TrainConfig) -> dict[str, Any]:
    """Run the training flow against a Prefect API (a local server is started when none is set)."""
    from flows.server import prefect_api

    with prefect_api() as url:
        from prefect.settings import PREFECT_API_URL, temporary_settings

        with temporary_settings({PREFECT_API_URL: url}):
            from flows.train import train_ensemble

            return train_ensemble(config)


SUMMARY_METRICS = {
    "classification": ("log_loss", "accuracy", "balanced_accuracy", "f1_macro", "roc_auc"),
    "regression": ("rmse", "mae", "r2"),
}


def print_summary(result: dict[str, Any]) -> None:
    """Leaderboard, reference and a two-line loading example, for people."""
    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(Console().width, 100))
    metrics = result["metrics"]
    task = "classification" if "log_loss" in metrics["ensemble"] else "regression"
    names = SUMMARY_METRICS[task]
    primary = names[0]
    rows = [("ensemble", metrics["ensemble"])]
    rows += [(f"baseline:{k}", v["metrics"]) for k, v in metrics["baselines"].items()]
    rows += list(metrics["members"].items())
    rows.sort(key=lambda r: r[1][primary])
    table = Table(title=f"held-out leaderboard (sorted by {primary}, lower is better)")
    table.add_column("model")
    table.add_column("weight", justify="right")
    for n in names:
        table.add_column(n, justify="right")
    weights = result.get("weights") or {}
    for model, values in rows:
        w = f"{weights[model]:.3f}" if model in weights else ""
        style = "bold" if model == "ensemble" else None
        table.add_row(
            model, w, *("" if values.get(n) is None else f"{values[n]:.4f}" for n in names), style=style
        )
    console.print(table)
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
    result = run_training(cfg)
    if as_json:
        print(json.dumps(result, default=float))
    else:
        print_summary(result)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``accord`` console script; returns the exit code."""
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


if __name__ == "__main__":
    sys.exit(main())

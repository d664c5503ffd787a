"""The ``accord`` command line: ad-hoc runs of the flows.

Exit codes: 0 done, 2 bad input (nothing trained or published), 1 any other failure.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any, NoReturn, TextIO

import typer
from typer.core import TyperArgument

from accord.config import (
    DEFAULT_MEMBER_KINDS,
    PredictConfig,
    PretrainConfig,
    TrainConfig,
    make_config,
    read_config_file,
)
from accord.errors import InputError, ModelReferenceError

CONTEXT = {"help_option_names": ["-h", "--help"]}
app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="accord: parallel ensembles, published safely.",
    context_settings=CONTEXT,
    rich_markup_mode=None,  # plain help: fits 80 columns, one line per option where it can
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
    from runtime.entry import with_prefect_api

    result: dict[str, Any] = with_prefect_api(lambda: _flow(flow_name)(*args, **kwargs))
    return result


def run_training(config: TrainConfig) -> dict[str, Any]:
    """Run the training flow; see `run_flow`."""
    return run_flow("train", config)


def _report(result: dict[str, Any], as_json: bool, out: TextIO | None = None) -> None:
    promotion = result.get("promotion") or {}
    if promotion:
        if promotion["incumbent"] == promotion["challenger"]:
            state = "unchanged"
        else:
            state = "moved" if promotion["promoted"] else "not moved"
        _err(f"accord: alias {promotion['alias']!r} {state}: {promotion['reason']}")
    for member, why in (result.get("left_out") or {}).items():
        _err(f"accord: member {member!r} left out by the time limit: {why}")
    if as_json:
        keys = ("ref", "version", "unchanged", "weights", "metrics", "left_out")
        body = {k: result.get(k) for k in keys}
        body["promoted"] = bool(promotion.get("promoted"))
        body["reason"] = promotion.get("reason")
        print(json.dumps(body, default=float), file=out or sys.stdout)
    else:
        from deployments.report import print_summary

        print_summary(result)


def _defaults(model: type[TrainConfig] | type[PretrainConfig] | type[PredictConfig]) -> dict[str, Any]:
    """A parameter model's defaults, which the commands' options show and start from (one source)."""
    return {name: f.get_default(call_default_factory=True) for name, f in model.model_fields.items()}


TRAIN = _defaults(TrainConfig)
PRETRAIN = _defaults(PretrainConfig)
PREDICT = _defaults(PredictConfig)


def _values(ctx: typer.Context, config_file: str | None, fields: Iterable[str]) -> dict[str, Any]:
    """A config file's values (if any), overridden by the options given on the command line.

    Only options given (on the command line or in the environment, by click's parameter
    source) override: one left at its default keeps the file's value. Options are named as
    the parameter model's `fields`; ``--members`` and ``--kinds`` are comma-separated.
    """
    values: dict[str, Any] = read_config_file(config_file) if config_file else {}
    given = {"COMMANDLINE", "ENVIRONMENT"}  # click's ParameterSource names
    for key, value in ctx.params.items():
        if key not in fields or getattr(ctx.get_parameter_source(key), "name", None) not in given:
            continue
        if key in ("members", "kinds"):
            kinds = [k.strip() for k in value.split(",") if k.strip()]
            value = [{"kind": k} for k in kinds] if key == "members" else kinds
        values[key] = value
    return values


def _version(value: bool) -> None:
    if value:
        from accord.version import __version__

        print(f"accord {__version__}")
        raise typer.Exit()


# Options that several commands share, declared once.
TargetOption = Annotated[
    str | None, typer.Option(help="Target column (required for files).", metavar="COL", show_default="target")
]
TaskOption = Annotated[
    str, typer.Option(help="auto (inferred from the target), classification or regression.", metavar="TASK")
]
StoreOption = Annotated[
    str | None,
    typer.Option(
        help="Store URL (file://, s3://, memory://, or a path).",
        metavar="URL",
        show_default="$ACCORD_STORE, else registry/ here",
    ),
]
SeedOption = Annotated[int, typer.Option(help="Random seed.", metavar="N")]
WorkersOption = Annotated[int, typer.Option(help="Local Dask worker processes.", metavar="N")]
DaskAddressOption = Annotated[
    str | None,
    typer.Option(
        "--dask-address",
        help="Existing Dask scheduler address.",
        metavar="ADDR",
        show_default="a local cluster",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")]
RefArgument = Annotated[
    str,
    typer.Argument(
        help="Model reference: STORE/NAME[:VERSION|@ALIAS]; a bare name means its production alias, "
        "else its newest version.",
        metavar="REF",
    ),
]


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", help="Print accord's version and exit.", is_eager=True, callback=_version),
    ] = False,
) -> None:
    """accord: parallel ensembles, published safely."""


@app.command()
def train(
    ctx: typer.Context,
    data: Annotated[
        str, typer.Option(help="Data: sklearn:NAME, synthetic:KIND?..., or a CSV/Parquet URL.", metavar="SRC")
    ] = TRAIN["data"],
    target: TargetOption = None,
    task: TaskOption = TRAIN["task"],
    members: Annotated[
        str,
        typer.Option(help="Comma-separated member kinds, e.g. logreg,xgboost,keras_mlp.", metavar="KINDS"),
    ] = ",".join(DEFAULT_MEMBER_KINDS),
    preset: Annotated[
        str | None,
        typer.Option(
            help="Instead of --members: a portfolio of configurations: fast, default or best.",
            metavar="PRESET",
            show_default="none (the members)",
        ),
    ] = None,
    folds: Annotated[int, typer.Option(help="Cross-validation folds.", metavar="K")] = TRAIN["folds"],
    test_size: Annotated[
        float, typer.Option("--test-size", help="Held-out fraction.", metavar="FRACTION")
    ] = TRAIN["test_size"],
    method: Annotated[
        str,
        typer.Option(help="How weights are fitted: caruana, optimize, stacking, equal or hard.", metavar="M"),
    ] = TRAIN["method"],
    final: Annotated[
        str,
        typer.Option(help="Members predict with: refit (one model) or bag (K fold models).", metavar="F"),
    ] = TRAIN["final"],
    time_limit: Annotated[
        float | None,
        typer.Option(
            "--time-limit",
            help="Seconds from start to published version; members that would not finish are left out.",
            metavar="SECONDS",
            show_default="no limit",
        ),
    ] = None,
    store: StoreOption = None,
    name: Annotated[
        str | None,
        typer.Option(
            help="Model name in the store.",
            metavar="NAME",
            show_default="the data file's name; demo for bundled data",
        ),
    ] = None,
    seed: SeedOption = TRAIN["seed"],
    workers: WorkersOption = TRAIN["workers"],
    dask_address: DaskAddressOption = None,
    config: Annotated[
        str | None,
        typer.Option(
            "--config",
            help="YAML or JSON file of TrainConfig; flags override it.",
            metavar="FILE",
            show_default="none",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Train an ensemble on Dask, fit its weights, publish it."""
    values = _values(ctx, config, TrainConfig.model_fields)  # the options above, by their names
    cfg = make_config(values)
    if values.get("name") is None:
        _err(f"accord: publishing as {cfg.name!r} (from the data; --name NAME to choose another)")
    from accord.training.prepare import column_notes, precheck

    # refuse bad input in seconds, before a server or cluster starts; the run reuses the result
    prepared = precheck(cfg)
    for note in column_notes(prepared.schema):
        _err(f"accord: {note}")
    from deployments.report import progress_display
    from runtime.local_workers import start_ahead

    start_ahead(cfg.dask_address, cfg.cluster_class)
    with json_stdout(as_json) as out:
        with progress_display():
            result = run_training(cfg)
        _report(result, as_json, out)


@app.command()
def pretrain(
    ctx: typer.Context,
    data: Annotated[
        str, typer.Option(help="Source-task data (any accord data source).", metavar="SRC")
    ] = PRETRAIN["data"],
    target: TargetOption = None,
    task: TaskOption = PRETRAIN["task"],
    kinds: Annotated[
        str,
        typer.Option(help="Comma-separated source kinds: keras_mlp, keras_cnn, xgboost.", metavar="KINDS"),
    ] = ",".join(PRETRAIN["kinds"]),
    store: StoreOption = None,
    name: Annotated[str, typer.Option(help="Model name in the store.", metavar="NAME")] = PRETRAIN["name"],
    alias: Annotated[str, typer.Option(help="Alias set on the new version.", metavar="ALIAS")] = PRETRAIN[
        "alias"
    ],
    seed: SeedOption = PRETRAIN["seed"],
    workers: WorkersOption = PRETRAIN["workers"],
    dask_address: DaskAddressOption = None,
    config: Annotated[
        str | None,
        typer.Option(
            "--config", help="YAML or JSON file of PretrainConfig.", metavar="FILE", show_default="none"
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Pretrain a source model (Keras network and/or XGBoost booster) and publish it."""
    from pydantic import ValidationError

    from accord.config import PretrainConfig, format_validation_error
    from accord.errors import ConfigError

    values = _values(ctx, config, PretrainConfig.model_fields)  # the options above, by their names
    try:
        cfg = PretrainConfig.model_validate(values)
    except ValidationError as e:
        raise ConfigError(format_validation_error(e, "PretrainConfig")) from e
    from accord.training.prepare import precheck

    precheck(cfg.to_train_config())
    from deployments.report import progress_display
    from runtime.local_workers import start_ahead

    start_ahead(cfg.dask_address)
    with json_stdout(as_json) as out:
        with progress_display():
            result = run_flow("pretrain", cfg)
        _report(result, as_json, out)


@app.command()
def predict(
    model: Annotated[
        str,
        typer.Option(
            help="Model reference: STORE/NAME[:VERSION|@ALIAS]; a bare name means its production alias, "
            "else its newest version.",
            metavar="REF",
        ),
    ],
    input_url: Annotated[
        str, typer.Option("--input", help="Table to score (Parquet or CSV URL).", metavar="URL")
    ],
    output: Annotated[str, typer.Option(help="Where predictions go (.parquet or .csv URL).", metavar="URL")],
    keep: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated input columns copied to the output (e.g. id).",
            metavar="COLS",
            show_default="none",
        ),
    ] = None,
    chunk_rows: Annotated[
        int, typer.Option("--chunk-rows", help="Rows per scoring task.", metavar="N")
    ] = PREDICT["chunk_rows"],
    workers: WorkersOption = PREDICT["workers"],
    dask_address: DaskAddressOption = None,
    as_json: JsonOption = False,
) -> None:
    """Score a table with a published ensemble; write predictions (and probabilities) whole.

    The whole input is checked against the model's schema before the first chunk is
    scored; a refusal writes no output. An input of one chunk at most is scored in this
    process, with no flow run; a larger one by the batch-predict flow, across the cluster.
    """
    from accord.data.chunks import check_input, plan
    from accord.data.output import receipt, score_small
    from accord.data.tables import table_format
    from accord.ensembling.ensemble import load

    table_format(output, "output", compressed=False)
    columns = [c.strip() for c in keep.split(",") if c.strip()] if keep else []
    ensemble = load(model, weighted_only=True)  # refuse a bad reference, tampered files or bad input
    pinned = ensemble.manifest["ref"]
    _err(f"accord: model {pinned} ({ensemble.manifest['resolved']})")
    p = plan(input_url, chunk_rows)
    check_input(p, ensemble.schema, columns)
    with json_stdout(as_json) as out:
        written = score_small(ensemble, p, columns, output, {"model": pinned, "input": input_url})
        if written is not None:  # one chunk at most: scored here, no flow run and no cluster
            result = receipt(pinned, input_url, output, written)
        else:
            cfg = PredictConfig(
                model=pinned,  # the version checked here is the version that scores
                input=input_url,
                output=output,
                keep=columns,
                chunk_rows=chunk_rows,
                workers=workers,
                dask_address=dask_address,
            )
            result = run_flow("predict", cfg)
        if ensemble.schema.target in columns:  # the label was kept: score the predictions against it
            try:
                result["metrics"] = _kept_label_metrics(ensemble, output)
            except (InputError, KeyError, ValueError) as e:  # the predictions are written whatever
                _err(f"accord: not scored against the kept label {ensemble.schema.target!r}: {e}")
        if as_json:
            print(json.dumps(result), file=out)
    if not as_json:
        print(f"wrote {result['rows']} predictions to {result['output']} (model {result['model']})")
        if "metrics" in result:
            shown = ", ".join(f"{k} {v:.4g}" for k, v in result["metrics"].items() if v is not None)
            print(f"against the kept label {ensemble.schema.target!r}: {shown}")


def _kept_label_metrics(ensemble: Any, output: str) -> dict[str, Any]:
    """The ensemble's metrics on the written predictions against the label kept beside them.

    Reads only the label and prediction columns back; rows without a label are left out.

    Raises:
        DataError: a label the model has no class for (`labels_of`).
    """
    import numpy as np
    import pandas as pd

    from accord.data.output import PREDICTION, PROBA_PREFIX
    from accord.data.tables import table_format
    from accord.ensembling.labelled import labels_of
    from accord.ensembling.metrics import score

    target = ensemble.schema.target
    wanted = [target, PREDICTION, *(f"{PROBA_PREFIX}{c}" for c in ensemble.schema.classes)]
    if table_format(output, "output", compressed=False) == "csv":
        written = pd.read_csv(output, usecols=wanted)
    else:
        written = pd.read_parquet(output, columns=wanted)
    written = written[written[target].notna()]  # rows without a label are scored, not judged
    y = labels_of(ensemble, written[target])
    if ensemble.task == "classification":
        pred = np.column_stack([written[f"{PROBA_PREFIX}{c}"] for c in ensemble.classes_])
    else:
        pred = written[PREDICTION].to_numpy(dtype=float)
    return score(ensemble.schema.task, y, pred, len(ensemble.schema.classes))


@app.command()
def evaluate(
    model: RefArgument,
    data: Annotated[
        str, typer.Option(help="Labelled table: a CSV/Parquet URL or any accord data source.", metavar="SRC")
    ],
    target: Annotated[
        str | None,
        typer.Option(help="The label column.", metavar="COLUMN", show_default="the model's target"),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Score a labelled table against a published ensemble: its leaderboard on those rows."""
    from accord.data.dataset import read_source
    from accord.ensembling.ensemble import load
    from accord.ensembling.labelled import score_labelled

    ensemble = load(model)
    _err(f"accord: model {ensemble.manifest['ref']} ({ensemble.manifest['resolved']})")
    frame, label = read_source(data, target or ensemble.schema.target)
    result = score_labelled(ensemble, frame, label)
    if as_json:
        print(json.dumps(result, default=float))
        return
    from rich.console import Console

    from deployments.report import leaderboard

    console = Console(soft_wrap=False)
    console.print(leaderboard(result))
    console.print(
        f"{result['rows']} labelled rows of {data}; vs ensemble: the model's loss per row minus the "
        "ensemble's, ± one standard error.",
        highlight=False,
    )


@app.command()
def serve() -> None:
    """Serve every deployment (schedules included) from this process; Ctrl-C stops."""
    from deployments.serve import serve_all

    serve_all()


keys = typer.Typer(no_args_is_help=True, help="Keys that sign published versions.", context_settings=CONTEXT)
app.add_typer(keys, name="keys")


@keys.command("generate")
def keys_generate(
    directory: Annotated[str, typer.Argument(help="Where accord.key and accord.pub go.", metavar="DIR")],
) -> None:
    """Write a new signing key pair: DIR/accord.key (keep it; owner-only) and DIR/accord.pub (share it).

    With ACCORD_SIGNING_KEY=DIR/accord.key every publish signs; others verify with
    accord.pub (accord.load(ref, trusted_keys=[...]), trusted_signers in a config).
    """
    from accord.registry.signing import fingerprint, generate_keys

    private, public = generate_keys(directory)
    print(f"wrote {private} (private: keep it, owner-only) and {public} (public: share it)")
    print(f"key fingerprint {fingerprint(public.read_bytes())}")


server = typer.Typer(
    no_args_is_help=True,
    help="Keep a Prefect server and Dask workers warm for every accord command on this machine.",
    context_settings=CONTEXT,
)
app.add_typer(server, name="server")


@server.command("start")
def server_start(
    workers: Annotated[int, typer.Option(help="Dask worker processes (one core each).", metavar="N")] = TRAIN[
        "workers"
    ],
) -> None:
    """Start the warm stack in the background (under $ACCORD_HOME, default ~/.accord); idempotent.

    Every command finds it by itself and uses its Prefect API and workers while it is up;
    a run that gives --dask-address, a cluster class or adapt keeps its own cluster.
    """
    from runtime.stack import start
    from runtime.warm import describe

    stack, new = start(workers, commands="deployments.commands")
    _err("accord: warm stack started" if new else "accord: a warm stack is already up")
    print(describe(stack))


@server.command("stop")
def server_stop() -> None:
    """Stop the warm stack and every process it started."""
    from runtime.stack import stop

    stopped = stop()
    print("no warm stack was up" if stopped is None else f"stopped the warm stack (process {stopped.pid})")


@server.command("status")
def server_status() -> None:
    """Show the warm stack's addresses; exit 1 when none is up."""
    from runtime.warm import describe, running

    stack = running()
    if stack is None:
        print("no warm stack is up; `accord server start` starts one")
        raise typer.Exit(EXIT_FAILED)
    print(describe(stack))


models = typer.Typer(
    no_args_is_help=True, help="Inspect the registry and move aliases.", context_settings=CONTEXT
)
app.add_typer(models, name="models")


@models.command("list")
def models_list(
    store: Annotated[str, typer.Argument(help="Store URL (file://, s3://, or a path).", metavar="STORE")],
    tag: Annotated[
        list[str] | None,
        typer.Option(
            "--tag", help="Only versions with this tag (repeatable): KEY=VALUE.", metavar="KEY=VALUE"
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List models: per version, when it was published, its aliases, held-out metric and tags."""
    from rich.console import Console

    from accord.registry.listing import list_models
    from accord.registry.refs import parse_tags
    from deployments.report import models_table

    listing = list_models(store, parse_tags(tag or []))
    if as_json:
        print(json.dumps(listing))
        return
    if not listing:
        print(f"no models in {store}")
    console = Console()
    for entry in listing:
        console.print(models_table(entry))


@models.command("show")
def models_show(
    ref: RefArgument,
    as_json: Annotated[bool, typer.Option("--json", help="Print the manifest as JSON.")] = False,
    trusted_key: Annotated[
        list[str] | None,
        typer.Option(
            "--trusted-key",
            help="A public key (accord.pub) the version must be signed by (repeatable).",
            metavar="FILE",
        ),
    ] = None,
) -> None:
    """Show a version's manifest, metrics and lineage (files verified; with --trusted-key, its signature)."""
    from accord.registry.listing import show
    from deployments.report import lineage_tree, print_tree

    manifest = show(ref, trusted_key or ())
    if as_json:
        print(json.dumps(manifest, indent=2))
        return
    _err(f"accord: {manifest['ref']} ({manifest['resolved']})")
    print_tree(lineage_tree(manifest))


@models.command("promote")
def models_promote(
    ref: Annotated[str, typer.Argument(help="Reference of the version to promote.", metavar="REF")],
    alias: Annotated[str, typer.Argument(help="Alias to point at it, e.g. production.", metavar="ALIAS")],
) -> None:
    """Point an alias at a version (by hand; no gate)."""
    from accord.registry.refs import check_alias, parse_ref
    from accord.registry.store import Registry

    parsed = parse_ref(ref)
    registry = Registry(parsed.store)
    version = registry.resolve(parsed)
    check_alias(alias)  # before its lock file is made
    with registry.alias_lock(parsed.name, alias):  # as the promotion gate and deletion hold it
        registry.set_alias(parsed.name, alias, version)
    print(f"{parsed.name}@{alias} -> {version}")


def _pinned(ref: str) -> tuple[Any, str, str]:
    """The registry, model name and version `ref` resolves to."""
    from accord.registry.refs import parse_ref
    from accord.registry.store import Registry

    parsed = parse_ref(ref)
    registry = Registry(parsed.store)
    return registry, parsed.name, registry.resolve(parsed)


@models.command("report")
def models_report(
    ref: RefArgument,
    output: Annotated[str, typer.Option("-o", "--output", help="The HTML file to write.", metavar="FILE")],
) -> None:
    """Write a version's report: one self-contained HTML page (figures embedded; files verified)."""
    import os
    import tempfile

    from accord.registry.refs import parse_ref
    from accord.registry.store import Registry
    from accord.reports.page import report_page

    parsed = parse_ref(ref)
    registry = Registry(parsed.store)
    pinned, manifest, files = registry.fetch(parsed)
    documents = registry.read_documents(parsed.name, pinned.version or "", manifest)
    page = report_page(parsed.name, manifest, {**files, **documents})
    target = os.path.abspath(output)
    fd, tmp = tempfile.mkstemp(prefix=".accord-report-", suffix=".html", dir=os.path.dirname(target))
    with os.fdopen(fd, "w", encoding="utf-8") as out:  # whole or not at all
        out.write(page)
    os.replace(tmp, target)
    _err(f"accord: {manifest['ref']} ({manifest['resolved']})")
    print(f"wrote {target}")


@models.command("tag")
def models_tag(
    ref: RefArgument,
    tags: Annotated[
        list[str] | None, typer.Argument(help="Tags to set: KEY=VALUE ...", metavar="KEY=VALUE...")
    ] = None,
    remove: Annotated[
        list[str] | None, typer.Option("--remove", help="A tag key to remove (repeatable).", metavar="KEY")
    ] = None,
) -> None:
    """Set or remove tags of a version."""
    from accord.registry.refs import parse_tags

    wanted = parse_tags(tags or [])
    registry, name, version = _pinned(ref)
    notes = registry.set_notes(name, version, tags=wanted, untag=list(remove or []))
    shown = ", ".join(f"{k}={v}" for k, v in sorted(notes["tags"].items())) or "none"
    print(f"{name}:{version} tags: {shown}")


@models.command("describe")
def models_describe(
    ref: RefArgument,
    text: Annotated[str, typer.Argument(help="The version's description.", metavar="TEXT")],
) -> None:
    """Set the description of a version."""
    registry, name, version = _pinned(ref)
    registry.set_notes(name, version, description=text)
    print(f"{name}:{version} described")


@models.command("unalias")
def models_unalias(
    ref: Annotated[str, typer.Argument(help="The alias to delete: STORE/NAME@ALIAS.", metavar="REF")],
) -> None:
    """Delete an alias (the version it pointed to stays)."""
    from accord.registry.refs import parse_ref
    from accord.registry.store import Registry

    parsed = parse_ref(ref)
    if not parsed.alias:
        raise ModelReferenceError(f"{ref!r} names no alias; expected STORE/NAME@ALIAS.")
    version = Registry(parsed.store).delete_alias(parsed.name, parsed.alias)
    print(f"{parsed.name}@{parsed.alias} deleted (it pointed to {version})")


@models.command("delete")
def models_delete(
    ref: Annotated[str, typer.Argument(help="The version to delete: STORE/NAME:VERSION.", metavar="REF")],
) -> None:
    """Delete a version, unless an alias points at it."""
    from accord.registry.refs import parse_ref
    from accord.registry.store import Registry

    parsed = parse_ref(ref)
    if not parsed.version:
        raise ModelReferenceError(
            f"{ref!r} names no version; expected STORE/NAME:VERSION (pinned, on purpose)."
        )
    Registry(parsed.store).delete_version(parsed.name, parsed.version)
    print(f"{parsed.name}:{parsed.version} deleted")


class _PlainArgument(TyperArgument):
    """A positional argument shown by its name, as POSIX usage writes it: ``STORE``.

    Typer draws a required argument as ``{STORE}`` in the usage line and adds its Python
    type (``<str>``) in the help; the help's own words say what the argument is.
    """

    def _usage_display_name(self) -> str:
        return self.display_name_raw + ("..." if self.nargs != 1 else "")

    def display_type_rich(self, ctx: Any) -> str | None:
        return None


def command() -> Any:
    """The ``accord`` command tree as click runs it, arguments drawn by `_PlainArgument`."""
    root = typer.main.get_command(app)
    todo = [root]
    while todo:
        cmd = todo.pop()
        for param in cmd.params:
            if isinstance(param, TyperArgument):
                param.__class__ = _PlainArgument
        todo.extend(getattr(cmd, "commands", {}).values())  # a group's subcommands
    return root


def main(argv: list[str] | None = None) -> int:
    """Run the ``accord`` command line with `argv` (default: ``sys.argv[1:]``); return the exit code."""
    args = sys.argv[1:] if argv is None else argv
    try:
        code = command().main(args=args, prog_name="accord", standalone_mode=False)
        if isinstance(code, int):  # a command's typer.Exit(code), which click returns here
            return code
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
    """The ``accord`` console script: `main`, then exit (`runtime.entry.exit_frozen`)."""
    from runtime.entry import exit_frozen

    exit_frozen(main(argv))


if __name__ == "__main__":
    console()

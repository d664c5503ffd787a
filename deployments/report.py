"""What the CLI shows people: the leaderboard, model listings, a lineage tree and a run's progress.

Everything is drawn with rich at the terminal's width (80 columns fit) on the console
given; machine-readable output is the commands' ``--json``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from accord.ensembling.metrics import LOWER_IS_BETTER, PRIMARY
from accord.training.progress import FitProgress, duration, watching

LEADERBOARD = {  # the primary metric (`accord.ensembling.metrics.PRIMARY`) first
    "classification": (("log_loss", "log loss"), ("accuracy", "acc."), ("roc_auc", "AUC")),
    "regression": (("rmse", "rmse"), ("mae", "mae"), ("r2", "r2")),
}
LOSS_UNIT = {"classification": "log loss", "regression": "sq. error"}


def _task(result: dict[str, Any]) -> str:
    """The task of a run's result, told by which primary metric its ensemble has."""
    return "classification" if PRIMARY["classification"] in result["metrics"]["ensemble"] else "regression"


def _num(value: Any) -> str:
    """A metric for a narrow column: four significant digits."""
    return "" if value is None else f"{float(value):.4g}"


def _signed(value: float) -> str:
    return f"{value:+,.0f}" if abs(value) >= 1000 else f"{value:+.2g}"


def _seconds(value: Any) -> str:
    if value is None:
        return ""
    return f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def leaderboard(result: dict[str, Any]) -> Table:
    """The held-out leaderboard of a training run's result (`flows.train.train_ensemble`'s return).

    Rows: the ensemble, the baselines and the members, best first by the primary metric.
    Columns: weight, three metrics, ``vs ensemble`` (the model's held-out loss per row
    minus the ensemble's, ± one standard error, in the unit its header names), and fit
    and predict seconds (`accord.ensembling.evaluation.timings`).
    """
    metrics = result["metrics"]
    task = _task(result)
    columns = LEADERBOARD[task]
    primary = PRIMARY[task]
    rows = [("ensemble", metrics["ensemble"])]
    rows += [(f"baseline:{k}", v["metrics"]) for k, v in metrics["baselines"].items()]
    rows += list(metrics["members"].items())
    sign = 1 if primary in LOWER_IS_BETTER else -1
    rows.sort(key=lambda r: sign * float(r[1][primary]))
    gaps = result.get("vs_ensemble") or {}
    timings = result.get("timings") or {}
    weights = result.get("weights") or {}
    table = Table(
        title=f"held-out leaderboard (by {primary}, {'lower' if sign == 1 else 'higher'} is better)",
        box=box.SIMPLE_HEAD,
        padding=0,
        show_edge=False,
    )
    table.add_column("model", overflow="fold")
    table.add_column("weight", justify="right", no_wrap=True)
    for _, header in columns:
        table.add_column(header, justify="right", no_wrap=True)
    if gaps:
        table.add_column(f"vs ensemble\n({LOSS_UNIT[task]})", justify="right", no_wrap=True)
    if timings:
        table.add_column("fit s", justify="right", no_wrap=True)
        table.add_column("pred s", justify="right", no_wrap=True)
    for model, values in rows:
        cells = [model, f"{weights[model]:.3f}" if model in weights else ""]
        cells += [_num(values.get(key)) for key, _ in columns]
        if gaps:
            gap = gaps.get(model)
            cells.append("" if gap is None else f"{_signed(gap['gap'])}±{gap['se']:.2g}")
        if timings:
            timing = timings.get(model, {})
            cells += [_seconds(timing.get("fit_seconds")), _seconds(timing.get("predict_seconds"))]
        table.add_row(*cells, style="bold" if model == "ensemble" else None)
    return table


def print_summary(result: dict[str, Any], console: Console | None = None) -> None:
    """Leaderboard, reference and a two-line loading example, for people.

    A rerun that returned an identical earlier run's version says so instead of
    "published". On a small test split a ranking can be chance: ``vs ensemble`` and the
    note under the table say when it is.
    """
    console = console or Console(soft_wrap=False)
    console.print(leaderboard(result))
    task = _task(result)
    if result.get("vs_ensemble"):
        console.print(
            f"vs ensemble: the model's {LOSS_UNIT[task]} per held-out row minus the ensemble's, ± one "
            "standard error; positive: the ensemble did better. A gap within about two standard errors "
            "is within the noise of this test split. fit s: every fold fit and the refit; pred s: "
            "predicting the held-out rows.",
            highlight=False,
        )
    if result.get("unchanged"):
        console.print(
            f"unchanged: an identical earlier run (same data, members, settings and code) published "
            f"{result['ref']}; this run returned it and published nothing new.",
            highlight=False,
            soft_wrap=True,
        )
    else:
        console.print(f"published: {result['ref']}", highlight=False, soft_wrap=True)
    console.print("load it:", highlight=False)
    console.print("  import accord", highlight=False)
    console.print(
        f'  model = accord.load("{result["ref"]}"); model.predict(table)', highlight=False, soft_wrap=True
    )


def models_table(entry: dict[str, Any]) -> Table:
    """One model's versions, newest first: when published, its aliases, headline metric and tags."""
    table = Table(title=entry["name"], title_justify="left", box=box.SIMPLE_HEAD, show_edge=False)
    table.add_column("version", no_wrap=True)
    table.add_column("published (UTC)", no_wrap=True)
    table.add_column("aliases", min_width=10, overflow="fold")
    table.add_column("held-out", justify="right", no_wrap=True)
    table.add_column("tags", overflow="fold")
    for row in reversed(entry["details"]):
        value = "" if row["value"] is None else f"{row['metric']} {row['value']:.4f}"
        tags = ", ".join(f"{k}={v}" for k, v in sorted((row.get("tags") or {}).items()))
        published = row["published"].removesuffix(" UTC")
        table.add_row(row["version"], published, ", ".join(row["aliases"]), value, Text(tags))
    return table


def print_tree(tree: Tree) -> None:
    """Print a tree on stdout with none of its lines wrapped: a reference in it is copied whole."""
    Console(width=UNWRAPPED).print(tree)


UNWRAPPED = 10_000  # columns: wider than any line, which a tree does not pad


def lineage_tree(manifest: dict[str, Any]) -> Tree:
    """A version's members and weights, parents, data, code, flow run, headline metric and notes."""

    def add(node: Tree, label: str) -> Tree:
        return node.add(Text(label))  # plain text: "[knn]" is a member's kind, not rich markup

    tree = Tree(
        Text(f"{manifest['name']}:{manifest['version']}  ({manifest.get('task')}, {manifest.get('method')})")
    )
    weights = manifest.get("weights") or {}
    members = add(tree, "members")
    for member in manifest.get("members", []):
        w = weights.get(member["name"])
        shown = f"  weight {w:.3f}" if isinstance(w, int | float) else ""
        node = add(members, f"{member['name']} [{member['kind']}]{shown}")
        for key, value in (member.get("transfer") or {}).items():
            add(node, f"{key}: {value}")
    lineage = manifest.get("lineage", {})
    parents = lineage.get("parents") or []
    node = add(tree, "parents" + ("" if parents else ": none"))
    for parent in parents:
        signer = parent.get("signer")
        signed = f", signed by key {signer[:16]}… (verified when trained)" if signer else ""
        add(node, f"{parent.get('ref')} (member {parent.get('member')}, {parent.get('relation')}{signed})")
    if manifest.get("verified_signer"):
        add(tree, f"signature: verified, key {manifest['verified_signer'][:16]}…")
    elif manifest.get("signed_by"):
        add(tree, f"signature: by key {manifest['signed_by'][:16]}… (not checked: pass --trusted-key)")
    else:
        add(tree, "signature: none")
    data = lineage.get("data", {})
    add(tree, f"data: {data.get('source')} (fingerprint {str(data.get('fingerprint'))[:16]}…)")
    digest = lineage.get("code_digest")  # versions published before it was recorded have none
    add(tree, f"code: {lineage.get('code_version')}" + (f" (source sha256 {digest[:16]}…)" if digest else ""))
    add(tree, f"flow run: {lineage.get('flow_run_id')}")
    importance = manifest.get("importance")
    if importance:
        node = add(tree, f"importance on held-out rows ({importance['metric']} increase when shuffled)")
        from accord.ensembling.importance import ranked

        for feature, entry in ranked(importance)[:10]:
            add(node, f"{feature}: {entry['importance']:+.4f} ± {entry['stddev']:.4f}")
    notes = manifest.get("notes") or {}
    if notes.get("tags"):
        add(tree, "tags: " + ", ".join(f"{k}={v}" for k, v in sorted(notes["tags"].items())))
    if notes.get("description"):
        add(tree, f"description: {notes['description']}")
    metrics = manifest.get("metrics", {})
    primary = metrics.get("primary")
    if primary:
        add(tree, f"held-out {primary}: {metrics['ensemble'][primary]:.4f}")
    return tree


@contextmanager
def progress_display(console: Console | None = None) -> Iterator[None]:
    """On a terminal, draw the fits of the runs in this block live on stderr.

    Rich draws fits done / total, elapsed time and the time left as each fit ends.
    Elsewhere (a log, a pipe) nothing is drawn: the flow logs the same progress as lines
    (`accord.training.progress.tell`), which Prefect prints to stderr and keeps with the run.
    """
    console = console or Console(stderr=True)
    if not console.is_terminal:
        yield
        return
    bar = Progress(
        TextColumn("fits"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[left]}"),
        console=console,
    )
    tasks: dict[int, TaskID] = {}

    def draw(progress: FitProgress, advanced: bool) -> None:
        key = id(progress)
        if key not in tasks:
            tasks[key] = bar.add_task("fits", total=progress.total, left="")
        left = progress.seconds_left
        shown = "" if left is None or progress.done >= progress.total else f"about {duration(left)} left"
        bar.update(tasks[key], completed=progress.done, left=shown)
        bar.refresh()  # as each fit ends, not at the next tick

    with bar, watching(draw):
        yield

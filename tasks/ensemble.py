"""Tasks that fit ensemble weights, publish a version and report it as Prefect artifacts."""

from __future__ import annotations

import base64
from typing import Any, NamedTuple

import numpy as np
from prefect import get_run_logger, task
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from accord.data.split import Prepared
from accord.ensembling.evaluation import PRIOR, Report, evaluate
from accord.registry.card import guard_line
from accord.registry.promotion import Baseline, Decision, Policy, promote
from accord.registry.publishing import find_published, publish, version_payload
from accord.registry.refs import parse_ref
from accord.registry.store import Registry
from accord.training.fit import RefitResult


@task(name="ensemble-weights", cache_policy=NO_CACHE, persist_result=False)
def fit_ensemble(
    data: Prepared,
    oof: dict[str, np.ndarray],
    refits: dict[str, RefitResult],
    method: str,
    steps: int,
    fold_seconds: dict[str, float] | None = None,
) -> Report:
    """Fit weights on out-of-fold predictions and score everything on the test split."""
    return evaluate(data, oof, refits, method, steps, fold_seconds)


def version_figures(
    data: Prepared,
    oof: dict[str, np.ndarray],
    refits: dict[str, RefitResult],
    report: Report,
    importance: dict[str, Any] | None,
) -> dict[str, bytes]:
    """The version's figures as PNG files (`accord.reports.figures`), drawn in the flow's process.

    A failure to draw is logged and gives no figures: figures never cost a run its version.
    """
    from accord.reports.figures import RunFigures, draw

    tests = {n: refits[n].test_predictions for n in report.members}
    run = RunFigures(
        task=data.task,
        classes=list(data.schema.classes),
        y_test=data.y_test,
        ensemble_test=report.rule.combine([tests[n] for n in report.members]),
        member_test=tests,
        best_member=str(report.baselines["best_cv_member"]["member"]),
        y_oof=data.y_train,
        member_oof={n: oof[n] for n in report.members},
        weights=report.weights,
        leaderboard=report.leaderboard(),
        primary=report.primary,
        importance=importance,
    )
    try:
        return draw(run)
    except Exception as e:
        get_run_logger().warning("figures not drawn: %s: %s", type(e).__name__, e)
        return {}


class Published(NamedTuple):
    """What `publish_version` returns: the version's reference, and whether this run wrote it."""

    ref: str
    new: bool


@task(name="publish-version", cache_policy=NO_CACHE, persist_result=False)
def publish_version(
    store: str,
    name: str,
    data: Prepared,
    refits: dict[str, RefitResult],
    report: Report,
    config: dict[str, Any],
    run_id: str | None,
    run_key: str | None = None,
    left_out: dict[str, str] | None = None,
    importance: dict[str, Any] | None = None,
    figures: dict[str, bytes] | None = None,
) -> Published:
    """Publish members, weights, metrics, schema and lineage; return the version's reference.

    `left_out` (member -> why a time limit left it out) goes into the manifest; `figures`
    (path -> PNG) are published with the version.
    A version already published from the same run key (a rerun of the same data, members,
    settings and code, or a rerun after a crash that came after its manifest) is returned,
    with ``new`` False, instead of publishing a duplicate.
    """
    registry = Registry(store)
    if run_key:
        existing = find_published(registry, name, run_key)
        if existing:
            get_run_logger().info(
                "an identical run already published %s; not publishing a duplicate", existing
            )
            return Published(existing, False)
    files, manifest = version_payload(
        data,
        refits,
        report,
        config=config,
        run_id=run_id,
        run_key=run_key,
        left_out=left_out,
        importance=importance,
    )
    return Published(publish(registry, name, files, manifest, figures), True)


@task(name="promote-version", cache_policy=NO_CACHE, persist_result=False)
def promote_version(
    store: str, ref: str, data: Prepared, report: Report, alias: str, policy: Policy
) -> Decision:
    """Move `alias` to the new version if the policy allows; record the decision as an artifact."""
    from accord.registry.refs import parse_ref

    parsed = parse_ref(ref)
    assert parsed.version is not None
    score = report.ensemble[report.primary]
    decision = promote(
        Registry(store),
        parsed.name,
        parsed.version,
        data,
        float(score or 0.0),
        report.primary,
        baseline=Baseline.of(report),
        alias=alias,
        policy=policy,
    )
    verb = "moved to" if decision.promoted else "not moved to"
    get_run_logger().info("alias %r %s %s: %s", alias, verb, parsed.version, decision.reason)
    key = artifact_key(parsed.name)
    create_markdown_artifact(
        f"### Promotion of `{parsed.name}@{alias}`\n\n- policy: {policy}\n"
        f"- promoted: **{decision.promoted}**\n"
        f"- challenger: `{parsed.version}` ({report.primary} {score:.4f})\n"
        f"- trivial baseline ({PRIOR}): {decision.baseline_score:.4f}\n"
        f"- incumbent: `{decision.incumbent}`\n- why: {decision.reason}\n",
        key=f"{key}-promotion",
        description="Promotion gate decision",
    )
    return decision


def artifact_key(name: str) -> str:
    """Prefect artifact keys allow lowercase letters, digits and dashes."""
    return "".join(ch if ch.isalnum() else "-" for ch in name).lower()


def _fmt(value: Any) -> Any:
    return round(value, 4) if isinstance(value, float) else value


@task(name="report-artifacts", cache_policy=NO_CACHE, persist_result=False)
def report_artifacts(
    report: Report,
    ref: str,
    name: str,
    importance: dict[str, Any] | None = None,
    figures: dict[str, bytes] | None = None,
) -> None:
    """Leaderboard, weights, importance, figures, a link to the version and a run summary as artifacts."""
    key = artifact_key(name)
    if figures:
        images = [
            f"#### {path.rsplit('/', 1)[-1].removesuffix('.png').replace('_', ' ')}\n\n"
            f"![{path}](data:image/png;base64,{base64.b64encode(png).decode()})"
            for path, png in figures.items()
        ]
        create_markdown_artifact(
            f"### Figures of {ref}\n\n" + "\n\n".join(images),
            key=f"{key}-figures",
            description=f"Figures published with {ref}",
        )
    if importance:
        rows = [
            {"feature": f, "importance": f"{e['importance']:+.4f}", "stddev": f"{e['stddev']:.4f}"}
            for f, e in importance["features"].items()
        ]
        create_table_artifact(
            rows,
            key=f"{key}-importance",
            description=f"Permutation importance of {ref}: {importance['metric']} increase on held-out rows",
        )
    rows = [{k: _fmt(v) for k, v in row.items()} for row in report.leaderboard()]
    create_table_artifact(rows, key=f"{key}-leaderboard", description=f"Held-out leaderboard of {ref}")
    weights = report.weights or {}
    loss_name = "log loss" if report.task == "classification" else "squared error"
    lines = [f"| member | weight | out-of-fold {loss_name} |", "|---|---|---|"]
    for member in report.members:
        lines.append(f"| {member} | {weights.get(member, float('nan')):.3f} | {report.cv_loss[member]:.4f} |")
    if report.guard:
        lines += ["", guard_line(report.guard)]
    create_markdown_artifact(
        f"### Ensemble weights ({report.rule.method})\n\n" + "\n".join(lines),
        key=f"{key}-weights",
        description="Weights fitted on out-of-fold predictions",
    )
    create_link_artifact(ref, link_text=ref, key=f"{key}-version", description="Published version")
    best = report.baselines["best_cv_member"]
    equal = report.baselines["equal_vote"]["metrics"][report.primary]
    prior = report.baselines["prior"]["metrics"][report.primary]
    create_markdown_artifact(
        f"## accord run summary\n\n- version: `{ref}`\n- task: {report.task}, method: {report.rule.method}\n"
        f"- ensemble {report.primary}: {report.ensemble[report.primary]:.4f}\n"
        f"- best CV member ({best['member']}) {report.primary}: {best['metrics'][report.primary]:.4f}\n"
        f"- equal-weight vote {report.primary}: {equal:.4f}\n"
        f"- trivial baseline ({PRIOR}) {report.primary}: {prior:.4f}\n",
        key=f"{key}-summary",
        description="Run summary",
    )


def run_summary(
    report: Report, ref: str, new: bool, decision: Decision, left_out: dict[str, str] | None = None
) -> dict[str, Any]:
    """What the train flow returns, from its report, the version it published and the promotion.

    Returns:
        ``{"ref", "version", "weights", "metrics": {"ensemble", "members", "baselines"}, "unchanged",
        "promotion", "vs_ensemble", "timings", "left_out"}``; ``left_out`` maps each member a time
        limit left out to why; ``unchanged`` is True when an identical earlier run had
        published the version returned (nothing new was published); ``vs_ensemble`` maps each
        other leaderboard model to its held-out loss minus the ensemble's, per row, with a
        standard error (`accord.ensembling.losses.paired_gap`).
    """
    return {
        "ref": ref,
        "version": parse_ref(ref).version,
        "weights": report.weights,
        "metrics": {"ensemble": report.ensemble, "members": report.test, "baselines": report.baselines},
        "unchanged": not new,
        "promotion": decision.to_dict(),
        "vs_ensemble": report.vs_ensemble,
        "timings": report.timings,
        "left_out": dict(left_out or {}),
    }

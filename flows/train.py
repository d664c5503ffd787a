"""Train an ensemble: members x folds in parallel on Dask, weights on out-of-fold predictions, publish.

Run it with ``python -m flows.train --config run.yaml`` or ``accord train ...``.
"""

from __future__ import annotations

import sys
from typing import Any

from prefect import flow, get_run_logger
from prefect.context import get_run_context

from accord.config import TrainConfig
from accord.store.refs import parse_ref
from accord.training import FoldResult, RefitResult, out_of_fold, work_order
from flows.runtime import task_runner_for
from tasks.ensemble import fit_ensemble, promote_version, publish_version, report_artifacts
from tasks.training import MemberFailed, fit_member_fold, prepare_data, refit_member, stage_data


def _result(future: Any, what: str) -> Any:
    """Return a member task's result, naming the member on any failure.

    Failures inside the task already name it; this covers those outside it, e.g. Dask
    giving up after the workers running it died.
    """
    try:
        return future.result()
    except MemberFailed:
        raise
    except Exception as e:
        raise MemberFailed(f"{what} failed: {type(e).__name__}: {e}") from e


@flow(name="train-ensemble", log_prints=True, validate_parameters=True)
def train_ensemble(config: TrainConfig) -> dict[str, Any]:
    """Train, weight, evaluate and publish an ensemble described by `config`.

    Returns:
        ``{"ref", "version", "weights", "metrics": {"ensemble", "members", "baselines"}, "promotion"}``.
    """
    logger = get_run_logger()
    data = prepare_data(config)  # in this process: bad input fails here, before any cluster starts
    logger.info(
        "data %s: %d training rows, %d test rows, %d folds, task %s",
        data.source,
        len(data.y_train),
        len(data.y_test),
        len(data.folds),
        data.task,
    )
    with task_runner_for(config) as runner:
        staged = runner.submit(stage_data, {"data": data})
        folds, refit_futures = {}, {}
        for spec, k in work_order(data.members, len(data.folds)):  # longest first
            if k is None:
                refit_futures[spec.name] = runner.submit(
                    refit_member, {"spec": spec, "data": staged, "seed": config.seed}
                )
            else:
                folds[(spec.name, k)] = runner.submit(
                    fit_member_fold, {"spec": spec, "data": staged, "fold": k, "seed": config.seed}
                )
        fold_results: dict[tuple[str | None, int], FoldResult] = {
            key: _result(f, f"member {key[0]!r} fold {key[1]}") for key, f in folds.items()
        }
        refits: dict[str, RefitResult] = {
            name: _result(f, f"member {name!r} refit") for name, f in refit_futures.items() if name
        }
    names = [spec.name for spec in data.members if spec.name]
    oof = {n: out_of_fold(data, [fold_results[(n, k)] for k in range(len(data.folds))]) for n in names}
    report = fit_ensemble(data, oof, refits, config.method, config.ensemble_size)
    run_id = str(get_run_context().flow_run.id)  # type: ignore[union-attr]
    ref = publish_version(
        config.store, config.name, data, refits, report, config.model_dump(mode="json"), run_id
    )
    report_artifacts(report, ref, config.name)
    decision = promote_version(config.store, ref, data, report, config.alias, config.promote)
    logger.info("published %s (ensemble %s %.4f)", ref, report.primary, report.ensemble[report.primary])
    return {
        "ref": ref,
        "version": parse_ref(ref).version,
        "weights": report.weights,
        "metrics": {"ensemble": report.ensemble, "members": report.test, "baselines": report.baselines},
        "promotion": decision.to_dict(),
    }


if __name__ == "__main__":
    from deployments.cli import main

    sys.exit(main(["train", *sys.argv[1:]]))

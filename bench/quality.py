"""Quality: accord's default ensemble vs the CV-best member, equal voting and scikit-learn stacking.

On several datasets x seeds, print held-out log loss (classification) or RMSE
(regression) and wall time, and the ratios against each baseline. accord and
stacking get the same two worker processes: accord runs member x fold tasks on a
Dask LocalCluster of 2 workers; `StackingClassifier/Regressor` runs with n_jobs=2
over the same members (same preprocessing, same parameters, same folds).

    python -m bench.quality [--seeds 3] [--datasets a,b,...] [--quick]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from dataclasses import replace
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# As accord.members.keras_kind.import_keras sets it: stacking's fitted Keras members come back
# from its joblib workers and predict in this process, which would otherwise import TensorFlow
# with oneDNN's custom operations on (and print its notice).
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.ensemble import StackingClassifier, StackingRegressor
from sklearn.linear_model import LogisticRegression, RidgeCV
from sklearn.model_selection import KFold, StratifiedKFold

from accord.config import make_config
from accord.data.schema import Schema
from accord.data.split import Prepared
from accord.ensembling.evaluation import evaluate
from accord.ensembling.metrics import score
from accord.ensembling.weights import weighted_sum
from accord.members import member_class
from accord.training.prepare import prepare
from bench.common import fit_members, local_cluster

DATASETS = [
    "sklearn:breast_cancer",
    "sklearn:wine",
    "sklearn:digits",
    "sklearn:diabetes",
    "synthetic:classification?n_rows=1500&n_features=12&n_categorical=3&missing=0.05&n_classes=3&noise=0.05",
    "synthetic:regression?n_rows=1500&n_features=10&n_categorical=2&missing=0.05&noise=20",
]


class MemberEstimator(BaseEstimator):
    """scikit-learn adapter around an accord member, so StackingX can fit the same models."""

    def __init__(
        self,
        kind: str = "logreg",
        params: dict[str, Any] | None = None,
        schema: Schema | None = None,
        task: str = "classification",
        n_classes: int = 0,
        seed: int = 0,
    ) -> None:
        self.kind, self.params, self.schema, self.task, self.n_classes, self.seed = (
            kind,
            params,
            schema,
            task,
            n_classes,
            seed,
        )

    def fit(self, X: Any, y: Any) -> MemberEstimator:
        self.member_ = member_class(self.kind)(
            self.task,  # type: ignore[arg-type]
            self.params or {},
            n_classes=self.n_classes,
            seed=self.seed,
        )
        self.member_.fit(X, np.asarray(y), self.schema)  # type: ignore[arg-type]
        self.classes_ = np.arange(self.n_classes)
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        return self.member_.predict(X)

    def predict(self, X: Any) -> np.ndarray:
        out = self.member_.predict(X)
        return np.argmax(out, axis=1) if self.task == "classification" else out


class MemberClassifier(ClassifierMixin, MemberEstimator):
    pass


class MemberRegressor(RegressorMixin, MemberEstimator):
    pass


def run_stacking(config: Any, data: Prepared) -> tuple[np.ndarray, float]:
    cls = MemberClassifier if data.task == "classification" else MemberRegressor
    estimators = [
        (s.name, cls(s.kind, s.params, data.schema, data.task, data.n_classes, config.seed))
        for s in config.members
    ]
    if data.task == "classification":
        cv: Any = StratifiedKFold(config.folds, shuffle=True, random_state=config.seed)
        model: Any = StackingClassifier(
            estimators, LogisticRegression(max_iter=2000), cv=cv, stack_method="predict_proba", n_jobs=2
        )
    else:
        cv = KFold(config.folds, shuffle=True, random_state=config.seed)
        model = StackingRegressor(estimators, RidgeCV(), cv=cv, n_jobs=2)
    start = time.perf_counter()
    model.fit(data.X_train, data.y_train)
    pred = model.predict_proba(data.X_test) if data.task == "classification" else model.predict(data.X_test)
    return pred, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--datasets", default=",".join(DATASETS[:5]))
    parser.add_argument("--quick", action="store_true", help="fewer members and epochs (a smoke run)")
    args = parser.parse_args()
    rows = []
    with local_cluster(2) as cluster:
        from distributed import Client

        with Client(cluster) as client:
            for source in args.datasets.split(","):
                for seed in range(args.seeds):
                    values: dict[str, Any] = {"data": source, "seed": seed, "store": "memory://bench"}
                    if args.quick:
                        values["members"] = [{"kind": k} for k in ("logreg", "hist_gb", "xgboost")]
                    config = make_config(values)
                    data = replace(prepare(config), bag=True)  # fold models kept: bags and refits
                    start = time.perf_counter()
                    oof, fitted, _ = fit_members(client, config, data, refit_too=True)
                    refits = {n: fitted[("refit", n)] for n in oof}
                    report = evaluate(data, oof, refits, config.method, config.ensemble_size)
                    bagged = evaluate(
                        data, oof, {n: fitted[n] for n in oof}, config.method, config.ensemble_size
                    )
                    t_accord = time.perf_counter() - start
                    pred, t_stack = run_stacking(config, data)
                    primary = report.primary
                    stack = score(data.task, data.y_test, pred, data.n_classes)[primary]
                    test_preds = [refits[n].test_predictions for n in report.members]
                    untempered = report.ensemble[primary]
                    if report.rule.weights is not None:  # the same weights without the temperature
                        plain = weighted_sum(test_preds, report.rule.weights)
                        untempered = score(data.task, data.y_test, plain, data.n_classes)[primary]
                    row = {
                        "data": source.split("?")[0],
                        "seed": seed,
                        "metric": primary,
                        "accord": report.ensemble[primary],
                        "accord_bag": bagged.ensemble[primary],
                        "accord_t1": untempered,
                        "temperature": report.rule.temperature,
                        "best_cv": report.baselines["best_cv_member"]["metrics"][primary],
                        "equal": report.baselines["equal_vote"]["metrics"][primary],
                        "stacking": stack,
                        "t_accord": t_accord,
                        "t_stack": t_stack,
                    }
                    rows.append(row)
                    print(
                        f"{row['data']:<34} seed {seed} {primary:<8} accord {row['accord']:.4f} "
                        f"bag {row['accord_bag']:.4f} "
                        f"(T={row['temperature']:.2f}; T=1: {untempered:.4f})  "
                        f"best-cv {row['best_cv']:.4f}  equal {row['equal']:.4f}  stacking {stack:.4f}  "
                        f"time accord {t_accord:6.1f}s stacking {t_stack:6.1f}s",
                        flush=True,
                    )
    ratio = lambda key: statistics.mean(r["accord"] / r[key] for r in rows)  # noqa: E731
    print("\nmean ratio of accord's held-out loss to (lower is better for accord; <= 1 meets the target):")
    for key in ("best_cv", "equal", "stacking"):
        wins = sum(r["accord"] <= r[key] for r in rows)
        print(f"  {key:<9} {ratio(key):.3f}   (accord at least as good in {wins}/{len(rows)} runs)")
    for key in ("best_cv", "stacking", "accord"):
        geo = statistics.geometric_mean(r["accord_bag"] / r[key] for r in rows)
        wins = sum(r["accord_bag"] <= r[key] for r in rows)
        print(f"  final: bag to {key:<9} {geo:.3f} (geometric mean; at least as good in {wins}/{len(rows)})")
    untempered = statistics.mean(r["accord_t1"] / r["stacking"] for r in rows)
    print(f"  (the same weights without the temperature, to stacking: {untempered:.3f})")
    t = statistics.mean(r["t_accord"] / r["t_stack"] for r in rows)
    print(f"mean wall-time ratio accord / stacking: {t:.3f}  (<= 1 meets the target)")


if __name__ == "__main__":
    main()

"""Privacy against quality: held-out loss and accuracy of DP members as epsilon grows.

Each table is split in two parties' halves. Party A publishes an ordinary (non-DP) ensemble
of logreg and hist_gb trained on its half. Party B trains on its own half, with feature
bounds taken from A's half (public to B: never computed from B's private rows), for each
epsilon in {0.5, 1, 2, 4, 8, inf} and each DP kind (``--kinds``):

* the DP member alone (inf: without DP, ``logreg`` for ``dp_logreg``, the same network
  for ``keras_mlp``), and
* an ensemble of it and A's version joined as a frozen ``published`` member (caruana
  weights), the collaboration without shared data; both from one run.

Epsilon is B's total over every fit that reads a row (K-1 fold fits and the refit),
at delta 1e-5, by dp-accounting's RDP accountant. The weights of the mixed ensemble are
not DP (see the manifest's ``privacy`` record). Prints held-out log loss and accuracy on
B's test rows, and the ratio of each loss to the non-DP one of the same row.

    python -m bench.privacy [--tables breast_cancer,wine,digits] [--kinds dp_logreg,keras_mlp] [--folds 5]
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import pandas as pd
from sklearn import datasets

from accord.config import make_config
from accord.ensembling.evaluation import evaluate
from accord.registry.publishing import publish, version_payload
from accord.registry.store import Registry
from accord.training.fit import fit_all
from accord.training.prepare import prepare

EPSILONS = (0.5, 1.0, 2.0, 4.0, 8.0, math.inf)
KERAS_EPOCHS = 10  # with DP: epochs / sample_rate steps per fit; the same network without DP (inf)
LOADERS = {
    "breast_cancer": datasets.load_breast_cancer,
    "wine": datasets.load_wine,
    "digits": datasets.load_digits,
    "iris": datasets.load_iris,
}


def halves(name: str, root: Path, seed: int) -> tuple[Path, Path, dict[str, list[float]]]:
    """Party A's and party B's halves as CSV files, and bounds of every feature from A's half."""
    frame = LOADERS[name](as_frame=True).frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    frame.columns = [str(c).replace(" ", "_").replace("(", "").replace(")", "") for c in frame.columns]
    a, b = frame.iloc[: len(frame) // 2], frame.iloc[len(frame) // 2 :]
    paths = root / f"{name}-a.csv", root / f"{name}-b.csv"
    a.to_csv(paths[0], index=False)
    b.to_csv(paths[1], index=False)
    features = a.drop(columns="target")
    bounds = {c: [float(features[c].min()), float(features[c].max())] for c in features.columns}
    bounds = {c: [low, high if high > low else low + 1.0] for c, (low, high) in bounds.items()}
    return paths[0], paths[1], bounds


def run(data: Path, members: list[dict[str, Any]], folds: int, seed: int) -> tuple[dict[str, Any], Any]:
    """Train `members` on `data` in this process; return the held-out metrics and the prepared run."""
    cfg = make_config(
        {"data": str(data), "target": "target", "members": members, "folds": folds, "seed": seed, "name": "b"}
    )
    p = prepare(cfg)
    oof, refits = fit_all(p, seed)
    return evaluate(p, oof, refits, "caruana").metrics(), p


def main() -> None:
    """Print the curve for each table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tables", default="breast_cancer,wine,digits")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--kinds", default="dp_logreg,keras_mlp", help="DP kinds: dp_logreg, keras_mlp")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="accord-bench-privacy-"))
    store = (root / "registry").as_uri()
    rows = []
    for table in args.tables.split(","):
        a_path, b_path, bounds = halves(table, root, args.seed)
        cfg = make_config(
            {
                "data": str(a_path),
                "target": "target",
                "members": [{"kind": "logreg"}, {"kind": "hist_gb", "params": {"max_iter": 100}}],
                "folds": args.folds,
                "name": "party-a",
            }
        )
        p = prepare(cfg)
        oof, refits = fit_all(p, args.seed)
        files, manifest = version_payload(
            p, refits, evaluate(p, oof, refits, "caruana"), config=cfg.model_dump()
        )
        parent = publish(Registry(store), f"{table}-a", files, manifest)
        published = {"kind": "published", "params": {"ref": parent}}
        for kind in args.kinds.split(","):
            for eps in EPSILONS:
                own = private_member(kind, eps, bounds)
                metrics, prepared = run(b_path, [own, published], args.folds, args.seed)
                label = own["kind"]
                spent = (
                    "inf"
                    if math.isinf(eps)
                    else f"{prepared.privacy['dp_members'][label]['epsilon_total']:.2f}"
                )
                rows.append(
                    {
                        "table": table,
                        "kind": kind,
                        "epsilon": eps,
                        "spent": spent,
                        "alone_log_loss": metrics["members"][label]["log_loss"],
                        "alone_accuracy": metrics["members"][label]["accuracy"],
                        "with_a_log_loss": metrics["ensemble"]["log_loss"],
                        "with_a_accuracy": metrics["ensemble"]["accuracy"],
                        "a_alone_log_loss": metrics["members"]["published"]["log_loss"],
                    }
                )
                print(f"{table} {kind} epsilon {eps}: done", flush=True)
    out = pd.DataFrame(rows)
    for (table, kind), part in out.groupby(["table", "kind"], sort=False):
        free = part[part["epsilon"] == math.inf].iloc[0]
        part = part.assign(
            alone_vs_no_dp=part["alone_log_loss"] / free["alone_log_loss"],
            with_a_vs_no_dp=part["with_a_log_loss"] / free["with_a_log_loss"],
        )
        a_alone = float(free["a_alone_log_loss"])
        print(
            f"\n{table!s}, {kind!s}: B's held-out rows; A's published ensemble alone: log loss {a_alone:.4f}"
        )
        columns = ["epsilon", "spent", "alone_log_loss", "alone_accuracy", "alone_vs_no_dp"]
        columns += ["with_a_log_loss", "with_a_accuracy", "with_a_vs_no_dp"]
        print(part[columns].to_string(index=False, float_format=lambda v: f"{v:.4f}"))


def private_member(kind: str, eps: float, bounds: dict[str, list[float]]) -> dict[str, Any]:
    """B's own member at `eps` (its non-DP counterpart at inf)."""
    if kind == "dp_logreg":
        if math.isinf(eps):
            return {"kind": "logreg"}
        return {"kind": "dp_logreg", "params": {"dp": {"epsilon": eps}, "feature_bounds": bounds}}
    network = {"hidden_units": [32], "epochs": KERAS_EPOCHS, "learning_rate": 0.01}
    if math.isinf(eps):
        return {"kind": "keras_mlp", "params": network}
    dp = {"dp": {"epsilon": eps}, "feature_bounds": bounds}
    return {"kind": "keras_mlp", "params": {**network, **dp}}


if __name__ == "__main__":
    main()

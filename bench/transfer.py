"""Transfer learning curve: few labelled rows, a pretrained parent vs training from scratch.

Scenario A (Keras): a CNN pretrained on all ten digits of one half of sklearn:digits is
the parent; the target task is digit parity (even/odd) on the other half with 25, 50,
100, 200 labelled rows per class. `keras_transfer` (new head, frozen body, then fine-tune)
vs the same CNN from scratch; and the ensemble {logreg, xgboost, keras_cnn} with and
without the transfer member.

Scenario B (XGBoost): the parent booster was trained on ten-digit labels of the first
half; the target is the same ten-digit task on the second half with few rows per class.
`xgboost_continue` vs a fresh XGBoost.

Everything is scored on every unlabelled row of the target half (hundreds of rows), so
the comparison is not at the mercy of a tiny test split. Members run on a Dask
LocalCluster of 2 workers through the same functions the flow's tasks wrap.

    python -m bench.transfer [--sizes 25,50,100,200] [--seeds 2]
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
from distributed import Client
from sklearn.model_selection import StratifiedKFold

from accord.config import make_config
from accord.data.dataset import load_dataset
from accord.data.split import Prepared, encode_target
from accord.ensembling.evaluation import evaluate
from accord.registry.publishing import version_payload
from accord.registry.store import Registry
from accord.training.prepare import prepare
from bench.common import fit_members, local_cluster, run_on_client


def pretrain(client: Client, store: str) -> str:
    config = make_config(
        {
            "data": "sklearn:digits?part=a",
            "folds": 2,
            "method": "equal",
            "store": store,
            "name": "digits10",
            "members": [
                {"kind": "keras_cnn", "params": {"epochs": 60}},
                {"kind": "xgboost", "params": {"n_estimators": 150}},
            ],
        }
    )
    data = prepare(config)
    report, _, _ = run_on_client(client, config, data)
    from accord.training.fit import fit_full

    refits = {s.label: fit_full(s, data, 0) for s in data.members}
    files, manifest = version_payload(data, refits, report, config={})
    version = Registry(store).publish("digits10", files, manifest)
    return f"{store}/digits10:{version}"


def few_labels(source: str, per_class: int, seed: int, members: list[dict], folds: int = 3) -> Prepared:
    """Training rows: `per_class` per target class; test rows: every other row of the source."""
    ds = load_dataset(source)
    y = encode_target(ds.y, ds)
    rng = np.random.default_rng(seed)
    train = np.sort(
        np.concatenate([rng.permutation(np.flatnonzero(y == c))[:per_class] for c in np.unique(y)])
    )
    test = np.setdiff1d(np.arange(len(y)), train)
    splitter = StratifiedKFold(folds, shuffle=True, random_state=seed)
    fold_idx = tuple((tr, va) for tr, va in splitter.split(np.zeros(len(train)), y[train]))
    config = make_config({"data": source, "members": members, "store": "memory://unused"})
    resolved = prepare(config).members  # pins and checks parents exactly as a run does
    return Prepared(
        ds.X.iloc[train].reset_index(drop=True),
        y[train],
        ds.X.iloc[test].reset_index(drop=True),
        y[test],
        fold_idx,
        ds.schema,
        ds.fingerprint,
        source,
        resolved,
    )


def run(client: Client, data: Prepared, method: str = "caruana") -> dict:
    config = make_config(
        {
            "data": data.source,
            "members": [m.model_dump() for m in data.members],
            "store": "memory://unused",
            "method": method,
        }
    )
    report, seconds, _ = run_on_client(client, config, data)
    return {"report": report, "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="25,50,100,200")
    parser.add_argument("--seeds", type=int, default=2)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    store = Path(tempfile.mkdtemp(prefix="accord-bench-transfer-")).as_uri()
    rows = []
    with local_cluster(2) as cluster, Client(cluster) as client:
        parent = pretrain(client, store)
        print(f"parent: {parent}", flush=True)
        transfer = {"kind": "keras_transfer", "params": {"parent": parent, "parent_member": "keras_cnn"}}
        scratch = {"kind": "keras_cnn"}
        base: list[dict[str, Any]] = [
            {"kind": "logreg"},
            {"kind": "xgboost", "params": {"n_estimators": 150}},
        ]
        for per_class in sizes:
            for seed in range(args.seeds):
                # scenario A: parity, `per_class` labelled rows per parity class
                a_all = few_labels(
                    "sklearn:digits?part=b&relabel=parity", per_class, seed, [*base, scratch, transfer]
                )
                config = make_config(
                    {
                        "data": a_all.source,
                        "members": [m.model_dump() for m in a_all.members],
                        "store": "memory://unused",
                    }
                )
                oof, refits, _ = fit_members(client, config, a_all)
                rep = evaluate(a_all, oof, refits, "caruana")
                without = [
                    n for n in oof if n != "keras_transfer"
                ]  # the same fits, minus the transfer member
                rep_without = evaluate(a_all, {n: oof[n] for n in without}, refits, "caruana")
                # scenario B: same ten-digit task on new rows
                b = few_labels(
                    "sklearn:digits?part=b",
                    max(2, per_class // 5),
                    seed,
                    [
                        {
                            "kind": "xgboost_continue",
                            "params": {"parent": parent, "parent_member": "xgboost", "n_estimators": 50},
                        },
                        {"kind": "xgboost", "params": {"n_estimators": 150}},
                    ],
                )
                rep_b = run(client, b)["report"]
                row = {
                    "per_class": per_class,
                    "seed": seed,
                    "transfer_acc": rep.test["keras_transfer"]["accuracy"],
                    "scratch_acc": rep.test["keras_cnn"]["accuracy"],
                    "ens_with_acc": rep.ensemble["accuracy"],
                    "ens_with_ll": rep.ensemble["log_loss"],
                    "ens_without_acc": rep_without.ensemble["accuracy"],
                    "ens_without_ll": rep_without.ensemble["log_loss"],
                    "continue_acc": rep_b.test["xgboost_continue"]["accuracy"],
                    "fresh_xgb_acc": rep_b.test["xgboost"]["accuracy"],
                    "b_rows_per_class": max(2, per_class // 5),
                }
                rows.append(row)
                print(
                    f"{per_class:>4}/class seed {seed}: transfer {row['transfer_acc']:.3f}  "
                    f"scratch {row['scratch_acc']:.3f}  "
                    f"ensemble with {row['ens_with_acc']:.3f} (ll {row['ens_with_ll']:.3f})  "
                    f"without {row['ens_without_acc']:.3f} (ll {row['ens_without_ll']:.3f})  |  "
                    f"{row['b_rows_per_class']}/class: continue {row['continue_acc']:.3f} "
                    f"fresh xgb {row['fresh_xgb_acc']:.3f}",
                    flush=True,
                )
    print("\nmeans over seeds:")
    curve = {}
    for n in sizes:
        sel = [r for r in rows if r["per_class"] == n]
        curve[n] = {k: float(np.mean([r[k] for r in sel])) for k in sel[0] if k not in ("per_class", "seed")}
        c = curve[n]
        print(
            f"  {n:>4}/class  transfer/scratch acc {c['transfer_acc'] / c['scratch_acc']:.3f}  "
            f"ensemble with/without log loss {c['ens_with_ll'] / c['ens_without_ll']:.3f}  "
            f"continue/fresh acc {c['continue_acc'] / c['fresh_xgb_acc']:.3f}"
        )
    for n in sizes:
        if 2 * n in curve and n <= 100:
            ok = curve[n]["transfer_acc"] >= curve[2 * n]["scratch_acc"]
            print(
                f"  transfer at {n}/class {curve[n]['transfer_acc']:.3f} vs scratch at {2 * n}/class "
                f"{curve[2 * n]['scratch_acc']:.3f}: {'meets' if ok else 'misses'} the target"
            )
    print("(accuracy and log loss on every unlabelled row of the target half)")


if __name__ == "__main__":
    main()

"""No loss on small data: the guarded ensemble against its CV-best member on the suite's small tables.

For each suite table (`bench.suite`) of at most ``--max-rows`` rows and each seed, the
run's members (accord's defaults, or a preset) are fitted as the flow fits them (every
fold and the refit, on a 2-worker LocalCluster). From the same out-of-fold predictions
come the weights accord publishes (guarded: `accord.ensembling.weights.guard`), the same
weights unguarded, and the CV-best member. Each is scored on the run's held-out rows with
log loss or RMSE; the ensemble's row loss (log loss, or squared error) minus the CV-best
member's is given with its standard error (paired on the same rows), so a gap under two
standard errors is within the split's noise.

Per table: the geometric mean over seeds of each loss ratio to the CV-best member; then
the cells where the ensemble is worse than its CV-best member beyond two standard errors.

    python -m bench.small [--seeds 3] [--max-rows 600] [--tables wine,hitters] [--preset default]
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

from accord.config import make_config
from accord.data.dataset import load_dataset
from accord.ensembling.evaluation import evaluate
from accord.ensembling.losses import paired_gap, row_losses
from accord.ensembling.metrics import score
from accord.ensembling.weights import fit_weights
from accord.training.prepare import prepare
from bench.common import fit_members, local_cluster
from bench.suite import Table, tables


def small_tables(max_rows: int, names: str | None) -> list[tuple[Table, int]]:
    """The suite's tables of at most `max_rows` rows (or those named), with their row counts."""
    out = []
    for table in tables(names=names):
        values = table.config_values()
        rows = len(load_dataset(values["data"], values.get("target"), table.task, list(table.ignore)).y)
        if names or rows <= max_rows:
            out.append((table, rows))
    return out


def cell(client: Any, table: Table, seed: int, preset: str | None) -> dict[str, Any]:
    """One table x seed: held-out losses of the guarded and unguarded ensembles and the CV-best member."""
    values: dict[str, Any] = {**table.config_values(), "seed": seed, "store": "memory://bench"}
    if preset:
        values["preset"] = preset
    config = make_config(values)
    data = prepare(config)
    start = time.perf_counter()
    oof, refits, _ = fit_members(client, config, data)
    report = evaluate(data, oof, refits, config.method, config.ensemble_size)
    seconds = time.perf_counter() - start
    names = report.members
    plain = fit_weights(
        [oof[n] for n in names],
        data.y_train,
        data.task,
        config.method,
        n_classes=data.n_classes,
        guarded=False,
    )
    test_preds = [refits[n].test_predictions for n in names]
    best = report.baselines["best_cv_member"]["member"]
    predictions = {
        "guarded": report.rule.combine(test_preds),
        "unguarded": plain.combine(test_preds),
        "best": refits[best].test_predictions,
    }
    primary = report.primary
    losses = {
        k: score(data.task, data.y_test, p, data.n_classes)[primary] or 0.0 for k, p in predictions.items()
    }
    rows = {k: row_losses(data.task, data.y_test, p) for k, p in predictions.items()}
    return {
        "table": table.name,
        "seed": seed,
        "metric": primary,
        "rows_train": len(data.y_train),
        **losses,
        "gap": paired_gap(rows["guarded"], rows["best"]),
        "gap_unguarded": paired_gap(rows["unguarded"], rows["best"]),
        "shrink": report.guard.get("shrink", 1.0),
        "best_member": best,
        "seconds": seconds,
    }


def beyond_noise(gap: dict[str, float]) -> bool:
    """Worse than the reference by more than two standard errors of the paired row losses."""
    return gap["gap"] > 2 * gap["se"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--max-rows", type=int, default=600)
    parser.add_argument(
        "--tables", default=None, help="comma-separated suite tables (default: the small ones)"
    )
    parser.add_argument("--preset", default=None, help="a preset instead of the default members")
    args = parser.parse_args()
    chosen = small_tables(args.max_rows, args.tables)
    print("tables:", ", ".join(f"{t.name} ({n} rows)" for t, n in chosen), flush=True)
    cells = []
    with local_cluster(2) as cluster:
        from distributed import Client

        with Client(cluster) as client:
            for table, _ in chosen:
                for seed in range(args.seeds):
                    c = cell(client, table, seed, args.preset)
                    cells.append(c)
                    g, u = c["gap"], c["gap_unguarded"]
                    print(
                        f"{c['table']:<15} seed {seed} {c['metric']:<8} guarded {c['guarded']:.4f} "
                        f"(share {c['shrink']:.2f})  unguarded {c['unguarded']:.4f}  "
                        f"best-cv {c['best']:.4f} ({c['best_member']})  "
                        f"row-loss gap {g['gap']:+.4f} ± {g['se']:.4f} "
                        f"(unguarded {u['gap']:+.4f} ± {u['se']:.4f})  "
                        f"{c['seconds']:.0f}s",
                        flush=True,
                    )
    print("\nper table, geometric mean over seeds of the loss ratio to the CV-best member (< 1: better):")
    ratios: dict[str, list[float]] = {"guarded": [], "unguarded": []}
    for table, rows in chosen:
        mine = [c for c in cells if c["table"] == table.name]
        line = []
        for key in ratios:
            r = statistics.geometric_mean(c[key] / c["best"] for c in mine)
            ratios[key].append(r)
            line.append(f"{key} {r:.3f}")
        worse = sum(beyond_noise(c["gap"]) for c in mine)
        print(
            f"  {table.name:<15} {rows:5d} rows  "
            + "  ".join(line)
            + f"  worse beyond noise {worse}/{len(mine)}"
        )
    for key, values in ratios.items():
        print(
            f"{key:<9}: over tables {statistics.geometric_mean(values):.3f}; worst table {max(values):.3f}; "
            f"tables more than 5% worse {sum(v > 1.05 for v in values)}/{len(values)}"
        )
    for key, gap in (("guarded", "gap"), ("unguarded", "gap_unguarded")):
        worse = sum(beyond_noise(c[gap]) for c in cells)
        print(
            f"{key:<9}: cells worse than the CV-best member beyond two standard errors: {worse}/{len(cells)}"
        )
    shares = [c["shrink"] for c in cells]
    print(
        f"guard's share of the fitted weights: mean {statistics.fmean(shares):.2f}, "
        f"whole in {sum(s == 1.0 for s in shares)}/{len(shares)} cells"
    )


if __name__ == "__main__":
    main()

"""The promotion gate: move an alias to a new version only when the policy allows it.

With ``if_better`` the incumbent (the version the alias points to) is scored on
the *same* held-out rows as the challenger, so the comparison is fair; an
incumbent that cannot score them (another schema) is never silently replaced.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from accord.data.split import Prepared
from accord.ensembling.evaluation import PRIOR, Report
from accord.ensembling.metrics import better, score
from accord.errors import AccordError
from accord.registry.refs import DEFAULT_ALIAS
from accord.registry.store import Registry
from accord.types import PromotionPolicy

Policy = PromotionPolicy


@dataclass(frozen=True)
class Baseline:
    """The trivial baseline (`accord.ensembling.evaluation.PRIOR`) against a challenger on the same rows.

    Attributes:
        score: The baseline's value of the primary metric.
        gap: The baseline's held-out loss minus the challenger's, per row (positive: the
            challenger loses less).
        se: The standard error of that gap.
    """

    score: float
    gap: float
    se: float

    @property
    def beaten(self) -> bool:
        """Whether the challenger loses less than the baseline by more than one standard error."""
        return self.gap > self.se

    @classmethod
    def of(cls, report: Report) -> Baseline:
        """The baseline of a run's report (its ``prior`` baseline and ``vs_ensemble`` gap)."""
        gap = report.vs_ensemble[PRIOR]
        value = report.baselines["prior"]["metrics"][report.primary]
        return cls(float(value), float(gap["gap"]), float(gap["se"]))


@dataclass(frozen=True)
class Decision:
    """What the gate did and why."""

    alias: str
    policy: str
    promoted: bool
    reason: str
    metric: str
    challenger: str
    challenger_score: float
    incumbent: str | None = None
    incumbent_score: float | None = None
    baseline_score: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready mapping."""
        return asdict(self)


def held_out(data: Prepared) -> Iterator[pd.DataFrame]:
    """The run's held-out features: in memory, or read chunk by chunk from a partitioned source."""
    if data.partitioned:
        from accord.data.parquet import held_out_frames

        yield from held_out_frames(data)
    else:
        yield data.X_test


def incumbent_score(registry: Registry, name: str, version: str, data: Prepared, metric: str) -> float:
    """Score the version `version` of `name` on the run's held-out rows."""
    from accord.ensembling.ensemble import load

    model = load(str(registry.ref(name, version)), weighted_only=True)
    if model.task != data.task:
        raise AccordError(f"incumbent {name}:{version} does {model.task}, the challenger {data.task}")
    if data.task == "classification" and list(model.schema.classes) != list(data.schema.classes):
        raise AccordError(
            f"incumbent classes {list(model.schema.classes)} differ from {list(data.schema.classes)}"
        )
    predict = model.predict_proba if data.task == "classification" else model.predict
    pred = np.concatenate([predict(frame) for frame in held_out(data)])  # one chunk's features at a time
    value = score(data.task, data.y_test, pred, data.n_classes)[metric]
    if value is None:
        raise AccordError(f"metric {metric} is undefined on the held-out rows")
    return float(value)


def promote(
    registry: Registry,
    name: str,
    version: str,
    data: Prepared,
    challenger_score: float,
    metric: str,
    *,
    baseline: Baseline,
    alias: str = DEFAULT_ALIAS,
    policy: Policy = "if_better",
) -> Decision:
    """Apply the promotion policy for a freshly published version and return the decision.

    Under ``if_better`` the alias moves only to a version that beats the trivial baseline
    (`Baseline.beaten`) and, when the alias is set, the incumbent on the same held-out rows.
    A version the alias already points to (a rerun that returned it) is left as it is.
    ``always`` moves the alias whatever the scores; ``never`` never does.

    The read of the incumbent, the comparison and the write of the alias happen
    under the alias lock, so two runs promoting at once never lose an update.
    """

    def decision(
        promoted: bool, reason: str, incumbent: str | None = None, old: float | None = None
    ) -> Decision:
        return Decision(
            alias, policy, promoted, reason, metric, version, challenger_score, incumbent, old, baseline.score
        )

    if policy == "never":
        return decision(False, "policy is 'never'")
    with registry.alias_lock(name, alias):
        current = registry.get_alias(name, alias)
        if current == version:
            return decision(True, f"{alias!r} already points to {version}; nothing moved", current)
        if policy == "always":
            registry.set_alias(name, alias, version)
            return decision(True, "policy is 'always'", current)
        if not baseline.beaten:
            why = (
                f"{metric} {challenger_score:.4f} does not beat the trivial baseline "
                f"({PRIOR}, {baseline.score:.4f}) by more than one standard error "
                f"(per-row loss gap {baseline.gap:+.4f} ± {baseline.se:.4f}): the version is published "
                f"for inspection, but {alias!r} " + (f"stays on {current}" if current else "stays unset")
            )
            return decision(False, why, current)
        if current is None:
            registry.set_alias(name, alias, version)
            return decision(True, f"alias {alias!r} was unset", current)
        try:
            old = incumbent_score(registry, name, current, data, metric)
        except Exception as e:  # the incumbent cannot be compared: keep it, say why
            return decision(
                False, f"kept {current}: it cannot be scored on this run's held-out data ({e})", current
            )
        if better(metric, challenger_score, old):
            registry.set_alias(name, alias, version)
            why = f"{metric} {challenger_score:.4f} beats the incumbent's {old:.4f} on the same held-out rows"
            return decision(True, why, current, old)
        why = f"{metric} {challenger_score:.4f} does not beat the incumbent's {old:.4f}; kept {current}"
        return decision(False, why, current, old)

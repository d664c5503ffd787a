"""A run's privacy account: what each DP member spends, the total, the budget, and what is not DP.

Out-of-fold training fits every row K−1 times (the fold fits whose training folds hold it)
plus once more in the refit (not with ``final: bag``), so a DP member's ε is the
composition over those fits (`accord.members.dp.accounted`), and the run's total is the
composition over every DP member, all by dp-accounting's RDP accountant. The record
says as plainly what is not DP: members trained without it, and the ensemble's weights
and temperature, fitted on out-of-fold predictions of the private rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from accord.config import MemberSpec, PrivacyBudget
from accord.errors import ConfigError
from accord.members import member_class

# Kinds that read the training rows only to predict them (a frozen published ensemble):
# they spend nothing of the rows' privacy themselves; the weights fitted on their
# predictions are accounted with the weights.
PREDICT_ONLY = frozenset({"published"})

NOT_DP_ALWAYS = [
    "the ensemble weights and the temperature: fitted on out-of-fold predictions of the training rows "
    "without DP",
    "the held-out metrics, baselines and importance published with the version (computed on the test rows)",
    "the schema: column names, types, category levels and class labels, taken from the data",
]


def fits_per_row(folds: int, bag: bool) -> int:
    """How many fits of one member read each training row: K−1 fold fits, plus the refit unless bagging."""
    return folds - 1 + (0 if bag else 1)


def is_private(spec: MemberSpec) -> bool:
    """Whether the member trains with differential privacy (`Member.is_private`)."""
    return member_class(spec.kind).is_private(spec.params)


def account(
    members: Sequence[MemberSpec], folds: int, bag: bool, budget: PrivacyBudget | None
) -> tuple[tuple[MemberSpec, ...], dict[str, Any] | None]:
    """Complete each DP member's noise and ε, check the budget, and return the members and the record.

    Args:
        members: The run's members, their references resolved.
        folds: K, the cross-validation folds.
        bag: Whether members predict with their fold models (no refit).
        budget: The most the run may spend, or None.

    Returns:
        The members (DP ones with ``dp`` complete: `accord.members.dp.accounted`) and the
        record the manifest keeps under ``privacy`` (None when no member is DP and no budget
        is set).

    Raises:
        ConfigError: with a budget, a member that trains without DP, or a total over the
            budget (each DP member's share named); before any training.
    """
    from accord.members.dp import accounted, epsilon_of

    private = [s for s in members if is_private(s)]
    if not private and budget is None:
        return tuple(members), None
    fits = fits_per_row(folds, bag)
    done = {
        s.label: s.model_copy(update={"params": {**_full(s), "dp": accounted(_full(s), fits)}})
        for s in private
    }
    out = tuple(done.get(s.label, s) for s in members)
    not_dp = [s.label for s in members if s.label not in done and s.kind not in PREDICT_ONLY]
    record: dict[str, Any] = {
        "dp_members": {label: dict(spec.params["dp"]) for label, spec in done.items()},
        "members_without_dp": not_dp,
        "not_dp": list(NOT_DP_ALWAYS),
    }
    if done:
        delta = budget.delta if budget else max(float(s.params["dp"]["delta"]) for s in done.values())
        events = [_event(s) for s in done.values()]
        from dp_accounting import ComposedDpEvent

        record["total"] = {
            "epsilon": epsilon_of(ComposedDpEvent(events), delta),
            "delta": delta,
            "over": f"{len(done)} DP member(s) x {fits} fit(s) reading each row",
        }
    if budget is not None:
        if not_dp:
            raise ConfigError(
                f"privacy_budget is set, but member(s) {not_dp} train on the rows without differential "
                "privacy (their epsilon is unbounded); use DP kinds only (dp_logreg), published members, or "
                "no privacy_budget."
            )
        total = record["total"]["epsilon"]
        if total > budget.epsilon:
            shares = ", ".join(
                f"{label} {epsilon_of(_event(spec), budget.delta):.3g}" for label, spec in done.items()
            )
            raise ConfigError(
                f"the DP members would spend epsilon {total:.3g} at delta {budget.delta:g} over {fits} "
                f"fits reading each row, more than privacy_budget's {budget.epsilon:g} (each alone: "
                f"{shares}); give them smaller dp.epsilon, or fewer folds, or a larger budget."
            )
        record["budget"] = budget.model_dump()
    return out, record


def _full(spec: MemberSpec) -> dict[str, Any]:
    """A DP member's parameters over its kind's defaults, ``dp`` merged key by key."""
    from accord.members.dp import DP_DEFAULTS

    defaults = member_class(spec.kind).default_params("classification")
    return {
        "sample_rate": 0.05,
        "feature_bounds": {},
        **defaults,
        **spec.params,
        "dp": {**DP_DEFAULTS, **spec.params["dp"]},
    }


def _event(spec: MemberSpec) -> Any:
    """The dp-accounting event of every fit of a DP member whose ``dp`` is complete."""
    from accord.members.dp import dp_event

    dp = spec.params["dp"]
    return dp_event(dp["noise_multiplier"], dp["sample_rate"], dp["steps_per_fit"], dp["fits_per_row"])

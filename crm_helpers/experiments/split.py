"""The planned split of an experiment and the sample-ratio check against it.

:func:`resolve_split` decides what the arms are checked against: the ``planned_split``
given; else the plan recorded in the assignments (a ``planned_share`` column, one value
per arm: :func:`crm_helpers.experiments.core.assignment_plan`, written by the lookalike
export); else equal arms *only* when the observed split is consistent with them (the
chi-square test against equal shares passes, or the largest arm is at most
:data:`EQUAL_SPLIT_MAX_RATIO` x the smallest); else no plan: the observed split (e.g.
80/20) is reported and the sample-ratio check is not run, so a verdict never rests on a
plan the data contradict. :func:`split_srm` runs the check
(:func:`crm_helpers.experiments.statistics.srm_test`) or returns a NaN result.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from crm_helpers.experiments import statistics as S
from crm_helpers.experiments.metrics import ExperimentError

__all__ = [
    "EQUAL_SPLIT_MAX_RATIO",
    "SplitPlan",
    "planned_weights",
    "resolve_split",
    "split_srm",
    "split_text",
]


def planned_weights(variants: list[str], planned_split: dict | None) -> dict[str, float]:
    """The planned share of each arm (normalised); equal when ``planned_split`` is empty.

    Arms in the plan that have no users are kept (weight > 0, observed 0); observed arms the
    plan lacks are an error.
    """
    if not planned_split:
        return {v: 1.0 / len(variants) for v in variants}
    plan = {str(k): float(v) for k, v in planned_split.items()}
    missing = [v for v in variants if v not in plan]
    if missing:
        raise ExperimentError(
            f"planned_split lacks variant(s) {', '.join(map(repr, missing))}; "
            f"give a share for each of {', '.join(map(repr, variants))}"
        )
    if any(w < 0 for w in plan.values()) or sum(plan.values()) <= 0:
        raise ExperimentError(f"planned_split shares must be >= 0 and not all 0: {plan}")
    total = sum(plan.values())
    return {k: w / total for k, w in plan.items()}


#: Without a planned split, equal arms are assumed only when the largest observed arm is at
#: most this many times the smallest (or the split passes the SRM check against equal arms).
EQUAL_SPLIT_MAX_RATIO = 1.25


@dataclass(frozen=True)
class SplitPlan:
    """The planned split a readout checks the arms against (:func:`resolve_split`).

    Attributes
    ----------
    weights
        ``variant -> planned share`` (sums to 1); empty when there is no plan to check.
    source
        ``given`` (the parameter), ``assignments`` (a plan column of the assignments),
        ``equal`` (assumed: the observed split is consistent with equal arms) or ``none``
        (not checked: the observed split is far from equal arms).
    how
        How the plan was derived (empty when given), for the report's "(derived: ...)".
    observed
        The observed split in words, e.g. ``"80/20 (treatment/holdout)"``.
    """

    weights: dict[str, float]
    source: str
    how: str
    observed: str

    @property
    def checked(self) -> bool:
        """Whether the sample-ratio check is run (there is a plan, given or derived)."""
        return bool(self.weights)


def split_text(counts: dict[str, int]) -> str:
    """``"80/20 (treatment/holdout)"``: whole-percent shares of the arms, largest first."""
    total = sum(counts.values())
    if not total:
        return "no users"
    arms = sorted(counts, key=lambda v: (-counts[v], v))
    shares = "/".join(f"{100 * counts[v] / total:.0f}" for v in arms)
    return f"{shares} ({'/'.join(arms)})"


def resolve_split(
    counts: dict[str, int],
    planned_split: dict | None = None,
    plan_in_data: dict[str, float] | None = None,
    plan_column: str = "",
    srm_threshold: float = 0.001,
) -> SplitPlan:
    """The planned split: given, else recorded in the assignments, else equal arms only when
    the observed split is consistent with them, else none (the SRM check is not run).

    "Consistent with equal arms": the chi-square test against equal shares passes
    (p >= ``srm_threshold``) or the largest arm is at most :data:`EQUAL_SPLIT_MAX_RATIO` x
    the smallest (a near-equal split that fails the test is a sample-ratio mismatch of an
    equal plan). A split such as 80/20 is never checked against an assumed 50/50.

    Parameters
    ----------
    counts
        ``variant -> users analysed``.
    planned_split
        The parameter (``variant -> share``); empty: derived.
    plan_in_data
        ``variant -> share`` read from the assignments (:func:`core.assignment_plan`).
    plan_column
        The column it was read from (for the label).
    """
    variants = sorted(counts)
    observed = split_text(counts)
    if planned_split:
        return SplitPlan(planned_weights(variants, planned_split), "given", "", observed)
    if plan_in_data:
        weights = planned_weights(variants, plan_in_data)
        how = f"recorded in the assignments' {plan_column} column" if plan_column else ""
        return SplitPlan(weights, "assignments", how or "recorded in the assignments", observed)
    equal = planned_weights(variants, None)
    srm = S.srm_test(counts, equal)
    sizes = [n for n in counts.values()]
    ratio = max(sizes) / min(sizes) if min(sizes) > 0 else np.inf
    if srm.p_value >= srm_threshold or ratio <= EQUAL_SPLIT_MAX_RATIO:
        return SplitPlan(
            equal, "equal", f"equal shares of the arms: the observed split, {observed}, is "
            "consistent with them", observed,
        )  # fmt: skip
    return SplitPlan(
        {}, "none",
        f"not given, and the observed split {observed} is far from equal arms: no plan is "
        "assumed and the sample-ratio check is not run (pass planned_split to run it)",
        observed,
    )  # fmt: skip


def split_srm(counts: dict[str, int], plan: SplitPlan) -> S.SrmResult:
    """:func:`~crm_helpers.experiments.statistics.srm_test` against the plan; without a plan
    ``p_value`` and ``statistic`` are NaN (not checked) and ``expected`` is empty."""
    if plan.checked:
        return S.srm_test(counts, plan.weights)
    return S.SrmResult(float("nan"), float("nan"), {k: int(v) for k, v in counts.items()}, {})

"""One call from the notebook's parameters to the sufficient statistics of a readout.

:func:`prepare` resolves the defaults (experiment, control, planned split, data end, and the
analysis window when the data end before most users complete it), cleans the assignments
(summarized to one row per user: :mod:`crm_helpers.experiments.core`), builds the per-user
metrics once (cached in the engine: a few columns per assigned user), computes winsorizing
caps and the per-arm sufficient statistics, and runs the sample-ratio check against the
planned split (:func:`crm_helpers.experiments.analysis.resolve_split`; not run when there
is no plan and the observed split contradicts equal arms). Everything after it works on
small pandas frames.

:func:`metrics_for_data` adapts the metric parameters' *default values* to data without an
orders table (assignments + events): ``conversion`` becomes the share of users with a
purchase event in the window (``event:<purchase>``, the first purchase-like name of
:data:`crm_helpers.events.EVENT_STAGES` in the events, else the event with the
most users), and ``revenue`` among the secondary metrics is left out (the report says so).
The outcome is never an exposure or assignment event itself: names of
:data:`crm_helpers.events.EXPOSURE_EVENTS`, and events that half or more of their users
have at exactly their assignment time (the assignment's own log), are not chosen.
Any other metric that needs orders (``orders``, ``ratio:revenue/...``, an order metric as a
guardrail) is asked for explicitly and stays an error.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import ibis
import pandas as pd

from crm_helpers.experiments import analysis, core
from crm_helpers.experiments import statistics as S
from crm_helpers.experiments.core import coupon_redemptions  # re-exported: it lived here
from crm_helpers.experiments.metrics import ExperimentError, parse_metric

__all__ = ["MetricChoice", "Prepared", "coupon_redemptions", "metrics_for_data", "prepare"]


@dataclass
class Prepared:
    """What :func:`prepare` resolved and computed (see the module docstring)."""

    experiment_id: str
    experiment_how: str
    control: str
    control_how: str
    variants: list[str]
    weights: dict[str, float]
    assignments: core.Assignments
    per_user: object
    primary: str
    secondary: list[str]
    guardrails: list[str]
    winsorized: list[str]
    all_events: list[str]
    caps: dict[str, float]
    stats: pd.DataFrame
    srm: S.SrmResult
    notes: list[str] = field(default_factory=list)
    split: analysis.SplitPlan | None = None

    @property
    def analysis_window_days(self) -> float | None:
        """The window the readout used (derived when ``window_how`` is not empty)."""
        return self.assignments.window_days

    @property
    def window_how(self) -> str:
        return self.assignments.window_how

    @property
    def data_end(self) -> pd.Timestamp | None:
        return self.assignments.data_end

    @property
    def metrics(self) -> list[str]:
        return [self.primary, *self.secondary, *self.guardrails, *self.winsorized]


@dataclass(frozen=True)
class MetricChoice:
    """What :func:`metrics_for_data` chose: the metrics to compute, how the primary was
    derived (empty: as given) and the secondary metrics left out (with the reason)."""

    primary: str
    secondary: list[str]
    primary_how: str = ""
    left_out: dict[str, str] = field(default_factory=dict)
    exposure: list[str] = field(default_factory=list)


def metrics_for_data(data, primary_metric: str, secondary_metrics: list[str]) -> MetricChoice:
    """The notebook's default order metrics adapted to data without orders (module docstring).

    Parameters
    ----------
    data : CRMData
    primary_metric : str
    secondary_metrics : list of str

    Returns
    -------
    MetricChoice
        Unchanged when the data have orders, or have no events either.
    """
    secondary = list(secondary_metrics)
    if data.has("orders") or not data.has("events", "event", "user_id"):
        return MetricChoice(primary_metric, secondary)
    left_out = {
        m: "it needs an orders table, which the data lack" for m in secondary if m == "revenue"
    }
    secondary = [m for m in secondary if m not in left_out]
    if primary_metric != "conversion":
        return MetricChoice(primary_metric, secondary, "", left_out)
    from crm_helpers.events import is_exposure, stage_event

    users = _event_users(data)
    if users.empty:
        return MetricChoice(primary_metric, secondary, "", left_out)
    exposure = [
        e
        for e, n, at in zip(users["event"], users["users"], users["at_assignment"], strict=True)
        if is_exposure(e) or 2 * at >= n
    ]
    outcomes = users[~users["event"].isin(exposure)]
    names = set(outcomes["event"])
    purchase = stage_event("purchase", names)
    if purchase is not None:
        how = (
            f"the data have no orders table: conversion is the share of users with a "
            f"{purchase!r} event in the analysis window"
        )
    elif not outcomes.empty:
        purchase = str(outcomes["event"].iloc[0])
        how = (
            "the data have no orders table and no purchase event: the event with the most "
            f"users, {purchase!r}, is the outcome (share of users with it in the window)"
        )
    else:
        raise ExperimentError(
            "the events hold only the exposure/assignment event(s) "
            + ", ".join(map(repr, exposure))
            + ", which cannot be an outcome: give primary_metric (e.g. 'event:<name>') "
            "or add an orders table"
        )
    if exposure:
        how += (
            "; not "
            + ", ".join(map(repr, exposure))
            + ": the exposure/assignment itself, never an outcome"
        )
    primary = f"event:{purchase}"
    return MetricChoice(primary, [m for m in secondary if m != primary], how, left_out, exposure)


def _event_users(data) -> pd.DataFrame:
    """Per event name: ``users`` with it and ``at_assignment``, users with one at exactly
    an assignment time of theirs (any experiment); most users first."""
    ev = data.events
    users = ev.group_by("event").aggregate(users=ev.user_id.nunique())
    if data.has("assignments", "assigned_at"):
        a = data.assignments
        a = a.select(a_user=a.user_id, a_ts=a.assigned_at).distinct()
        j = ev.inner_join(a, (ev.user_id == a.a_user) & (ev.ts == a.a_ts))
        at = j.group_by("event").aggregate(at_assignment=j.user_id.nunique())
        users = users.left_join(at, "event").drop("event_right")
        users = users.mutate(at_assignment=users.at_assignment.fill_null(0))
    else:
        users = users.mutate(at_assignment=ibis.literal(0))
    df = users.to_pandas()
    df["event"] = df["event"].astype(str)
    return df.sort_values(["users", "event"], ascending=[False, True], kind="mergesort")


def _unique(xs) -> list[str]:
    out: list[str] = []
    for x in xs:
        if x and x not in out:
            out.append(x)
    return out


def prepare(
    data,
    *,
    experiment_id: str = "",
    control_variant: str = "",
    planned_split: dict | None = None,
    primary_metric: str = "conversion",
    secondary_metrics: list[str] = (),
    guardrail_metrics: list[str] = (),
    analysis_window_days: float = 14.0,
    pre_period_days: float = 0.0,
    winsorize_percentile: float = 0.0,
    coupon_code: str = "",
    economics_metrics: bool = True,
    data_end: str | pd.Timestamp | None = None,
    derive_window: bool = True,
) -> Prepared:
    """Resolve defaults and compute the readout's sufficient statistics.

    Parameters
    ----------
    data : CRMData
        Needs ``assignments`` and the tables of the metrics.
    experiment_id, control_variant, planned_split
        Empty: derived (:func:`analysis.choose_experiment`, :func:`analysis.choose_control`,
        :func:`analysis.resolve_split`); ``*_how`` and ``split.how`` say how.
    primary_metric, secondary_metrics, guardrail_metrics
        Metric names (:mod:`crm_helpers.experiments.metrics`).
    analysis_window_days, pre_period_days
        Per-user windows (:mod:`crm_helpers.experiments.core`).
    winsorize_percentile
        In (0, 100): each non-binary, non-ratio primary/secondary metric is also reported
        winsorized (``winsorized:<metric>``); 0: none.
    coupon_code
        Orders with this coupon are counted as redemptions (:func:`coupon_redemptions`).
    economics_metrics
        Also compute ``conversion`` and ``revenue`` when the data have orders (the money
        section needs them), without showing them as metrics.

    Returns
    -------
    Prepared

    Raises
    ------
    ExperimentError
        Unknown experiment or control, one variant only, a metric that needs a missing
        table, or no user left after cleaning.
    """
    experiment_id, exp_how = analysis.choose_experiment(data, experiment_id)
    shown = _unique([primary_metric, *secondary_metrics, *guardrail_metrics])
    specs = [parse_metric(m) for m in shown]
    winsorized = []
    if winsorize_percentile:
        for m in _unique([primary_metric, *secondary_metrics]):
            s = parse_metric(m)
            if not (s.binary or s.is_ratio or s.winsorized):
                winsorized.append(f"winsorized:{m}")
    extra = []
    if economics_metrics and data.has("orders"):
        extra = [m for m in ("conversion", "revenue") if m not in shown]
    computed = _unique([*shown, *winsorized, *extra])
    tables = set().union(*(parse_metric(m).tables for m in computed))
    end = pd.Timestamp(data_end) if data_end not in (None, "") else None
    asg = core.assigned_users(
        data, experiment_id, analysis_window_days, end=end, tables=tables,
        derive_window=derive_window,
    )  # fmt: skip
    analysis_window_days = asg.window_days
    control, ctrl_how = analysis.choose_control(
        {v: n for v, n in asg.raw_counts.items()}, control_variant
    )
    notes = list(asg.notes)
    plan_in_data, plan_col, plan_note = (None, "", "")
    if not planned_split:
        plan_in_data, plan_col, plan_note = core.assignment_plan(data, experiment_id)
    if plan_note:
        notes.append(plan_note)
    counts = {v: asg.counts.get(v, 0) for v in sorted(asg.raw_counts)}
    split = analysis.resolve_split(counts, planned_split or None, plan_in_data, plan_col)
    weights = split.weights
    variants = sorted(set(asg.counts) | set(weights))
    empty = [v for v in variants if asg.counts.get(v, 0) == 0]
    if control in empty:
        raise ExperimentError(
            f"the control arm {control!r} has no users to analyse; choose another control_variant"
        )
    if empty:
        notes.append(
            "Arm(s) with no users to analyse: "
            + ", ".join(empty)
            + " (shown with n = 0, not compared)."
        )
    specs = [parse_metric(m) for m in computed]
    per_user = core.per_user_metrics(
        data,
        asg,
        specs,
        analysis_window_days=analysis_window_days,
        pre_period_days=pre_period_days,
        coupon_code=coupon_code,
    ).cache()
    all_events = core.event_names(specs)
    caps = core.winsor_caps(per_user, winsorized, winsorize_percentile) if winsorized else {}
    stats = core.sufficient_stats(per_user, specs, caps=caps, all_events=all_events)
    srm = analysis.split_srm({v: asg.counts.get(v, 0) for v in variants}, split)
    return Prepared(
        experiment_id=experiment_id,
        experiment_how=exp_how,
        control=control,
        control_how=ctrl_how,
        variants=variants,
        weights=weights,
        assignments=asg,
        per_user=per_user,
        primary=primary_metric,
        secondary=[m for m in shown if m in secondary_metrics and m != primary_metric],
        guardrails=[
            m
            for m in shown
            if m in guardrail_metrics and m not in secondary_metrics and m != primary_metric
        ],
        winsorized=winsorized,
        all_events=all_events,
        caps=caps,
        stats=stats,
        srm=srm,
        notes=notes,
        split=split,
    )

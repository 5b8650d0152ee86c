"""Readout tables of an experiment: what the notebook shows, what the tests check.

Each function takes sufficient statistics (from :mod:`crm_helpers.experiments.core`) or the
data set and returns a small pandas DataFrame; nothing here draws.

Semantics
---------
* Defaults derived from the data: the experiment is the only one in ``assignments`` or the
  latest (by last assignment); the control is the variant named ``control``, else
  ``holdout``, else the largest arm. The planned split (:func:`resolve_split`) is the
  ``planned_split`` given, else the plan recorded in the assignments (a ``planned_share``
  column), else equal arms *only* when the observed split is consistent with them; an
  observed split far from equal (e.g. 80/20) is reported as it is and the sample-ratio check
  is not run (never against an assumed plan the data contradict).
* :func:`arms_table`: one row per arm and metric. Control rows carry ``n`` and ``mean``;
  every other row compares the arm with the control (:func:`~crm_helpers.experiments.
  statistics.compare`, Bayesian chance to beat control and expected loss). ``p_adjusted``
  corrects across the non-control arms x primary and secondary metrics (Holm or
  Benjamini-Hochberg); guardrail metrics are corrected among themselves, and their
  ``ni_p_value`` tests non-inferiority within ``non_inferiority_margin`` (relative).
* :func:`cuped_table`: the same comparisons with the pre-period covariate (CUPED), with the
  variance reduction achieved.
* :func:`sequential_path`: per assignment day, the cumulative estimate of each arm vs the
  control with the fixed-horizon interval and the always-valid confidence sequence.
* :func:`segment_table`: the primary metric per segment, Benjamini-Hochberg across
  segments and arms; exploratory.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from crm_helpers.experiments import core
from crm_helpers.experiments import statistics as S
from crm_helpers.experiments.metrics import ExperimentError, MetricSpec, parse_metric
from crm_helpers.experiments.split import (
    EQUAL_SPLIT_MAX_RATIO,
    SplitPlan,
    planned_weights,
    resolve_split,
    split_srm,
    split_text,
)

__all__ = [
    "EQUAL_SPLIT_MAX_RATIO",
    "SplitPlan",
    "arms_table",
    "choose_control",
    "choose_experiment",
    "cuped_table",
    "planned_weights",
    "resolve_split",
    "segment_table",
    "sequential_path",
    "split_srm",
    "split_text",
    "stats_of",
]


def choose_experiment(data, experiment_id: str = "") -> tuple[str, str]:
    """``(experiment_id, how)``: the given one, else the only or the latest in the data."""
    known = core.list_experiments(data)
    if known.empty:
        raise ExperimentError("the assignments table holds no experiment")
    if experiment_id:
        if str(experiment_id) not in set(known["experiment_id"]):
            raise ExperimentError(
                f"experiment {experiment_id!r} is not in the assignments; experiments: "
                + ", ".join(map(repr, known["experiment_id"].head(20)))
            )
        return str(experiment_id), ""
    if len(known) == 1:
        return str(known["experiment_id"].iloc[0]), "the only experiment in the data"
    return str(known["experiment_id"].iloc[0]), "the latest experiment (last assignment)"


def choose_control(counts: dict[str, int], control_variant: str = "") -> tuple[str, str]:
    """``(control, how)``: the given variant, else ``control``, ``holdout`` or the largest arm.

    Raises
    ------
    ExperimentError
        The given control is not a variant, or there is only one variant.
    """
    variants = list(counts)
    if len(variants) < 2:
        raise ExperimentError(
            f"the experiment has only one variant ({', '.join(map(repr, variants))}): there is "
            "nothing to compare it with"
        )
    if control_variant:
        if control_variant not in counts:
            raise ExperimentError(
                f"control_variant {control_variant!r} is not a variant of this experiment; "
                f"variants: {', '.join(map(repr, variants))}"
            )
        return control_variant, ""
    for name in ("control", "holdout"):
        if name in counts:
            return name, f"the variant named {name!r}"
    largest = max(variants, key=lambda v: (counts[v], v))
    return largest, "the largest arm (no variant is named 'control' or 'holdout')"


def stats_of(row: pd.Series, spec: MetricSpec, cuped: bool = False):
    """The statistics object of one row of :func:`core.sufficient_stats` (arrays work too)."""
    if spec.is_ratio:
        num = S.MeanStats(row["n"], row["sum"], row["sum_sq"], spec.numerator.binary)
        den = S.MeanStats(row["n"], row["den_sum"], row["den_sum_sq"], spec.denominator.binary)
        return S.RatioStats(num, den, row["num_den_sum"])
    post = S.MeanStats(row["n"], row["sum"], row["sum_sq"], spec.binary)
    if not cuped:
        return post
    pre = S.MeanStats(row["n"], row["pre_sum"], row["pre_sum_sq"], spec.binary)
    return S.CupedStats(post, pre, row["cross_sum"])


def _row(stats: pd.DataFrame, variant: str, metric: str) -> pd.Series:
    """The statistics of one arm and metric; all 0 for an arm with no users."""
    hit = np.flatnonzero(
        (stats["variant"].to_numpy() == variant) & (stats["metric"].to_numpy() == metric)
    )
    if not len(hit):
        return pd.Series({c: 0.0 for c in core.STAT_COLUMNS})
    return stats.iloc[hit[0]]


def arms_table(
    stats: pd.DataFrame,
    control: str,
    *,
    primary: str,
    secondary: list[str] = (),
    guardrails: list[str] = (),
    winsorized: list[str] = (),
    variants: list[str] | None = None,
    alpha: float = 0.05,
    alternative: str = "two-sided",
    correction: str = "holm",
    non_inferiority_margin: float = 0.02,
    higher_is_better: dict[str, bool] | None = None,
) -> pd.DataFrame:
    """Every arm vs the control on every metric (see the module docstring).

    Parameters
    ----------
    stats : DataFrame
        :func:`core.sufficient_stats` by variant.
    control : str
    primary, secondary, guardrails : metric names
    winsorized : metric names
        Shown beside the raw metric (role ``winsorized``), not in the corrected family.
    variants : list of str, optional
        Arms to show (an arm with no users gets ``n = 0`` and NaN statistics); default the
        variants in ``stats``.
    alpha, alternative, correction
        Level, ``two-sided``/``greater``/``less``, ``holm``/``bh``/``none``.
    non_inferiority_margin : float
        Relative margin of the guardrails' non-inferiority test.
    higher_is_better : dict, optional
        ``metric -> bool`` (default True: a guardrail must not drop).

    Returns
    -------
    DataFrame
        Columns ``variant, metric, role, n, mean, diff, diff_ci_low, diff_ci_high, rel_lift,
        rel_ci_low, rel_ci_high, p_value, p_adjusted, significant, chance_to_beat_control,
        expected_loss, ni_p_value, ni_bound, non_inferior, harmed`` (``harmed``: a guardrail
        significantly worse, two-sided uncorrected p < alpha); control rows first per metric.
    """
    variants = variants or sorted(stats["variant"].unique())
    roles = {primary: "primary"}
    roles.update({m: "secondary" for m in secondary if m not in roles})
    roles.update({m: "guardrail" for m in guardrails if m not in roles})
    roles.update({m: "winsorized" for m in winsorized if m not in roles})
    hib = higher_is_better or {}
    rows = []
    for metric, role in roles.items():
        spec = parse_metric(metric)
        a_row = _row(stats, control, metric)
        a = stats_of(a_row, spec)
        rows.append(
            {
                "variant": control,
                "metric": metric,
                "role": role,
                "n": int(a_row["n"]),
                "mean": float(a.mean),
                "is_control": True,
            }
        )
        for v in [v for v in variants if v != control]:
            b_row = _row(stats, v, metric)
            b = stats_of(b_row, spec)
            c = S.compare(a, b, alpha=alpha, alternative=alternative)
            bay = S.bayesian(a, b, alpha=alpha)
            hb = hib.get(metric, True)
            ni_p, ni_bound = S.non_inferiority(a, b, non_inferiority_margin, alpha, hb)
            rows.append(
                {
                    "variant": v, "metric": metric, "role": role, "n": int(b_row["n"]),
                    "mean": float(b.mean), "is_control": False,
                    "diff": c.diff, "diff_ci_low": c.diff_ci_low, "diff_ci_high": c.diff_ci_high,
                    "rel_lift": c.rel_lift, "rel_ci_low": c.rel_ci_low,
                    "rel_ci_high": c.rel_ci_high, "p_value": c.p_value,
                    "chance_to_beat_control": bay.chance_to_beat_control,
                    "expected_loss": bay.expected_loss_treatment,
                    "ni_p_value": ni_p if role == "guardrail" else np.nan,
                    "ni_bound": ni_bound if role == "guardrail" else np.nan,
                }
            )  # fmt: skip
    out = pd.DataFrame(rows)
    for col in ("diff", "p_value", "ni_p_value", "ni_bound", "chance_to_beat_control"):
        if col not in out:
            out[col] = np.nan
    out["p_adjusted"] = np.nan
    tested = ~out["is_control"] & out["role"].isin(["primary", "secondary"])
    out.loc[tested, "p_adjusted"] = S.adjust_p_values(out.loc[tested, "p_value"], correction)
    guard = ~out["is_control"] & (out["role"] == "guardrail")
    if guard.any():
        out.loc[guard, "ni_p_value"] = S.adjust_p_values(out.loc[guard, "ni_p_value"], correction)
    out["significant"] = out["p_adjusted"] < alpha
    out["non_inferior"] = np.where(guard, out["ni_p_value"] < alpha, np.nan)
    worse = np.array([not hib.get(m, True) for m in out["metric"]])  # higher is worse
    bad_side = np.where(worse, out["diff"] > 0, out["diff"] < 0)
    out["harmed"] = guard & (out["p_value"] < alpha) & bad_side
    return out.drop(columns="is_control")


def cuped_table(
    stats: pd.DataFrame,
    control: str,
    metrics: list[str],
    *,
    variants: list[str] | None = None,
    alpha: float = 0.05,
    alternative: str = "two-sided",
) -> pd.DataFrame:
    """CUPED-adjusted comparisons (non-ratio metrics) and the variance reduction achieved.

    Returns
    -------
    DataFrame
        ``variant, metric, theta, variance_reduction, diff, diff_ci_low, diff_ci_high,
        rel_lift, rel_ci_low, rel_ci_high, p_value`` per non-control arm and metric.
    """
    variants = variants or sorted(stats["variant"].unique())
    rows = []
    for metric in metrics:
        spec = parse_metric(metric)
        if spec.is_ratio:
            continue
        a = stats_of(_row(stats, control, metric), spec, cuped=True)
        for v in [v for v in variants if v != control]:
            b = stats_of(_row(stats, v, metric), spec, cuped=True)
            c = S.compare(a, b, alpha=alpha, alternative=alternative)
            rows.append(
                {
                    "variant": v,
                    "metric": metric,
                    "theta": S.pooled_theta(a, b),
                    "variance_reduction": S.variance_reduction(a, b),
                    "diff": c.diff,
                    "diff_ci_low": c.diff_ci_low,
                    "diff_ci_high": c.diff_ci_high,
                    "rel_lift": c.rel_lift,
                    "rel_ci_low": c.rel_ci_low,
                    "rel_ci_high": c.rel_ci_high,
                    "p_value": c.p_value,
                }
            )
    return pd.DataFrame(rows)


def sequential_path(
    per_user,
    metric: str,
    control: str,
    *,
    alpha: float = 0.05,
    tuning: float = 5000.0,
    all_events: list[str] | None = None,
) -> pd.DataFrame:
    """Cumulative estimate by assignment day with fixed and always-valid intervals.

    Parameters
    ----------
    per_user : ibis.Table
        :func:`core.per_user_metrics`.
    metric : str
    control : str
    alpha, tuning
        Level and gbstats' sequential tuning parameter.

    Returns
    -------
    DataFrame
        ``day, variant, n_control, n, rel_lift, ci_low, ci_high`` (fixed horizon),
        ``seq_ci_low, seq_ci_high, seq_p_value`` per day (users assigned up to and including
        that day, each with their complete analysis window) and non-control arm.
    """
    spec = parse_metric(metric)
    day = per_user.assigned_at.truncate("D").name("day")
    st = core.sufficient_stats(per_user, [spec], by=["variant", day], all_events=all_events)
    st["day"] = pd.to_datetime(st["day"])
    days = np.sort(st["day"].unique())
    cols = list(core.STAT_COLUMNS)
    cum = {}
    for v, g in st.groupby("variant"):
        g = g.set_index("day")[cols].reindex(days, fill_value=0.0).cumsum()
        cum[v] = g
    if control not in cum:
        return pd.DataFrame()
    a = stats_of(cum[control], spec)
    out = []
    for v, g in cum.items():
        if v == control:
            continue
        b = stats_of(g, spec)
        c = S.compare(a, b, alpha=alpha)
        s = S.sequential(a, b, alpha=alpha, tuning=tuning)
        out.append(
            pd.DataFrame(
                {
                    "day": days,
                    "variant": v,
                    "n_control": cum[control]["n"].to_numpy(),
                    "n": g["n"].to_numpy(),
                    "rel_lift": c.rel_lift,
                    "ci_low": c.rel_ci_low,
                    "ci_high": c.rel_ci_high,
                    "seq_ci_low": s.ci_low,
                    "seq_ci_high": s.ci_high,
                    "seq_p_value": s.p_value,
                }
            )
        )
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame()


def segment_table(
    data,
    per_user,
    metric: str,
    control: str,
    segment_column: str,
    *,
    alpha: float = 0.05,
    min_segment_users: int = 200,
    all_events: list[str] | None = None,
) -> pd.DataFrame:
    """The metric's lift per segment (a ``users`` column), BH across segments and arms.

    Returns
    -------
    DataFrame
        ``segment, variant, n_control, n, diff, rel_lift, rel_ci_low, rel_ci_high, p_value,
        q_value, significant, small`` (``small``: an arm has fewer than
        ``min_segment_users``; not tested). Exploratory: the memo says so.
    """
    spec = parse_metric(metric)
    u = data.users.select("user_id", segment=data.users[segment_column].cast("string"))
    j = per_user.left_join(u, "user_id").drop("user_id_right")
    j = j.mutate(segment=j.segment.fill_null("(none)"))
    st = core.sufficient_stats(j, [spec], by=["variant", "segment"], all_events=all_events)
    rows = []
    for seg, g in st.groupby("segment"):
        a_row = _row(g, control, metric)
        for v in sorted(set(g["variant"]) - {control}):
            b_row = _row(g, v, metric)
            c = S.compare(stats_of(a_row, spec), stats_of(b_row, spec), alpha=alpha)
            small = min(a_row["n"], b_row["n"]) < min_segment_users
            rows.append(
                {
                    "segment": seg,
                    "variant": v,
                    "n_control": int(a_row["n"]),
                    "n": int(b_row["n"]),
                    "diff": c.diff,
                    "rel_lift": c.rel_lift,
                    "rel_ci_low": c.rel_ci_low,
                    "rel_ci_high": c.rel_ci_high,
                    "p_value": np.nan if small else c.p_value,
                    "small": bool(small),
                }
            )
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    out["q_value"] = S.adjust_p_values(out["p_value"], "bh")
    out["significant"] = out["q_value"] < alpha
    return out.sort_values(["variant", "n"], ascending=[True, False]).reset_index(drop=True)


def srm_table(srm: S.SrmResult, weights: dict[str, float]) -> pd.DataFrame:
    """Planned share, observed and expected users per arm, with the SRM p-value (NaN
    planned shares and p-value when there is no plan: not checked)."""
    rows = [
        {
            "variant": v,
            "planned_share": weights.get(v, np.nan),
            "users": srm.observed.get(v, 0),
            "expected_users": srm.expected.get(v, np.nan),
        }
        for v in (weights or srm.observed)
    ]
    out = pd.DataFrame(rows)
    out["observed_share"] = out["users"] / max(out["users"].sum(), 1)
    out["srm_p_value"] = srm.p_value
    return out


def posterior_table(
    stats: pd.DataFrame,
    control: str,
    metric: str,
    *,
    variants: list[str] | None = None,
    alpha: float = 0.05,
) -> pd.DataFrame:
    """Bayesian posterior of the relative lift per non-control arm: ``variant, mean, sd,
    ci_low, ci_high, chance_to_beat_control, expected_loss_control, expected_loss``."""
    spec = parse_metric(metric)
    variants = variants or sorted(stats["variant"].unique())
    a = stats_of(_row(stats, control, metric), spec)
    rows = []
    for v in [v for v in variants if v != control]:
        b = S.bayesian(a, stats_of(_row(stats, v, metric), spec), alpha=alpha)
        rows.append(
            {
                "variant": v,
                "mean": b.mean,
                "sd": b.sd,
                "ci_low": b.ci_low,
                "ci_high": b.ci_high,
                "chance_to_beat_control": b.chance_to_beat_control,
                "expected_loss_control": b.expected_loss_control,
                "expected_loss": b.expected_loss_treatment,
            }
        )
    return pd.DataFrame(rows)


def power_summary(
    stats: pd.DataFrame,
    control: str,
    metric: str,
    *,
    variants: list[str] | None = None,
    alpha: float = 0.05,
    power: float = 0.8,
    target_relative_lift: float = 0.05,
) -> pd.DataFrame:
    """Per non-control arm: minimum detectable effect of the sample at hand and users per arm
    needed for ``target_relative_lift`` (:func:`decision.power_table`; ratio metrics use the
    delta-method per-user standard deviation)."""
    from crm_helpers.experiments.decision import power_table

    spec = parse_metric(metric)
    variants = variants or sorted(stats["variant"].unique())
    a_row = _row(stats, control, metric)
    a = stats_of(a_row, spec)
    rows = []
    for v in [v for v in variants if v != control]:
        b_row = _row(stats, v, metric)
        sd = float(np.sqrt(a.variance)) if a_row["n"] > 1 else np.nan
        p = power_table(
            float(a.mean), sd, int(a_row["n"]), int(b_row["n"]), alpha=alpha, power=power,
            target_relative_lift=target_relative_lift,
        )  # fmt: skip
        rows.append(
            {
                "variant": v,
                "metric": metric,
                "n_control": int(a_row["n"]),
                "n": int(b_row["n"]),
                **p,
            }
        )
    return pd.DataFrame(rows)


def economics_table(
    prep,
    *,
    coupon_value: float = 0.0,
    send_cost_per_user: float = 0.0,
    gross_margin: float = 1.0,
    eligible_audience: int = 0,
    alpha: float = 0.05,
    revenue_is_gross: bool = False,
) -> list[dict]:
    """Campaign economics (:func:`decision.economics`) of each non-control arm of a
    :class:`~crm_helpers.experiments.readout.Prepared` readout (needs ``conversion`` and
    ``revenue`` among its statistics). ``revenue_is_gross``: subtract the coupon cost (the
    revenue is before the discount); default: revenue as customers paid it, the coupon cost
    a memo."""
    from crm_helpers.experiments.core import coupon_redemptions
    from crm_helpers.experiments.decision import economics

    st = prep.stats
    if not {"conversion", "revenue"} <= set(st["metric"]):
        return []
    redeemed = coupon_redemptions(prep.per_user) if coupon_value else {}
    out = []
    for v in [v for v in prep.variants if v != prep.control]:
        parts = {}
        for m in ("conversion", "revenue"):
            spec = parse_metric(m)
            c = S.compare(
                stats_of(_row(st, prep.control, m), spec), stats_of(_row(st, v, m), spec), alpha
            )
            parts[m] = (c.diff, c.diff_ci_low, c.diff_ci_high)
        n = int(_row(st, v, "revenue")["n"])
        e = economics(
            v, n, parts["conversion"], parts["revenue"], gross_margin=gross_margin,
            coupon_redemptions=redeemed.get(v, 0), coupon_value=coupon_value,
            send_cost_per_user=send_cost_per_user, eligible_audience=eligible_audience,
            revenue_is_gross=revenue_is_gross,
        )  # fmt: skip
        out.append(e.as_dict())
    return out

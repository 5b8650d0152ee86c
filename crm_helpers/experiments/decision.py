"""Power, campaign economics and the decision rule of an experiment readout.

Semantics
---------
* **Power** (normal approximation, statsmodels ``NormalIndPower``): the minimum detectable
  effect of the sample at hand (absolute and relative to the control mean, at ``alpha``
  two-sided and the chosen power, with the control's per-user standard deviation in both
  arms), and the users per arm needed to detect a chosen relative effect.
* **Economics** of the treated arm vs the control: incremental conversions and revenue are
  the per-user differences times the treated users (with their intervals); the incremental
  gross profit is ``gross_margin x`` incremental revenue. The coupons redeemed in the
  treated arm cost ``redemptions x coupon_value`` (``coupon_cost``). *Revenue is taken as
  customers paid it* (``revenue_is_gross=False``, the default): net of the discount, so the
  coupon's cost is already in it and is shown as a memo line, not subtracted again; only
  when ``revenue_is_gross`` (list prices before the discount) is it subtracted
  (``coupon_cost_deducted``). Costs are the deducted coupon cost and the sends (``treated
  users x send_cost_per_user``); net profit = gross profit - costs (its interval from the
  revenue interval; costs are taken as known); ROI = net profit / costs; the extrapolation
  scales the net profit per treated user to ``eligible_audience`` users.
* **Decision rule**, stated before the numbers: ship when the SRM check passes, the primary
  metric's adjusted p-value is below ``alpha``, the lower end of its relative-lift interval
  is at least ``min_relative_lift``, every guardrail is non-inferior and (when costs are
  given) the net profit is positive; don't ship when the SRM check fails, the upper end of
  the interval is below ``min_relative_lift`` for every arm, a guardrail is significantly
  worse, or the arm lifts but its net profit is not positive; else keep running (with the
  users per arm the planned effect needs).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["Economics", "Verdict", "decide", "economics", "power_table", "rule_text"]


def power_table(
    control_mean: float,
    control_sd: float,
    n_control: int,
    n_treatment: int,
    *,
    alpha: float = 0.05,
    power: float = 0.8,
    target_relative_lift: float = 0.05,
) -> dict:
    """MDE of the sample at hand and the users per arm for ``target_relative_lift``.

    Returns
    -------
    dict
        ``mde_abs, mde_rel, target_relative_lift, n_per_arm_needed`` (NaN when the control
        mean or standard deviation is 0 or a sample is empty).
    """
    from statsmodels.stats.power import NormalIndPower

    out = {
        "mde_abs": np.nan,
        "mde_rel": np.nan,
        "target_relative_lift": target_relative_lift,
        "n_per_arm_needed": np.nan,
        "power": power,
    }
    if not (control_sd > 0 and n_control > 0 and n_treatment > 0):
        return out
    pw = NormalIndPower()
    d = pw.solve_power(
        effect_size=None, nobs1=n_treatment, alpha=alpha, power=power, ratio=n_control / n_treatment
    )
    out["mde_abs"] = float(d * control_sd)
    if control_mean:
        out["mde_rel"] = float(d * control_sd / abs(control_mean))
        if target_relative_lift > 0:
            es = target_relative_lift * abs(control_mean) / control_sd
            out["n_per_arm_needed"] = float(
                np.ceil(
                    pw.solve_power(effect_size=es, nobs1=None, alpha=alpha, power=power, ratio=1.0)
                )
            )
    return out


@dataclass(frozen=True)
class Economics:
    """Money of one treated arm vs the control (see the module docstring); currency units."""

    variant: str
    treated_users: int
    incremental_conversions: float
    incremental_conversions_low: float
    incremental_conversions_high: float
    incremental_revenue: float
    incremental_revenue_low: float
    incremental_revenue_high: float
    gross_margin: float
    coupon_redemptions: int
    coupon_cost: float
    send_cost: float
    net_profit: float
    net_profit_low: float
    net_profit_high: float
    roi: float
    eligible_audience: int
    extrapolated_net_profit: float
    revenue_is_gross: bool = False
    coupon_cost_deducted: float = 0.0

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def economics(
    variant: str,
    treated_users: int,
    conversion_diff: tuple[float, float, float],
    revenue_diff: tuple[float, float, float],
    *,
    gross_margin: float = 1.0,
    coupon_redemptions: int = 0,
    coupon_value: float = 0.0,
    send_cost_per_user: float = 0.0,
    eligible_audience: int = 0,
    revenue_is_gross: bool = False,
) -> Economics:
    """Campaign economics from per-user differences ``(estimate, low, high)``.

    ``conversion_diff`` may be NaNs (no conversion metric); ``eligible_audience`` 0 means
    the treated users themselves; ``revenue_is_gross``: the revenue is before the coupon's
    discount, so the coupon cost is subtracted (default: net of it, a memo only).
    """
    n = float(treated_users)
    conv = [x * n for x in conversion_diff]
    rev = [x * n for x in revenue_diff]
    coupon_cost = coupon_redemptions * coupon_value
    deducted = coupon_cost if revenue_is_gross else 0.0
    send_cost = n * send_cost_per_user
    costs = deducted + send_cost
    net = [gross_margin * r - costs for r in rev]
    roi = net[0] / costs if costs > 0 else np.nan
    audience = int(eligible_audience) if eligible_audience else int(treated_users)
    extra = net[0] / n * audience if n > 0 else np.nan
    return Economics(
        variant, int(treated_users), *conv, *rev, gross_margin, int(coupon_redemptions),
        coupon_cost, send_cost, *net, roi, audience, extra, bool(revenue_is_gross), deducted,
    )  # fmt: skip


@dataclass(frozen=True)
class Verdict:
    """``decision`` is ``ship``, ``don't ship`` or ``keep running``; ``reason`` one sentence;
    ``variant`` the arm the verdict is about."""

    decision: str
    reason: str
    variant: str | None

    def as_dict(self) -> dict:
        return {"decision": self.decision, "reason": self.reason, "variant": self.variant}


def rule_text(
    primary: str,
    min_relative_lift: float,
    guardrails: list[str],
    margin: float,
    alpha: float,
    srm_checked: bool = True,
) -> str:
    """The decision rule in words (trusted text; metric names are escaped by the caller).

    ``srm_checked`` False: there is no planned split, so the rule says the split is not
    part of it."""
    g = (
        f"; no guardrail ({len(guardrails)}) worse than {margin:.1%} (non-inferiority)"
        if guardrails
        else ""
    )
    split = (
        "the traffic split is as planned (SRM p >= 0.001), "
        if srm_checked
        else "(no planned split is known, so the traffic split is not checked) "
    )
    return (
        f"Ship an arm if {split}its primary metric "
        f"lifts significantly (adjusted p < {alpha:g}) with the lower end of the relative-lift "
        f"interval at least {min_relative_lift:.1%}{g}, and the net profit is positive when "
        f"costs are given. Do not ship if {'the split is broken, ' if srm_checked else ''}"
        f"every interval excludes a lift of {min_relative_lift:.1%}, a guardrail is significantly worse, or the lift loses money. "
        "Otherwise keep running."
    )


def decide(
    arms: pd.DataFrame,
    *,
    srm_p_value: float,
    min_relative_lift: float = 0.0,
    alpha: float = 0.05,
    profits: dict[str, tuple[float, float, float]] | None = None,
    n_needed: float | None = None,
    srm_threshold: float = 0.001,
) -> Verdict:
    """Apply the decision rule (module docstring) to :func:`analysis.arms_table`.

    ``profits``: ``variant -> (net profit, low, high)`` when costs are given.
    ``srm_p_value`` NaN: the split was not checked (no plan), so it is not part of the rule.
    """
    if srm_p_value < srm_threshold:
        return Verdict(
            "don't ship",
            f"The traffic split differs from the plan (SRM p = {srm_p_value:.1e}), so the "
            "comparison is not trustworthy: fix the assignment and rerun.",
            None,
        )
    prim = arms[(arms["role"] == "primary") & arms["diff"].notna()]
    if prim.empty:
        return Verdict("keep running", "No arm has enough users to compare yet.", None)
    guard = arms[(arms["role"] == "guardrail") & arms["diff"].notna()]
    profits = profits or {}
    candidates = []
    for _, r in prim.iterrows():
        g = guard[guard["variant"] == r["variant"]]
        failing = g[~g["non_inferior"].astype(bool)] if len(g) else g
        harmed = g[g["harmed"].astype(bool)] if len(g) and "harmed" in g else g.iloc[:0]
        profit = profits.get(r["variant"])
        wins = (
            r["p_adjusted"] < alpha
            and r["rel_ci_low"] >= min_relative_lift
            and r["diff"] > 0
            and failing.empty
            and (profit is None or profit[0] > 0)
        )
        candidates.append((r, wins, failing, harmed, profit))
    winners = [c for c in candidates if c[1]]
    if winners:
        r = max(winners, key=lambda c: c[0]["rel_lift"])[0]
        return Verdict(
            "ship",
            f"{r['variant']} lifts {r['metric']} by {r['rel_lift']:+.1%} "
            f"(95% interval {r['rel_ci_low']:+.1%} to {r['rel_ci_high']:+.1%}), above the "
            f"{min_relative_lift:.1%} worth shipping, with no guardrail harmed.",
            str(r["variant"]),
        )
    best = max(
        candidates, key=lambda c: c[0]["rel_lift"] if pd.notna(c[0]["rel_lift"]) else -np.inf
    )
    r, _, failing, harmed, profit = best
    all_below = all(
        pd.notna(c[0]["rel_ci_high"]) and c[0]["rel_ci_high"] < min_relative_lift
        for c in candidates
    )
    if all_below:
        return Verdict(
            "don't ship",
            f"No arm reaches the {min_relative_lift:.1%} lift worth shipping on {r['metric']}: "
            f"the best, {r['variant']}, is at most {r['rel_ci_high']:+.1%}.",
            str(r["variant"]),
        )
    if not harmed.empty:
        names = ", ".join(harmed["metric"].astype(str))
        return Verdict(
            "don't ship",
            f"{r['variant']} is significantly worse than the control on the guardrail {names}.",
            str(r["variant"]),
        )
    if r["p_adjusted"] < alpha and r["diff"] > 0 and not failing.empty:
        names = ", ".join(failing["metric"].astype(str))
        return Verdict(
            "keep running",
            f"{r['variant']} lifts {r['metric']} by {r['rel_lift']:+.1%}, but is not yet shown "
            f"harmless on {names} (non-inferiority): more users are needed.",
            str(r["variant"]),
        )
    if r["p_adjusted"] < alpha and r["diff"] > 0 and profit is not None and profit[0] <= 0:
        return Verdict(
            "don't ship",
            f"{r['variant']} lifts {r['metric']} but loses money: net profit "
            f"{profit[0]:,.0f} ({profit[1]:,.0f} to {profit[2]:,.0f}).",
            str(r["variant"]),
        )
    more = (
        f"; about {n_needed:,.0f} users per arm are needed"
        if n_needed and np.isfinite(n_needed)
        else ""
    )
    return Verdict(
        "keep running",
        f"The result is not yet conclusive: {r['variant']} is at {r['rel_lift']:+.1%} on "
        f"{r['metric']} (interval {r['rel_ci_low']:+.1%} to {r['rel_ci_high']:+.1%}){more}.",
        str(r["variant"]),
    )

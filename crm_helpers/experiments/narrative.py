"""Words of an experiment readout: the decision memo and the records of ``metrics.json``.

Every line is safe Markdown built with :func:`crm_helpers.report.text.md`: variant, metric
and experiment names come from the data and are escaped.

``metrics.json`` keys (an interface, see issue #9): ``srm`` ``{p_value, observed,
expected}`` (issue #21 adds ``checked``, ``plan_source``, ``observed_split``; ``p_value`` is
None when there is no plan to check against); ``arms``: one record per arm and metric with
exactly :data:`ARM_KEYS`; ``cuped``: ``{metric: variance reduction}`` (mean over the
non-control arms); ``economics``: one record per non-control arm (with ``revenue_is_gross``
and ``coupon_cost_deducted``); ``verdict`` ``{decision, reason, variant}``. The notebook
also records ``window_days`` and ``data_end`` (the analysis window and cut-off used) and
``assignment_rows`` ``{rows, users}``.
"""

from __future__ import annotations

import math

import pandas as pd

from crm_helpers.experiments.metrics import ExperimentError, parse_metric
from crm_helpers.report.currency import money
from crm_helpers.report.text import Safe, code, esc, md

__all__ = ["ARM_KEYS", "arm_records", "cuped_record", "memo", "srm_record", "verdict_line"]

ARM_KEYS = (
    "variant",
    "metric",
    "n",
    "mean",
    "diff",
    "diff_ci_low",
    "diff_ci_high",
    "rel_lift",
    "rel_ci_low",
    "rel_ci_high",
    "p_value",
    "chance_to_beat_control",
)


def _f(x):
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else x


def arm_records(arms: pd.DataFrame) -> list[dict]:
    """The ``arms`` records: exactly :data:`ARM_KEYS`; control rows carry ``n`` and ``mean``
    (the comparison fields are None)."""
    out = []
    for r in arms.to_dict(orient="records"):
        rec = {k: _f(r.get(k)) for k in ARM_KEYS}
        rec["n"] = int(r["n"])
        out.append(rec)
    return out


def srm_record(srm, split=None) -> dict:
    """``{p_value, observed, expected}`` of an :class:`~crm_helpers.experiments.statistics.SrmResult`,
    with ``checked`` (False: no plan, p-value None), ``plan_source`` and ``observed_split``
    when the :class:`~crm_helpers.experiments.analysis.SplitPlan` is given."""
    out = {"p_value": _f(srm.p_value), "observed": srm.observed, "expected": srm.expected}
    if split is not None:
        out.update(checked=split.checked, plan_source=split.source, observed_split=split.observed)
    return out


def cuped_record(cuped: pd.DataFrame) -> dict:
    """``{metric: variance reduction}`` (mean over the non-control arms)."""
    if cuped is None or cuped.empty:
        return {}
    return {
        m: float(g["variance_reduction"].mean()) for m, g in cuped.groupby("metric", sort=False)
    }


def _split_hint(variants: list[str]) -> str:
    """The note of an assumed equal split, its example command naming the real ``variants``
    (the largest arm first, at 0.8; the others share 0.2)."""
    from crm_helpers.report.hints import pass_param

    example = {v: round(0.2 / (len(variants) - 1), 3) for v in variants[1:]} if variants else {}
    plan = {variants[0]: 0.8, **example} if len(variants) > 1 else {}
    return (
        " No planned split was given, so equal shares were assumed: if the plan was unequal, "
        "pass it" + pass_param("planned_split", plan, prefix=", e.g. ") + "."
    )


_PLAN_EXAMPLE = ' (e.g. `-p planned_split \'{"treatment": 0.8, "holdout": 0.2}\'`).'


def _pct(x) -> str:
    return "n/a" if x is None or pd.isna(x) else f"{x:+.1%}"


def means_in_words(metric: str, arm: float, control: float) -> str:
    """Two per-user means as a reader says them, the arm's first.

    ``"5.8% vs 4.5% converted"`` for ``conversion``; ``"5.8% vs 4.5% with a purchase
    event"`` for ``event:purchase``; ``"43.77 vs 23.15 revenue per user"`` (two decimals) for
    ``revenue``; else three significant digits ``"1.23 vs 1.05 per user"``.
    """
    try:
        spec = parse_metric(str(metric))
    except ExperimentError:
        spec = None
    if spec is not None and spec.binary:
        what = "converted" if spec.kind == "conversion" else f"with a {spec.event} event"
        return f"{arm:.1%} vs {control:.1%} {what}"
    if spec is not None and spec.kind == "revenue" and not spec.is_ratio:
        return f"{arm:,.2f} vs {control:,.2f} revenue per user"
    return f"{arm:,.3g} vs {control:,.3g} per user"


def memo(
    *,
    experiment_id: str,
    control: str,
    verdict,
    arms: pd.DataFrame,
    srm,
    srm_threshold: float = 0.001,
    economics: list[dict] | None = None,
    notes: list[str] = (),
    peeking_note: bool = True,
    segments_significant: int = 0,
    segments_small: int = 0,
    split_assumed: bool = False,
    split=None,
    currency: str = "",
) -> list[str]:
    """The decision memo: verdict, the effect in plain words, the money, the caveats.

    ``segments_significant`` / ``segments_small``: segment rows that stand out after FDR
    control / that are too small to be tested (each a caveat when > 0).
    ``split_assumed``: the planned split was not given (equal shares assumed); a failing
    sample-ratio check then says how to give the real plan (e.g. an 80/20 holdout).
    ``split``: the :class:`~crm_helpers.experiments.analysis.SplitPlan`; when it has no plan
    (the check was not run) a line says the observed split and that SRM needs
    ``planned_split``.
    ``currency``: the money's currency (:func:`crm_helpers.report.currency.money`: ``1,234 EUR``,
    ``€1,234``; empty: the amount alone).

    Returns
    -------
    list of str
        Safe Markdown lines (bullets of the report summary).
    """
    lines = []
    if srm.p_value < srm_threshold:
        shares = ", ".join(f"{esc_name(k)} {v:,}" for k, v in srm.observed.items())
        lines.append(
            md(
                "⚠️ **Sample-ratio mismatch**: the arms' sizes ({shares}) differ from the planned "
                "split (chi-square p = {p:.1e}). Results below are not trustworthy until the "
                "assignment is fixed.{hint}",
                shares=Safe(shares),
                p=srm.p_value,
                hint=Safe(
                    _split_hint(sorted(srm.observed, key=lambda v: -srm.observed[v]))
                    if split_assumed
                    else ""
                ),
            )
        )
    if split is not None and not split.checked:
        arms_order = sorted(srm.observed, key=lambda k: (-srm.observed[k], k))
        lines.append(
            md(
                "Sample ratio not checked: the arms are split {obs}, {sizes} users, and no "
                "planned_split was given, so no plan is assumed and the verdict does not rest "
                "on one. To check the split, pass the plan the test ran with, a share per arm"
                "{ex}",
                obs=split.observed,
                sizes="/".join(f"{srm.observed[k]:,}" for k in arms_order),
                ex=Safe(_PLAN_EXAMPLE),
            )
        )
    lines.append(verdict_line(verdict))
    prim = arms[(arms["role"] == "primary") & arms["diff"].notna()]
    for r in prim.itertuples():
        lines.append(
            md(
                "{v} vs {c} on {m}: {vals}, a relative change of {lift} "
                "(95% interval {lo} to {hi}); chance to beat control {ctw:.1%}.",
                v=code(r.variant),
                c=code(control),
                m=code(r.metric),
                vals=means_in_words(
                    r.metric,
                    r.mean,
                    float(
                        arms[(arms["metric"] == r.metric) & (arms["variant"] == control)][
                            "mean"
                        ].iloc[0]
                    ),
                ),
                lift=_pct(r.rel_lift),
                lo=_pct(r.rel_ci_low),
                hi=_pct(r.rel_ci_high),
                ctw=r.chance_to_beat_control
                if pd.notna(r.chance_to_beat_control)
                else float("nan"),
            )
        )
    for e in economics or []:
        gross = bool(e.get("revenue_is_gross", True))
        lines.append(
            md(
                "Money ({v}): {conv:,.0f} extra conversions and {rev} extra revenue from "
                "{n:,} treated users; after {costs} the net profit is {net} (95% interval "
                "{lo} to {hi}); on {aud:,} eligible users about {ext}.",
                v=code(e["variant"]),
                conv=e["incremental_conversions"],
                rev=money(e["incremental_revenue"], currency),
                n=e["treated_users"],
                costs=Safe(
                    md(
                        "coupons ({cc}) and sends ({sc})",
                        cc=money(e["coupon_cost"], currency),
                        sc=money(e["send_cost"], currency),
                    )
                    if gross
                    else md("sends ({sc})", sc=money(e["send_cost"], currency))
                ),  # fmt: skip
                net=money(e["net_profit"], currency),
                lo=money(e["net_profit_low"], currency),
                hi=money(e["net_profit_high"], currency),
                aud=e["eligible_audience"],
                ext=money(e["extrapolated_net_profit"], currency),
            )
        )
        if e.get("coupon_redemptions") and not gross:
            lines.append(
                md(
                    "Memo ({v}): {k:,} coupon redemptions worth {cc} in discounts are "
                    "already in the revenue, which is what customers paid (net of the "
                    "discount), so they are not subtracted again; pass "
                    "`-p revenue_is_gross true` if revenue is before discounts.",
                    v=code(e["variant"]),
                    k=e["coupon_redemptions"],
                    cc=money(e["coupon_cost"], currency),
                )
            )
    caveats = [esc(n) for n in notes]
    if peeking_note:
        caveats.append(
            Safe(
                "Looked at more than once? Trust the always-valid (sequential) interval in "
                "the *Over time* section, not the fixed one."
            )
        )
    if segments_significant:
        caveats.append(
            md(
                "{k} segment effect(s) stand out after FDR control: exploratory, confirm in a "
                "new test before acting on them.",
                k=segments_significant,
            )
        )
    if segments_small:
        caveats.append(
            md(
                "{k} segment row(s) are too small to test (shown, not tested); read nothing "
                "into their lifts.",
                k=segments_small,
            )
        )
    lines += [md("Caveat: {c}", c=c) for c in caveats]
    head = md("Experiment {e}, control {c}.", e=code(experiment_id), c=code(control))
    lines.insert(1 if srm.p_value < srm_threshold else 0, head)  # an SRM warning stays first
    return lines


def verdict_line(verdict) -> str:
    """``**Verdict: SHIP.** <reason>`` (the reason names arms and metrics: escaped)."""
    word = {"ship": "SHIP", "don't ship": "DON’T SHIP", "keep running": "KEEP RUNNING"}
    return md(
        "**Verdict: {d}.** {reason}",
        d=Safe(word.get(verdict.decision, esc(verdict.decision))),
        reason=verdict.reason,
    )


def esc_name(name) -> str:
    """A data name in monospace (escaped)."""
    return code(name)

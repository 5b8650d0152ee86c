"""Decision rule, economics, power and the memo: tiny tables with obvious answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.power import NormalIndPower

from crm_helpers.experiments import analysis, decision, narrative
from crm_helpers.experiments import statistics as S


def _stats(rows):
    """rows: (variant, metric, n, sum, sum_sq)."""
    df = pd.DataFrame(rows, columns=["variant", "metric", "n", "sum", "sum_sq"])
    for c in ("pre_sum", "pre_sum_sq", "cross_sum", "den_sum", "den_sum_sq", "num_den_sum"):
        df[c] = 0.0
    return df


def _arms(conv_b, visits_b, n=20_000, guard=True):
    st = _stats(
        [
            ("control", "conversion", n, 0.10 * n, 0.10 * n),
            ("b", "conversion", n, conv_b * n, conv_b * n),
            ("control", "event_count:visit", n, 2.0 * n, 8.0 * n),
            ("b", "event_count:visit", n, visits_b * n, (visits_b**2 + 4.0) * n),
        ]
    )
    return analysis.arms_table(
        st, "control", primary="conversion", guardrails=["event_count:visit"] if guard else [],
        non_inferiority_margin=0.05,
    )  # fmt: skip


def test_ship_when_the_lift_is_clear_and_guardrails_hold():
    v = decision.decide(_arms(0.12, 2.0), srm_p_value=0.5, min_relative_lift=0.05)
    assert v.decision == "ship" and v.variant == "b"


def test_srm_overrides_everything():
    v = decision.decide(_arms(0.12, 2.0), srm_p_value=1e-6)
    assert v.decision == "don't ship" and "split" in v.reason


def test_dont_ship_when_the_interval_excludes_the_worthwhile_lift():
    v = decision.decide(_arms(0.1005, 2.0), srm_p_value=0.5, min_relative_lift=0.10)
    assert v.decision == "don't ship" and "worth shipping" in v.reason


def test_harmed_guardrail_blocks_and_unproven_guardrail_keeps_running():
    v = decision.decide(_arms(0.12, 1.8), srm_p_value=0.5)  # visits -10 %, significant
    assert v.decision == "don't ship" and "guardrail" in v.reason
    a = _arms(0.12, 1.97, n=2_000)  # -1.5 %: not significantly worse, not shown within 5 %
    row = a[a["role"] == "guardrail"].iloc[-1]
    assert not row["harmed"] and not row["non_inferior"]
    v = decision.decide(a, srm_p_value=0.5)
    assert v.decision == "keep running" and "not yet shown harmless" in v.reason


def test_lift_that_loses_money_is_not_shipped():
    v = decision.decide(
        _arms(0.12, 2.0, guard=False), srm_p_value=0.5, profits={"b": (-10.0, -50.0, 30.0)}
    )
    assert v.decision == "don't ship" and "loses money" in v.reason


def test_inconclusive_keeps_running_with_the_sample_needed():
    v = decision.decide(_arms(0.102, 2.0, guard=False), srm_p_value=0.5, n_needed=50_000)
    assert v.decision == "keep running" and "50,000 users per arm" in v.reason


def test_economics_arithmetic():
    e = decision.economics(
        "b", 1000, (0.02, 0.01, 0.03), (1.5, 0.5, 2.5), gross_margin=0.4,
        coupon_redemptions=50, coupon_value=2.0, send_cost_per_user=0.01, eligible_audience=10_000,
        revenue_is_gross=True,  # list-price revenue: the coupon cost is subtracted
    )  # fmt: skip
    assert e.incremental_conversions == pytest.approx(20)
    assert e.incremental_revenue == pytest.approx(1500)
    assert e.coupon_cost == 100 and e.send_cost == pytest.approx(10)
    assert e.net_profit == pytest.approx(0.4 * 1500 - 110)
    assert (e.net_profit_low, e.net_profit_high) == pytest.approx(
        (0.4 * 500 - 110, 0.4 * 2500 - 110)
    )
    assert e.roi == pytest.approx((0.4 * 1500 - 110) / 110)
    assert e.extrapolated_net_profit == pytest.approx(e.net_profit * 10)


def test_power_equals_statsmodels():
    p = decision.power_table(0.1, 0.3, 5000, 5000, alpha=0.05, power=0.8, target_relative_lift=0.1)
    d = NormalIndPower().solve_power(nobs1=5000, alpha=0.05, power=0.8, ratio=1.0)
    assert p["mde_abs"] == pytest.approx(d * 0.3, rel=1e-6)
    n = NormalIndPower().solve_power(effect_size=0.01 / 0.3, alpha=0.05, power=0.8, ratio=1.0)
    assert p["n_per_arm_needed"] == np.ceil(n)
    assert np.isnan(decision.power_table(0.0, 0.0, 10, 10)["mde_abs"])


def test_memo_escapes_names_and_puts_an_srm_warning_first():
    arms = _arms(0.12, 2.0).replace({"b": "<b>x</b>"})
    srm = S.srm_test({"control": 1000, "<b>x</b>": 800}, {"control": 0.5, "<b>x</b>": 0.5})
    v = decision.decide(arms, srm_p_value=srm.p_value)
    lines = narrative.memo(experiment_id="e_1", control="control", verdict=v, arms=arms, srm=srm)
    assert "Sample-ratio mismatch" in lines[0]
    assert "DON’T SHIP" in lines[2]
    assert all("<b>" not in line for line in lines)
    assert "&lt;b&gt;" in "".join(lines)


def test_arm_records_have_exactly_the_interface_keys():
    recs = narrative.arm_records(_arms(0.12, 2.0))
    assert all(tuple(sorted(r)) == tuple(sorted(narrative.ARM_KEYS)) for r in recs)
    ctrl = [r for r in recs if r["variant"] == "control"]
    assert ctrl and all(r["diff"] is None and r["n"] == 20_000 for r in ctrl)

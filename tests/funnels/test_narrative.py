"""Plain-language funnel summary: every number in the text comes from the tables given."""

from __future__ import annotations

import pandas as pd

from crm_helpers.funnels.narrative import funnel_summary, step_name


def _table(users, events=("visit", "view", "cart", "buy")) -> pd.DataFrame:
    n1 = users[0] or float("nan")
    return pd.DataFrame(
        {
            "step": range(1, len(users) + 1),
            "event": list(events)[: len(users)],
            "label": [None] * len(users),
            "users": users,
            "conversion_from_start": [u / n1 for u in users],
            "ci_low": [u / n1 - 0.01 for u in users],
            "ci_high": [u / n1 + 0.01 for u in users],
        }
    )


def test_overall_and_biggest_loss():
    text = funnel_summary(_table([1000, 800, 200, 100]))
    assert text[0].startswith("1,000 users started the funnel at 'visit'; 100 of them (10.0%")
    assert "reached 'buy'" in text[0]
    # largest count lost: view -> cart (600 = 75% of 800)
    assert "between 'view' and 'cart': 600 users (75.0% of those who reached 'view')" in text[1]
    # cart -> buy loses 50%: less than 75% so no extra 'weakest step' sentence
    assert len(text) == 2


def test_weakest_share_mentioned_when_it_differs_from_largest_count():
    text = funnel_summary(_table([1000, 500, 50]))
    assert "between 'visit' and 'view': 500 users" in text[1]  # 500 > 450 lost
    assert "'view' -> 'cart', where 90.0% drop off" in text[2]


def test_no_entrants():
    assert funnel_summary(_table([0, 0])) == [
        "No users did the first step ('visit') in the analysed period."
    ]


def _breakdown(groups):
    rows = []
    for g, (n1, n2, sig, small, q) in groups.items():
        for step, n in ((1, n1), (2, n2)):
            rows.append(
                {
                    "group": g,
                    "step": step,
                    "event": ["checkout", "purchase"][step - 1],
                    "users": n,
                    "significant": sig,
                    "small_group": small,
                    "q_value": q,
                }
            )
    return pd.DataFrame(rows)


def test_significant_group_vs_rest_from_counts():
    b = _breakdown(
        {
            "android": (400, 100, True, False, 0.001),
            "ios": (300, 150, False, False, 0.4),
            "web": (300, 150, False, False, 0.4),
            "tv": (10, 9, False, True, float("nan")),
        }
    )
    text = funnel_summary(_table([1010, 409]), b, by="platform")
    sig = [s for s in text if "significantly" in s]
    assert len(sig) == 1
    # android 100/400 = 25.0%; rest (ios+web+tv) 309/610 = 50.7%
    assert (
        "platform 'android' converts significantly lower than everyone else: 25.0% vs 50.7%"
        in sig[0]
    )
    assert "q = 0.001" in sig[0]
    assert any("1 platform group was too small to test" in s for s in text)


def test_uses_breakdown_rest_rate_when_given():
    b = _breakdown({"android": (400, 100, True, False, 0.01), "ios": (300, 150, False, False, 0.4)})
    b = b.assign(
        overall_conversion=b["group"].map({"android": 0.25, "ios": 0.5}),
        rest_conversion=b["group"].map({"android": 0.61, "ios": 0.3}),
    )
    text = funnel_summary(_table([700, 250]), b)
    assert any(
        "'android' converts significantly lower than everyone else: 25.0% vs 61.0%" in s
        for s in text
    )


def test_no_significant_group():
    b = _breakdown({"a": (100, 50, False, False, 0.5), "b": (100, 45, False, False, 0.5)})
    text = funnel_summary(_table([200, 95]), b)
    assert any("None of the 2 groups tested differs significantly" in s for s in text)


def test_sizing_sentences():
    sizing = pd.DataFrame(
        {
            "step": [1, 2],
            "event": ["visit", "view"],
            "audience": [200, 600],
            "net_value": [-5.0, 1234.4],
        }
    )
    text = funnel_summary(_table([1000, 800, 200]), sizing=sizing)
    assert "Drop-off audiences: 200 left after 'visit'; 600 left after 'view'." in text
    assert any("600 users who left after 'view': expected net value 1,234" in s for s in text)
    neg = funnel_summary(_table([1000, 800]), sizing=sizing.assign(net_value=[-1.0, -2.0]))
    assert any("no win-back campaign is expected to pay" in s for s in neg)


def test_step_name_prefers_label():
    assert step_name({"step": 2, "label": "Viewed", "event": "product_view"}) == "Viewed"
    assert step_name({"step": 2, "label": None, "event": "product_view"}) == "product_view"
    assert step_name({"step": 3}) == "step 3"


# --- notebook glue ---------------------------------------------------------------------------


def test_spec_from_params():
    from crm_helpers.funnels.core import FunnelSpec
    from crm_helpers.funnels.narrative import spec_from_params

    spec = spec_from_params(
        ["visit", "checkout", "purchase"],
        mode="strict",
        conversion_window_days=2,
        per_step_max_hours=[None, 1.5],
        exclusions=["refund", {"event": "logout", "from_step": 2, "to_step": 3}],
        start_date="2025-04-11",
        end_date="2025-04-25",
    )
    assert isinstance(spec, FunnelSpec)
    assert spec.mode == "strict" and spec.conversion_window_days == 2.0
    assert [s.event for s in spec.steps] == ["visit", "checkout", "purchase"]
    assert spec.steps[1].max_seconds_from_previous is None
    assert spec.steps[2].max_seconds_from_previous == 5400.0
    assert [(e.event, e.from_step, e.to_step) for e in spec.exclusions] == [
        ("refund", 1, None),
        ("logout", 2, 3),
    ]
    assert spec.start == pd.Timestamp("2025-04-11") and spec.end == pd.Timestamp("2025-04-25")
    plain = spec_from_params(["a", "b"])
    assert plain.start is None and plain.end is None and plain.exclusions == ()
    import pytest

    with pytest.raises(ValueError, match="one entry per step after the first"):
        spec_from_params(["a", "b", "c"], per_step_max_hours=[1.0])
    with pytest.raises(ValueError):
        spec_from_params(["a", "b"], start_date="2025-02-01", end_date="2025-01-01")


def test_step_metrics_fields():
    from crm_helpers.funnels.narrative import STEP_METRIC_COLUMNS, step_metrics

    t = _table([10, 4]).assign(
        conversion_from_previous=[1.0, 0.4], median_seconds_to_convert=[None, 30.0]
    )
    got = step_metrics(t.iloc[::-1])
    assert [m["users"] for m in got] == [10, 4]
    assert set(got[0]) == set(STEP_METRIC_COLUMNS)
    assert got[1]["median_seconds_to_convert"] == 30.0


def test_duration_bins():
    from crm_helpers.funnels.narrative import duration_bins

    b = duration_bins(7)
    assert (
        b[0] == 0 and b[-1] == 7 * 86400 and all(x < y for x, y in zip(b[:-1], b[1:], strict=True))
    )
    assert duration_bins(0.5) == [0, 10, 30, 60, 120, 300, 600, 1800, 3600, 10800, 21600, 43200]
    assert duration_bins(10)[-2:] == [7 * 86400, 10 * 86400]


def test_average_order_value_and_audience_profile():
    from types import SimpleNamespace

    import ibis

    from crm_helpers.funnels.narrative import (
        audience_profile,
        average_order_value,
        spec_from_params,
    )

    orders = pd.DataFrame(
        {"order_id": [1, 2, 3], "user_id": [1, 2, 3], "revenue": [10.0, 30.0, 100.0],
         "ts": pd.to_datetime(["2025-01-01", "2025-01-05", "2025-03-01"])}
    )  # fmt: skip
    data = SimpleNamespace(orders=ibis.memtable(orders))
    assert average_order_value(data) == pytest_approx(140 / 3)
    spec = spec_from_params(["a"], start_date="2025-01-01", end_date="2025-02-01")
    assert average_order_value(data, spec) == 20.0
    empty = SimpleNamespace(orders=ibis.memtable(orders.iloc[:0]))
    assert average_order_value(empty) == 0.0
    # a refund row is netted from the revenue, not counted as a (cheap) order:
    # (10 + 30 + 100 - 30) / 3 purchases, not the mean of four rows (27.5)
    refund = pd.DataFrame(
        {"order_id": [4], "user_id": [2], "revenue": [-30.0], "ts": pd.to_datetime(["2025-01-06"])}
    )
    with_refund = SimpleNamespace(orders=ibis.memtable(pd.concat([orders, refund])))
    assert average_order_value(with_refund) == pytest_approx(110 / 3)
    only_refunds = SimpleNamespace(orders=ibis.memtable(refund))
    assert average_order_value(only_refunds) == 0.0

    aud = ibis.memtable(
        pd.DataFrame({"user_id": [1, 2, 3, 4], "device": ["ios", "web", "ios", None]})
    )
    prof = audience_profile(aud, "device")
    assert prof.to_dict("list") == {
        "device": ["ios", "(missing)", "web"],
        "users": [2, 1, 1],
        "share": [0.5, 0.25, 0.25],
    }


def pytest_approx(x):
    import pytest

    return pytest.approx(x, rel=1e-12)

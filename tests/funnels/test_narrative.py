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

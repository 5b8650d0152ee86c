"""Funnel figures from tiny hand-made frames: traces, points, values, error bars and flags.

The figures only draw: these tests build the frames by hand (no engine) and check that the
numbers in ``fig.data`` are exactly the frame's numbers, mapped as documented.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from crm_helpers.plots import funnels as fp


@pytest.fixture
def table() -> pd.DataFrame:
    # 1000 entered, 600 viewed, 150 carted, 0 bought: hand-made funnel_table rows
    users = np.array([1000, 600, 150, 0])
    return pd.DataFrame(
        {
            "step": [1, 2, 3, 4],
            "label": ["visit", "view", None, "purchase"],
            "event": ["visit", "product_view", "add_to_cart", "purchase"],
            "users": users,
            "conversion_from_previous": [1.0, 0.6, 0.25, 0.0],
            "conversion_from_start": users / 1000,
            "ci_low": [0.996, 0.57, 0.13, 0.0],
            "ci_high": [1.0, 0.63, 0.17, 0.004],
            "dropoff": [0, 400, 450, 150],
            "dropoff_share": [0.0, 0.4, 0.75, 1.0],
        }
    )


def test_plot_funnel_bars_labels_and_error_bars(table):
    fig = fp.plot_funnel(table)
    assert isinstance(fig, go.Figure)
    assert len(fig.data) == 1
    bar = fig.data[0]
    assert bar.type == "bar"
    assert list(bar.y) == [1000, 600, 150, 0]
    # label when present, else the event name; numbered so repeated events stay distinct
    assert list(bar.x) == ["1. visit", "2. view", "3. add_to_cart", "4. purchase"]
    assert list(bar.text) == ["100.0%", "60.0%", "15.0%", "0.0%"]
    # CI of conversion_from_start on the users scale (x 1000 entrants)
    np.testing.assert_allclose(bar.error_y.array, [0.0, 30.0, 20.0, 4.0], atol=1e-9)
    np.testing.assert_allclose(bar.error_y.arrayminus, [4.0, 30.0, 20.0, 0.0], atol=1e-9)
    assert bar.error_y.symmetric is False


def test_plot_funnel_sorts_by_step(table):
    fig = fp.plot_funnel(table.iloc[::-1])
    assert list(fig.data[0].y) == [1000, 600, 150, 0]


def test_plot_dropoff_transitions_and_largest(table):
    fig = fp.plot_dropoff(table)
    assert len(fig.data) == 1
    bar = fig.data[0]
    assert len(bar.x) == 3  # n_steps - 1 transitions
    assert bar.x[0] == "1. visit → 2. view"
    assert list(bar.y) == [400, 450, 150]
    assert list(bar.text) == ["40.0%", "75.0%", "100.0%"]
    assert bar.meta["largest"] == 1
    assert bar.marker.color[1] == fp.HIGHLIGHT
    assert bar.marker.color[0] != fp.HIGHLIGHT


def test_plot_time_to_convert_bins_in_readable_unit():
    hist = pd.DataFrame(
        {
            "bin_start": [0.0, 3600.0, 7200.0],
            "bin_end": [3600.0, 7200.0, 10800.0],
            "users": [5, 3, 1],
        }
    )
    fig = fp.plot_time_to_convert(hist)
    assert len(fig.data) == 1
    bar = fig.data[0]
    assert bar.meta["unit"] == "hours"
    np.testing.assert_allclose(bar.x, [0.5, 1.5, 2.5])
    np.testing.assert_allclose(bar.width, [1.0, 1.0, 1.0])
    assert list(bar.y) == [5, 3, 1]


def test_plot_time_to_convert_unequal_bins_are_categories():
    hist = pd.DataFrame(
        {"bin_start": [0, 60, 600, 3600], "bin_end": [60, 600, 3600, 86400], "users": [4, 9, 2, 1]}
    )
    bar = fp.plot_time_to_convert(hist).data[0]
    assert bar.meta["unit"] == "category"
    assert list(bar.x) == ["0 s-1 min", "1 min-10 min", "10 min-1 h", "1 h-1 d"]
    assert list(bar.y) == [4, 9, 2, 1]


def test_plot_time_to_convert_alternative_columns_and_seconds():
    hist = pd.DataFrame({"left": [0, 10], "right": [10, 20], "count": [2, 7]})
    bar = fp.plot_time_to_convert(hist).data[0]
    assert bar.meta["unit"] == "seconds"
    np.testing.assert_allclose(bar.x, [5, 15])
    with pytest.raises(KeyError, match="bin_start"):
        fp.plot_time_to_convert(pd.DataFrame({"a": [1]}))


@pytest.fixture
def breakdown() -> pd.DataFrame:
    rows = []
    spec = {  # group: (rates per step 1..3, significant, small)
        "android": ([1.0, 0.5, 0.10], True, False),
        "ios": ([1.0, 0.6, 0.30], False, False),
        "web": ([1.0, 0.6, 0.28], False, False),
        "tv": ([1.0, 0.7, 0.40], False, True),
    }
    for group, (rates, sig, small) in spec.items():
        for step, r in enumerate(rates, start=1):
            rows.append(
                {
                    "group": group,
                    "step": step,
                    "event": ["visit", "checkout", "purchase"][step - 1],
                    "users": int(r * 100),
                    "conversion_from_start": r,
                    "ci_low": r - 0.05 if step > 1 else 0.97,
                    "ci_high": r + 0.04 if step > 1 else 1.0,
                    "significant": sig,
                    "small_group": small,
                }
            )
    return pd.DataFrame(rows)


def test_plot_breakdown_traces_flags_and_cis(breakdown):
    fig = fp.plot_breakdown(breakdown)
    assert len(fig.data) == 4  # one trace per group
    by_group = {t.meta["group"]: t for t in fig.data}
    assert set(by_group) == {"android", "ios", "web", "tv"}
    android = by_group["android"]
    # step 1 (always 100%) is left out by default: 2 points per group
    assert list(android.x) == ["2. checkout", "3. purchase"]
    np.testing.assert_allclose(android.y, [0.5, 0.1])
    np.testing.assert_allclose(android.error_y.array, [0.04, 0.04], atol=1e-12)
    np.testing.assert_allclose(android.error_y.arrayminus, [0.05, 0.05], atol=1e-12)
    assert android.meta["significant"] is True
    assert android.marker.line.width == 3 and android.marker.opacity == 1.0
    assert android.name.endswith("*")
    tv = by_group["tv"]
    assert tv.meta["small_group"] is True and tv.marker.color == fp.GREY
    for g in ("ios", "web"):
        t = by_group[g]
        assert not t.meta["significant"] and not t.meta["small_group"]
        assert t.marker.color != fp.GREY and t.marker.opacity < 1 and not t.marker.line.width
    # groups stay distinguishable: tested groups have distinct colours
    assert len({by_group[g].marker.color for g in ("android", "ios", "web")}) == 3
    assert fig.layout.barmode == "group"


def test_plot_breakdown_selected_steps(breakdown):
    fig = fp.plot_breakdown(breakdown, steps=[3])
    assert all(len(t.x) == 1 for t in fig.data)


def test_plot_trend_bands_and_lines():
    periods = pd.to_datetime(["2025-01-06", "2025-01-13", "2025-01-20"])
    rows = []
    for i, p in enumerate(periods):
        for step, r in ((1, 1.0), (2, 0.5 + 0.01 * i), (3, 0.2 - 0.02 * i)):
            rows.append(
                {
                    "period": p,
                    "step": step,
                    "event": f"e{step}",
                    "conversion_from_start": r,
                    "ci_low": r - 0.02,
                    "ci_high": r + 0.03,
                }
            )
    trend = pd.DataFrame(rows).sample(frac=1, random_state=1)  # order must not matter
    fig = fp.plot_trend(trend)
    assert len(fig.data) == 2  # default: last step only -> band + line
    band, line = fig.data
    assert band.meta["band"] and band.fill == "toself" and not line.meta["band"]
    assert len(line.x) == 3
    np.testing.assert_allclose(line.y, [0.2, 0.18, 0.16])
    np.testing.assert_allclose(band.y, [0.23, 0.21, 0.19, 0.14, 0.16, 0.18])
    fig2 = fp.plot_trend(trend, steps=[2, 3])
    assert len(fig2.data) == 4
    assert [t.meta["step"] for t in fig2.data] == [2, 2, 3, 3]


def test_plot_sizing_net_value_colours():
    sizing = pd.DataFrame(
        {
            "step": [2, 1, 3],
            "event": ["view", "visit", "cart"],
            "audience": [400, 900, 150],
            "net_value": [120.0, -30.0, 800.0],
            "roi": [1.2, -0.3, 4.0],
        }
    )
    fig = fp.plot_sizing(sizing)
    assert len(fig.data) == 1
    bar = fig.data[0]
    assert list(bar.y) == [-30.0, 120.0, 800.0]  # sorted by step
    assert list(bar.marker.color) == [fp.NEGATIVE, fp.POSITIVE, fp.POSITIVE]
    assert list(bar.text) == ["900 users", "400 users", "150 users"]


def test_plot_drivers_forest_log_axis():
    drivers = pd.DataFrame(
        {
            "property": ["device", "device", "prior_event"],
            "value": ["ios", "web", "search"],
            "odds_ratio": [2.0, 0.5, 1.1],
            "ci_low": [1.5, 0.3, 0.9],
            "ci_high": [2.6, 0.8, 1.3],
            "significant": [True, True, False],
        }
    )
    fig = fp.plot_drivers(drivers)
    assert len(fig.data) == 1
    pts = fig.data[0]
    assert list(pts.y) == ["device = ios", "device = web", "prior_event = search"]
    np.testing.assert_allclose(pts.x, [2.0, 0.5, 1.1])
    np.testing.assert_allclose(pts.error_x.array, [0.6, 0.3, 0.2], atol=1e-12)
    np.testing.assert_allclose(pts.error_x.arrayminus, [0.5, 0.2, 0.2], atol=1e-12)
    assert pts.meta["significant"] == [True, True, False]
    assert list(pts.marker.color)[:2] == [fp.HIGHLIGHT, fp.HIGHLIGHT]
    assert fig.layout.xaxis.type == "log"
    assert any(s.x0 == 1.0 and s.x1 == 1.0 for s in fig.layout.shapes)


def test_figures_compute_nothing(table):
    """Drawing must not import or call an engine: the module does not depend on Ibis."""
    import crm_helpers.plots.funnels as mod

    src = open(mod.__file__).read()
    assert "import ibis" not in src and "from ibis" not in src
    # a frame whose numbers are inconsistent is drawn as given, not recomputed
    t = table.assign(users=[1, 2, 3, 4])
    assert list(fp.plot_funnel(t).data[0].y) == [1, 2, 3, 4]


def test_plot_trend_marks_periods_without_a_full_window():
    periods = pd.to_datetime(["2025-01-06", "2025-01-13", "2025-01-20"])
    trend = pd.DataFrame(
        {
            "period": periods,
            "step": 2,
            "event": "e2",
            "conversion_from_start": [0.5, 0.5, 0.3],
            "ci_low": 0.2,
            "ci_high": 0.6,
            "window_complete": [True, True, False],
        }
    )
    _, line = fp.plot_trend(trend).data
    assert list(line.marker.symbol) == ["circle", "circle", "circle-open"]
    assert line.meta["incomplete"] == 1 and "not complete" in line.customdata[-1]


def test_palette_colours_are_distinguishable():
    """No two palette colours are near-twins (the old #2F6690 / #30638E pair was)."""
    from crm_helpers.plots.theme import COLORS

    rgb = [tuple(int(c[i : i + 2], 16) for i in (1, 3, 5)) for c in COLORS]
    closest = min(
        sum((a - b) ** 2 for a, b in zip(x, y, strict=True)) ** 0.5
        for i, x in enumerate(rgb)
        for y in rgb[i + 1 :]
    )
    assert len(set(COLORS)) == len(COLORS) and closest > 40

"""Campaign tables on top of the engine's counts: rates with intervals, trends, send time.

Every function here takes the small pandas counts of :mod:`crm_helpers.campaigns.core`
(one row per group) and adds rates, Wilson intervals and tests from
:mod:`crm_helpers.stats`; nothing is event-level.

Semantics
---------
*Rates* (per group): ``open_rate = opened / sent``, ``click_rate = clicked / sent``,
``click_to_open = clicked_opened / opened`` (messages clicked among those opened; clicks
without a logged open are left out of it), ``conversion_rate = converted / sent`` (messages
credited with at least one conversion, last touch), ``revenue_per_1000 = 1000 revenue /
sent``. Each rate has a 95% Wilson interval ``<rate>_ci_low, <rate>_ci_high``; a rate
whose response the log lacks is null.

*Send time* (:func:`hour_table`): per channel and send hour (all weekdays pooled), the rate
of one response (human opens, clicks or conversions) against the channel's other hours,
within each campaign: Cochran-Mantel-Haenszel test over campaigns (hour vs the channel's
other hours) for hours with at least ``min_sends`` sends, Benjamini-Hochberg across all
tested hours of all channels; an hour is *better* when significant with a pooled odds ratio above 1.
:func:`send_windows` recommends, per channel, the better hours (the best first), or none
when no hour differs significantly. ``by`` may name several columns (``["channel",
"segment"]``): each cell (channel x RFM segment) compares its hours with its own other
hours, within campaigns, and Benjamini-Hochberg runs across all tested hours of all cells
(the same control as per channel, over more tests). :func:`window_grid` lays the windows
of two columns out as one compact table (rows: the second column, columns: the first).
Hours with fewer than ``min_sends`` sends are kept with ``tested`` False: shown in tables,
left out of the rate-by-hour chart (their intervals would set its scale).

*Weekly review* (:func:`week_comparison`): per channel, the last complete week (every send
of it has had the full attribution window before the data end) against the week before,
two-proportion test per rate, Benjamini-Hochberg across channels and rates.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from crm_helpers.stats import Proportion, benjamini_hochberg, two_proportion_test, wilson_interval

__all__ = [
    "RATES",
    "hour_table",
    "rates_table",
    "send_windows",
    "week_comparison",
    "weekday_hour_grid",
    "window_grid",
]

#: rate -> (numerator, denominator) columns of the counts.
RATES: dict[str, tuple[str, str]] = {
    "open_rate": ("opened", "sent"),
    "human_open_rate": ("human_opened", "sent"),
    "click_rate": ("clicked", "sent"),
    "click_to_open": ("clicked_opened", "opened"),
    "conversion_rate": ("converted", "sent"),
}
#: The response whose rate drives send-time choices: metric name -> numerator column.
HOUR_METRICS: dict[str, str] = {
    "open_rate": "human_opened",
    "click_rate": "clicked",
    "conversion_rate": "converted",
}


def _num(s: pd.Series) -> np.ndarray:
    return pd.to_numeric(s, errors="coerce").astype("float64").to_numpy()


def rates_table(counts: pd.DataFrame) -> pd.DataFrame:
    """``counts`` with every rate of :data:`RATES`, its Wilson interval and revenue per 1000.

    Parameters
    ----------
    counts
        Output of :func:`~crm_helpers.campaigns.core.scorecard_counts` (or any ``*_counts``).

    Returns
    -------
    pandas.DataFrame
        The counts plus ``<rate>, <rate>_ci_low, <rate>_ci_high`` per rate and
        ``revenue_per_1000``; null where the log lacks the response or the denominator is 0.
    """
    out = counts.copy()
    for rate, (num, den) in RATES.items():
        x, n = _num(out[num]), _num(out[den])
        ok = np.isfinite(x) & np.isfinite(n) & (n > 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            out[rate] = np.where(ok, x / np.where(ok, n, 1.0), np.nan)
        lo, hi = wilson_interval(np.where(ok, x, 0.0), np.where(ok, n, 0.0))
        out[f"{rate}_ci_low"] = np.where(ok, lo, np.nan)
        out[f"{rate}_ci_high"] = np.where(ok, hi, np.nan)
    sent = _num(out["sent"])
    with np.errstate(divide="ignore", invalid="ignore"):
        out["revenue_per_1000"] = np.where(sent > 0, 1000.0 * _num(out["revenue"]) / sent, np.nan)
    return out


def _known(counts: pd.DataFrame, col: str) -> bool:
    return col in counts.columns and bool(pd.to_numeric(counts[col], errors="coerce").notna().any())


def _cmh(x: np.ndarray, n: np.ndarray, rx: np.ndarray, rn: np.ndarray) -> tuple[float, float]:
    """Mantel-Haenszel pooled odds ratio and CMH p-value of one hour vs the rest over strata
    (statsmodels ``StratifiedTable``); strata without sends on either side are left out."""
    from statsmodels.stats.contingency_tables import StratifiedTable

    keep = (n > 0) & (rn > 0)
    if not keep.any():
        return np.nan, np.nan
    tabs = np.stack([x, n - x, rx, rn - rx], axis=1)[keep].reshape(-1, 2, 2).astype(float)
    tabs = np.moveaxis(tabs, 0, -1)
    if tabs[:, 0].sum() == 0 or tabs[:, 1].sum() == 0 or tabs[0].sum() == 0 or tabs[1].sum() == 0:
        return np.nan, np.nan
    st = StratifiedTable(tabs)
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(st.oddsratio_pooled), float(st.test_null_odds(correction=False).pvalue)


def _keys(by: str | list[str] | tuple[str, ...]) -> list[str]:
    return [by] if isinstance(by, str) else list(by)


def hour_table(
    counts: pd.DataFrame,
    metric: str = "click_rate",
    by: str | list[str] = "channel",
    q: float = 0.05,
    min_sends: int = 100,
    stratum: str | None = "campaign_id",
) -> pd.DataFrame:
    """Per ``by`` group and send hour: the metric's rate against the group's other hours.

    Parameters
    ----------
    counts
        Output of :func:`~crm_helpers.campaigns.core.hour_counts` (``by, [stratum,]
        weekday, hour``).
    metric
        ``"open_rate"`` (human opens), ``"click_rate"`` or ``"conversion_rate"``.
    by
        The group column (``channel`` or a segment column), or several (``["channel",
        "segment"]``: one group per combination).
    q
        False discovery rate of the Benjamini-Hochberg correction.
    min_sends
        Hours with fewer sends are shown but not tested (``p_value`` null): a test on a
        handful of sends would make noise look significant.
    stratum
        Compare hours within each value of this column (default: each campaign), so a
        campaign that responds well and happens to be sent at one hour does not make that
        hour look good: the test is Cochran-Mantel-Haenszel over the strata and
        ``adjusted_rate`` the hour's rate on the group's mix of strata (indirect
        standardisation: ``group rate x observed / expected``, expected from each stratum's
        own rate). None or an absent column: one stratum.

    Returns
    -------
    pandas.DataFrame
        ``by, hour, sent, opened, clicked, converted, successes, rate, ci_low, ci_high,
        rest_rate, group_rate, adjusted_rate, odds_ratio, p_value, q_value, significant,
        better, tested``
        sorted by group and hour (``opened`` are human opens; ``odds_ratio`` the
        Mantel-Haenszel odds ratio of the hour vs the other hours); ``better`` when
        significant and ``odds_ratio > 1``; ``tested``: the hour has ``min_sends`` sends.
        Empty when the log lacks the metric's response.
    """
    if metric not in HOUR_METRICS:
        raise ValueError(f"metric must be one of {sorted(HOUR_METRICS)}, got {metric!r}")
    num = HOUR_METRICS[metric]
    keys = _keys(by)
    cols = [*keys, "hour", "sent", "opened", "clicked", "converted", "successes", "rate",
            "ci_low", "ci_high", "rest_rate", "group_rate", "adjusted_rate", "odds_ratio", "p_value",
            "q_value", "significant", "better", "tested"]  # fmt: skip
    if not _known(counts, num):
        return pd.DataFrame(columns=cols)
    c = counts.copy()
    for col in ("human_opened", "clicked", "converted", "sent"):
        c[col] = _num(c[col]) if col in c.columns else np.nan
    c["_x"] = c[num].fillna(0.0)
    strat = stratum if stratum and stratum in c.columns else None
    c["_s"] = c[strat].astype(str) if strat else ""
    cell = c.groupby([*keys, "_s", "hour"], sort=True)[["_x", "sent"]].sum().reset_index()
    srate = cell.groupby([*keys, "_s"])[["_x", "sent"]].transform("sum")
    cell["_e"] = cell["sent"] * srate["_x"] / srate["sent"]
    g = c.groupby([*keys, "hour"], sort=True)[["sent", "human_opened", "clicked", "converted"]]
    t = g.sum(min_count=1).reset_index().rename(columns={"human_opened": "opened"})
    t["successes"] = c.groupby([*keys, "hour"], sort=True)["_x"].sum().to_numpy()
    tot = t.groupby(keys)[["successes", "sent"]].transform("sum")
    x, n = t["successes"].to_numpy(float), t["sent"].to_numpy(float)
    rx, rn = tot["successes"].to_numpy(float) - x, tot["sent"].to_numpy(float) - n
    t["rate"] = x / n
    t["ci_low"], t["ci_high"] = wilson_interval(x, n)
    with np.errstate(divide="ignore", invalid="ignore"):
        t["rest_rate"] = np.where(rn > 0, rx / np.where(rn > 0, rn, 1.0), np.nan)
        e = cell.groupby([*keys, "hour"], sort=True)["_e"].sum().to_numpy(float)
        group_rate = tot["successes"].to_numpy(float) / tot["sent"].to_numpy(float)
        t["adjusted_rate"] = np.where(e > 0, group_rate * x / e, np.nan)
        t["group_rate"] = group_rate
    ors, ps = np.full(len(t), np.nan), np.full(len(t), np.nan)
    for grp, cg in cell.groupby(keys, sort=False):
        xs = cg.pivot_table(index="_s", columns="hour", values="_x", aggfunc="sum", fill_value=0)
        ns = cg.pivot_table(index="_s", columns="hour", values="sent", aggfunc="sum", fill_value=0)
        tx, tn = xs.sum(axis=1).to_numpy(float), ns.sum(axis=1).to_numpy(float)
        mine = np.logical_and.reduce(
            [(t[k] == v).to_numpy() for k, v in zip(keys, grp, strict=True)]
        )
        for i in np.flatnonzero(mine & (n >= min_sends)):
            h = t["hour"].iloc[i]
            hx, hn = xs[h].to_numpy(float), ns[h].to_numpy(float)
            ors[i], ps[i] = _cmh(hx, hn, tx - hx, tn - hn)
    t["odds_ratio"], t["p_value"] = ors, ps
    rej, qv = benjamini_hochberg(t["p_value"].to_numpy(float), q)
    t["q_value"], t["significant"] = qv, rej
    t["better"] = t["significant"] & (t["odds_ratio"] > 1)
    t["tested"] = n >= min_sends
    for col in ("sent", "opened", "clicked", "converted", "successes"):
        t[col] = pd.array(t[col].round(), dtype="Int64")
    return t[cols].reset_index(drop=True)


def send_windows(hours: pd.DataFrame, by: str | list[str] = "channel") -> pd.DataFrame:
    """The recommended send hours per group: hours significantly better than the rest.

    Returns ``by, best_hour, best_rate, adjusted_rate, rest_rate, group_rate, odds_ratio,
    hours`` (all
    better hours, largest odds ratio first, as a list) for every group of ``hours``
    (``by``: one column or several, as given to :func:`hour_table`);
    ``best_hour`` is the better hour with the largest odds ratio, null where no hour is
    significantly better (the data cannot tell the hours apart).
    """
    keys = _keys(by)
    rows = []
    for grp, h in hours.groupby(keys, sort=True):
        group = dict(zip(keys, grp, strict=True))
        good = h[h["better"]].sort_values("odds_ratio", ascending=False)
        if len(good):
            top = good.iloc[0]
            rows.append(
                {**group, "best_hour": int(top["hour"]), "best_rate": float(top["rate"]),
                 "adjusted_rate": float(top["adjusted_rate"]), "rest_rate": float(top["rest_rate"]),
                 "group_rate": float(top["group_rate"]),
                 "odds_ratio": float(top["odds_ratio"]), "hours": [int(x) for x in good["hour"]]}
            )  # fmt: skip
        else:
            rows.append(
                {**group, "best_hour": None, "best_rate": np.nan, "adjusted_rate": np.nan,
                 "rest_rate": np.nan, "group_rate": float(h["group_rate"].iloc[0]),
                 "odds_ratio": np.nan, "hours": []}
            )  # fmt: skip
    cols = [*keys, "best_hour", "best_rate", "adjusted_rate", "rest_rate", "group_rate",
            "odds_ratio", "hours"]  # fmt: skip
    return pd.DataFrame(rows, columns=cols)


def window_grid(
    windows: pd.DataFrame, columns: str = "channel", rows: str = "segment"
) -> pd.DataFrame:
    """The send windows of :func:`send_windows` over two columns as one compact table.

    Returns one row per value of ``rows`` and one column per value of ``columns``; a cell
    holds the better hours (best first, as a list of ints), an empty list where no hour is
    significantly better (the data cannot tell that cell's hours apart) and None where the
    cell has no sends.
    """
    if not len(windows):
        return pd.DataFrame()
    g = windows.set_index([rows, columns])["hours"].map(lambda h: [int(x) for x in h])
    out = g.unstack(columns)
    out = out.astype(object).where(out.notna(), None)
    return out.sort_index().reindex(sorted(out.columns, key=str), axis=1)


def weekday_hour_grid(
    counts: pd.DataFrame, metric: str = "click_rate", min_sends: int = 1
) -> pd.DataFrame:
    """Weekday (rows, 0 = Monday) x hour (columns 0-23) of the metric's rate, all groups pooled
    (``counts`` from :func:`~crm_helpers.campaigns.core.hour_counts`); NaN where fewer than
    ``min_sends`` messages were sent (a rate of 1 in 2 would otherwise set the colour scale
    of the heatmap)."""
    num = HOUR_METRICS[metric]
    c = counts.assign(_x=_num(counts[num]), _n=_num(counts["sent"]))
    g = c.groupby(["weekday", "hour"])[["_x", "_n"]].sum(min_count=1)
    g = g[g["_n"] >= max(min_sends, 1)]
    rate = (g["_x"] / g["_n"]).unstack("hour")
    return rate.reindex(index=range(7), columns=range(24))


def week_comparison(
    weekly: pd.DataFrame,
    data_end: pd.Timestamp | None,
    attribution_days: float,
    by: str = "channel",
    q: float = 0.05,
) -> pd.DataFrame:
    """The last complete week against the previous one, per group and rate.

    Parameters
    ----------
    weekly
        Output of :func:`~crm_helpers.campaigns.core.weekly_counts`.
    data_end
        The last timestamp of the data; a week is complete when ``week + 7 days +
        attribution_days <= data_end``. None: every week is complete.
    attribution_days
        The attribution window (conversions of later sends are still coming in).

    Returns
    -------
    pandas.DataFrame
        ``by, rate, previous_week, current_week, previous_rate, current_rate, abs_change,
        ci_low, ci_high, p_value, q_value, significant``; empty without two complete weeks.
    """
    cols = [by, "rate", "previous_week", "current_week", "previous_rate", "current_rate",
            "abs_change", "ci_low", "ci_high", "p_value", "q_value", "significant"]  # fmt: skip
    w = weekly.copy()
    w["week"] = pd.to_datetime(w["week"])
    if data_end is not None:
        done = w["week"] + pd.Timedelta(days=7 + attribution_days) <= pd.Timestamp(data_end)
        w = w[done]
    weeks = sorted(w["week"].unique())
    if len(weeks) < 2:
        return pd.DataFrame(columns=cols)
    cur, prev = weeks[-1], weeks[-2]
    rows = []
    for group, g in w.groupby(by, sort=True):
        a, b = g[g["week"] == prev], g[g["week"] == cur]
        if not len(a) or not len(b):
            continue
        for rate, (num, den) in RATES.items():
            if rate in ("human_open_rate", "click_to_open") or not _known(g, num):
                continue
            pa = Proportion(float(_num(a[num])[0]), float(_num(a[den])[0]))
            pb = Proportion(float(_num(b[num])[0]), float(_num(b[den])[0]))
            r = two_proportion_test(pa, pb)
            rows.append(
                {by: group, "rate": rate, "previous_week": prev, "current_week": cur,
                 "previous_rate": pa.rate, "current_rate": pb.rate, "abs_change": r.diff,
                 "ci_low": r.ci_low, "ci_high": r.ci_high, "p_value": r.p_value}
            )  # fmt: skip
    out = pd.DataFrame(rows, columns=cols[:-2])
    rej, qv = benjamini_hochberg(out["p_value"].to_numpy(float), q)
    out["q_value"], out["significant"] = qv, rej
    return out

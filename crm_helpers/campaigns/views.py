"""The campaign report's tables as a reader sees them (display only; the frames, and
``metrics.json``, keep their raw names and values).

Each function takes a frame of :mod:`crm_helpers.campaigns.analysis`,
:mod:`~crm_helpers.campaigns.holdout` or :mod:`~crm_helpers.campaigns.frequency` and returns an
``IPython.display.HTML`` built with :func:`crm_helpers.report.tables.to_html`: human headers
(:data:`crm_helpers.report.labels.LABELS`), each rate with its 95% interval in one cell,
no row index, a dash or a word for a missing value, and the counts behind the rates in a
collapsed block so that a table fits a 1280 px page.

* :func:`channels` and :func:`campaigns` — the scorecard per channel and per campaign.
* :func:`weeks` — the last complete week against the week before.
* :func:`incremental` — the holdout comparison per campaign.
* :func:`message_tests` — each arm of a message test against its control (``baseline``).
* :func:`windows` — the send window per channel (or segment); ``by`` names the group.
* :func:`window_grid` — the send windows per RFM segment (rows) and channel (columns).
* :func:`frequency` — the response by messages in the fatigue window.
* :func:`by_position` — the response by position of the message within its campaign.

Columns a table does not have (e.g. no opens in the log) are left out, not shown empty.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from crm_helpers.campaigns.analysis import HOUR_METRICS
from crm_helpers.report import tables
from crm_helpers.report.labels import label

__all__ = [
    "by_position",
    "campaigns",
    "channels",
    "frequency",
    "incremental",
    "message_tests",
    "weeks",
    "window_grid",
    "windows",
]

RATES = ["open_rate", "click_rate", "click_to_open", "conversion_rate"]
COUNTS = ["opened", "machine_opened", "clicked", "converted"]


def _ids(df: pd.DataFrame) -> pd.DataFrame:
    """Campaign ids as text (an id is a name: no thousands separator, left-aligned)."""
    if "campaign_id" not in df.columns:
        return df
    return df.assign(campaign_id=df["campaign_id"].map(lambda v: None if pd.isna(v) else str(v)))


def _known(df: pd.DataFrame, cols: list[str]) -> list[str]:
    return [c for c in cols if c in df.columns and df[c].notna().any()]


def _hours(h: Any) -> str:
    if h is None or (not isinstance(h, list | tuple) and pd.isna(h)):
        return ""
    return ", ".join(f"{int(x):02d}:00" for x in h)


def _scorecard(df: pd.DataFrame, keys: list[str], currency: str, with_ci: bool):
    rates = _known(df, RATES)
    cols = [*keys, "sent", *rates]
    intervals = {}
    if with_ci:
        for r in rates:
            lo, hi = f"{r}_ci_low", f"{r}_ci_high"
            if lo in df.columns and hi in df.columns:
                cols += [lo, hi]
                intervals[r] = (lo, hi)
    money = ["revenue_per_1000"] if "revenue_per_1000" in df.columns else []
    counts = _known(df, COUNTS)
    details = counts + (["revenue"] if money else [])
    shown = _ids(df[[*cols, *money, *details]])
    return tables.show(
        shown,
        percent=rates + [b for pair in intervals.values() for b in pair],
        money=money + (["revenue"] if money else []),
        currency=currency,
        intervals=intervals,
        details=details,
        keys=keys,
        labels={"converted": "Converted"},
        details_title="Counts behind the rates",
    )


def channels(channels: pd.DataFrame, currency: str = ""):
    """The scorecard per channel: each rate with its 95% Wilson interval."""
    return _scorecard(channels, ["channel"], currency, with_ci=True)


def campaigns(scorecard: pd.DataFrame, currency: str = ""):
    """The scorecard per campaign (rates without intervals: many rows, narrow columns)."""
    return _scorecard(scorecard, ["campaign_id", "channel"], currency, with_ci=False)


def weeks(weeks: pd.DataFrame):
    """The last complete week against the week before, per channel and rate."""
    shown = weeks.assign(rate=weeks["rate"].map(lambda r: label(r)))
    return tables.show(
        shown,
        percent=["previous_rate", "current_rate"],
        signed=["abs_change", "ci_low", "ci_high"],
        intervals={"abs_change": ("ci_low", "ci_high")},
        labels={"rate": "Rate", "abs_change": "Change"},
        details=["p_value"],
        keys=["channel", "rate"] if "channel" in weeks.columns else ["rate"],
        details_title="Uncorrected p-values",
    )


def incremental(incremental: pd.DataFrame, currency: str = ""):
    """The holdout comparison per campaign: the effect per 1,000 recipients with its interval."""
    shown = _ids(incremental.drop(columns=[c for c in ("p_value",) if c in incremental.columns]))
    return tables.show(
        shown,
        percent=["treated_rate", "control_rate"],
        money=["revenue_per_1000", "revenue_ci_low", "revenue_ci_high"],
        currency=currency,
        intervals={
            "incremental_per_1000": ("ci_low", "ci_high"),
            "incremental_conversions": ("conversions_ci_low", "conversions_ci_high"),
            "revenue_per_1000": ("revenue_ci_low", "revenue_ci_high"),
        },
        labels={
            "revenue_per_1000": "Added revenue per 1,000",
        },
        details=["revenue_per_1000", "attributed_conversions"],
        keys=["campaign_id"],
        details_title="Revenue and attributed conversions",
    )


def message_tests(variants: pd.DataFrame):
    """Each arm of each message test against the test's control arm (``baseline``)."""
    rates = ["click_rate", "conversion_rate"]
    cols = ["experiment_id", "variant", "campaign_id", "sent", *rates]
    intervals, details = {}, []
    for r in rates:
        cols += [f"{r}_diff", f"{r}_ci_low", f"{r}_ci_high", f"{r}_p_holm"]
        intervals[f"{r}_diff"] = (f"{r}_ci_low", f"{r}_ci_high")
        details.append(f"{r}_p")
    return tables.show(
        _ids(variants[cols + details]),
        percent=rates,
        signed=[c for r in rates for c in (f"{r}_diff", f"{r}_ci_low", f"{r}_ci_high")],
        intervals=intervals,
        baseline=lambda d: (
            variants["baseline"].reindex(d.index).fillna(False).astype(bool)
            if "baseline" in variants.columns
            else d["click_rate_diff"].isna() & d["conversion_rate_diff"].isna()
        ),
        labels={
            "click_rate_diff": "Click rate vs control",
            "conversion_rate_diff": "Conversion vs control",
            "click_rate_p_holm": "p-value, clicks (Holm)",
            "conversion_rate_p_holm": "p-value, conversion (Holm)",
            "click_rate_p": "p-value, clicks (uncorrected)",
            "conversion_rate_p": "p-value, conversion (uncorrected)",
        },
        details=details,
        keys=["experiment_id", "variant"],
        details_title="Uncorrected p-values",
    )


def windows(windows: pd.DataFrame, by: str = "channel"):
    """The send window per group: the best hour when it is significantly better, else
    ``none better`` (the group's overall rate is still shown)."""
    shown = windows.assign(
        best_hour=windows["best_hour"].map(lambda h: None if pd.isna(h) else f"{int(h):02d}:00"),
        hours=windows["hours"].map(lambda h: _hours(h) or None),
    )
    return tables.show(
        shown,
        percent=["best_rate", "adjusted_rate", "rest_rate", "group_rate"],
        labels={
            "best_rate": "Rate at that hour",
            "adjusted_rate": "Rate at that hour, on the group's campaign mix",
            "rest_rate": "Rate at the other hours",
            "group_rate": "Rate at all hours",
            "odds_ratio": "Odds ratio within campaigns",
            "hours": "Send window",
        },
        missing={
            "best_hour": "none better",
            "hours": "none better",
        },
    )


#: A cell of :func:`window_grid` whose hours the data cannot tell apart.
CANNOT_TELL = "cannot tell"


def window_grid(grid: pd.DataFrame, rows: str = "segment"):
    """:func:`crm_helpers.campaigns.analysis.window_grid` as a reader sees it: a cell lists
    the significantly better hours (best first), says ``cannot tell`` where no hour differs
    significantly, and shows a dash where that segment got nothing through that channel."""
    shown = grid.apply(
        lambda col: col.map(lambda h: None if h is None else (_hours(h) or CANNOT_TELL))
    )
    shown = shown.reset_index()
    shown.columns = [str(c) for c in shown.columns]
    # the channels are names from the data: shown as they are, not as vocabulary labels
    return tables.show(shown, labels={c: c for c in shown.columns[1:]} | {rows: label(rows)})


def frequency(freq: pd.DataFrame, metric: str, window_days: float):
    """The response rate by messages received in the fatigue window, with its interval."""
    cols = ["label", "sent", "successes", "rate", "ci_low", "ci_high"]
    intervals = {"rate": ("ci_low", "ci_high")}
    percent = ["rate", "ci_low", "ci_high"]
    if "optout_rate" in freq.columns:
        cols += ["optouts", "optout_rate", "optout_ci_low", "optout_ci_high"]
        intervals["optout_rate"] = ("optout_ci_low", "optout_ci_high")
        percent += ["optout_rate", "optout_ci_low", "optout_ci_high"]
    num = HOUR_METRICS.get(metric, "successes")
    return tables.show(
        freq[cols].astype({"label": str}),
        percent=percent,
        intervals=intervals,
        labels={
            "label": f"Messages in the previous {window_days:g} days",
            "successes": label(num),
            "rate": label(metric),
        },
    )


def by_position(table: pd.DataFrame, metric: str):
    """The response rate by position of the message within its campaign (1 = first)."""
    lo, hi = f"{metric}_ci_low", f"{metric}_ci_high"
    return tables.show(
        table[["position", "sent", metric, lo, hi]],
        percent=[metric, lo, hi],
        intervals={metric: (lo, hi)},
        labels={"position": "Position in the campaign"},
    )

"""The segment report's tables as a reader sees them (display only; the frames, and
``metrics.json``, keep their raw names and values).

Each function takes a frame of :mod:`crm_helpers.segments` and returns an
``IPython.display.HTML`` built with :func:`crm_helpers.report.tables.to_html`: shares as
percentages, money with ``currency``, confidence intervals in one cell, indices against the
base (100 = like the base), and the counts behind a rate in a collapsed block where the table
would be wider than the page (the engagement profile).
"""

from __future__ import annotations

import pandas as pd

from crm_helpers.report import tables

__all__ = [
    "attribute_profile",
    "category_profile",
    "cluster_features",
    "engagement_profile",
    "model_states",
    "retention",
    "rule_states",
    "summary",
    "thresholds",
    "value_profile",
]


def _html(df: pd.DataFrame, **options):
    from IPython.display import HTML

    return HTML(tables.to_html(df, **options))


def summary(df: pd.DataFrame, *, currency: str = ""):
    """RFM segment summary: customers, revenue and their shares, purchases, AOV, action."""
    return _html(
        df,
        percent=["customer_share", "revenue_share"],
        money=["revenue", "avg_order_value"],
        currency=currency,
        labels={"customers": "Customers", "purchases": "Orders", "action": "Suggested action"},
    )


def rule_states(df: pd.DataFrame):
    """Users per health state."""
    return _html(df, percent=["share"], labels={"state": "State"})


def thresholds(df: pd.DataFrame):
    """Model-state thresholds with their precision and recall (chosen and on the holdout)."""
    none = "none flagged"
    return _html(
        df,
        percent=[c for c in df.columns if c.startswith(("precision_", "recall_"))],
        digits=3,
        missing={"precision_when_chosen": none, "precision_holdout": none},
        labels={
            "customers": "Customers",
            "score": "Score",
            "threshold": "Threshold",
            "flagged_when_chosen": "Flagged when chosen",
            "precision_when_chosen": "Precision when chosen",
            "recall_when_chosen": "Recall when chosen",
            "flagged_holdout": "Flagged on the holdout",
            "precision_holdout": "Precision on the holdout",
            "recall_holdout": "Recall on the holdout",
        },
    )


def model_states(df: pd.DataFrame):
    """Customers per model state with the mean chance to be alive and to buy."""
    return _html(
        df,
        percent=["share", "mean_p_alive", "mean_p_buy"],
        labels={
            "customers": "Customers",
            "mean_p_alive": "Mean chance alive",
            "mean_p_buy": "Mean chance to buy",
            "repeat_buyers": "Repeat buyers",
        },
    )


def retention(df: pd.DataFrame):
    """Pooled retention per group and month since the cohort month (NaN: too recent)."""
    if df.empty:
        return _html(df)
    out = df.rename_axis("segment")
    months = [str(c) for c in df.columns]
    out.columns = months
    return _html(
        out,
        percent=months,
        missing={m: "too recent" for m in months},
        labels={m: f"Month {m}" for m in months},
    )


def cluster_features(df: pd.DataFrame):
    """Each cluster's most distinctive features."""
    return _html(
        df,
        labels={
            "cluster": "Cluster",
            "mean": "Cluster mean",
            "population_mean": "Everyone's mean",
            "index": "Index (100 = everyone)",
            "effect_size": "Effect size (standard deviations)",
        },
    )


def value_profile(df: pd.DataFrame):
    """The segment's value measures against the base (index 100 = like the base)."""
    return _html(
        df,
        labels={"measure": "Measure", "group": "Segment", "base": "Base"},
    )


def _share_profile(df: pd.DataFrame, **labels: str):
    return _html(
        df,
        percent=["group_share", "base_share"],
        intervals={"group_share": ("ci_low", "ci_high")},
        labels={"group_share": "Share of the segment", **labels},
    )


def attribute_profile(df: pd.DataFrame):
    """Users per attribute value in the segment and the base, with the segment's interval."""
    return _share_profile(
        df,
        attribute="Attribute",
        value="Value",
        users_group="Users in the segment",
        users_base="Users in the base",
    )


def category_profile(df: pd.DataFrame):
    """Purchases per category in the segment and the base, with the segment's interval."""
    return _share_profile(
        df,
        value="Category",
        purchases_group="Orders of the segment",
        purchases_base="Orders of the base",
    )


def engagement_profile(df: pd.DataFrame):
    """Open and click rates of the segment against the base; message counts collapsed."""
    return _html(
        df,
        percent=["rate_group", "rate_base"],
        intervals={"rate_group": ("ci_low", "ci_high")},
        details=["sent_group", "hits_group", "sent_base", "hits_base"],
        keys=["channel", "metric"],
        details_title="Messages sent and opened or clicked",
        labels={
            "channel": "Channel",
            "rate_group": "Rate of the segment",
            "rate_base": "Rate of the base",
            "sent_group": "Sent to the segment",
            "hits_group": "Opened or clicked (segment)",
            "sent_base": "Sent to the base",
            "hits_base": "Opened or clicked (base)",
        },
    )

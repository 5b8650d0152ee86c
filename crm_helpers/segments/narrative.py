"""Notebook glue for the segment report: metrics.json entries and the plain-language summary.

Every number in a sentence is read from the tables passed in (nothing is recomputed), so
the summary agrees with the charts. Sentences are safe Markdown built with
:func:`crm_helpers.report.text.md` (segment names and dates are escaped).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from crm_helpers.report.text import md
from crm_helpers.segments.analysis import STATES

__all__ = [
    "cluster_metrics",
    "migration_metrics",
    "rfm_metrics",
    "rfm_migration_metrics",
    "segment_findings",
    "state_metrics",
]


def rfm_metrics(summary: pd.DataFrame) -> list[dict[str, Any]]:
    """``metrics.rfm_segments``: ``[{segment, customers, revenue_share, avg_order_value}]``."""
    cols = ["segment", "customers", "revenue_share", "avg_order_value"]
    return [
        {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in row.items()}
        for row in summary[cols].to_dict("records")
    ]


def state_metrics(counts: pd.DataFrame) -> dict[str, int]:
    """``metrics.states``: ``{state: users}`` in the order of :data:`STATES`."""
    c = counts.set_index("state")[counts.columns[1]]
    return {s: int(c.get(s, 0)) for s in STATES}


def migration_metrics(matrix: pd.DataFrame, flows: pd.DataFrame, period_end: Any) -> dict[str, Any]:
    """``metrics.migration``: the last month's matrix (counts and row shares) and churn flows."""
    share = matrix.div(matrix.sum(axis=1).where(lambda s: s > 0), axis=0)
    return {
        "period_end": None if period_end is None else pd.Timestamp(period_end).date().isoformat(),
        "from_states": list(matrix.index),
        "to_states": list(matrix.columns),
        "counts": matrix.to_numpy().tolist(),
        "shares": share.to_numpy().tolist(),
        "flows": [
            {
                "period_end": pd.Timestamp(r.period_end).date().isoformat(),
                "into_churned": int(r.into_churned),
                "into_dormant_risk": int(r.into_dormant_risk),
            }
            for r in flows.itertuples()
        ],  # fmt: skip
    }


def rfm_migration_metrics(
    matrix: pd.DataFrame, flows: pd.DataFrame, period_end: Any, lost: str = "Lost"
) -> dict[str, Any]:
    """``metrics.rfm_migration``: the last month's segment matrix (counts, row shares) and flows.

    ``flows_into_lost`` lists, per period, the customers entering the ``lost`` segment from
    another segment or as new (``None`` when the rule table has no such segment).
    """
    share = matrix.div(matrix.sum(axis=1).where(lambda s: s > 0), axis=0)
    col = f"into_{lost}"
    return {
        "period_end": None if period_end is None else pd.Timestamp(period_end).date().isoformat(),
        "from_segments": list(matrix.index),
        "to_segments": list(matrix.columns),
        "counts": matrix.to_numpy().tolist(),
        "shares": [[None if np.isnan(v) else float(v) for v in row] for row in share.to_numpy()],
        "lost_segment": lost if col in flows else None,
        "flows_into_lost": [
            {
                "period_end": pd.Timestamp(r["period_end"]).date().isoformat(),
                "customers": int(r[col]),
            }
            for _, r in flows.iterrows()
        ]
        if col in flows
        else None,  # fmt: skip
    }


def cluster_metrics(result, planted_ari: float | None = None) -> dict[str, Any]:
    """``metrics.clusters``: ``k``, ``sizes`` (clusters 0..k-1), ``low_activity_users`` (not
    clustered), ``min_active_days``, ``stability_ari`` (and the silhouette per k)."""
    sizes = result.sizes()
    clustered = sizes[sizes["cluster"] >= 0]
    return {
        "k": result.k,
        "sizes": [int(v) for v in clustered["users"]],
        "low_activity_users": int(sizes.loc[sizes["cluster"] < 0, "users"].sum()),
        "min_active_days": int(result.min_active_days),
        "stability_ari": result.stability_ari,
        "silhouette": {str(k): v for k, v in result.silhouette.items()},
    }


def _pct(x: float) -> str:
    return "n/a" if x is None or not np.isfinite(x) else f"{x:.0%}"


def segment_findings(
    summary: pd.DataFrame,
    states: pd.DataFrame,
    as_of: Any,
    *,
    flows: pd.DataFrame | None = None,
    rfm_flows: pd.DataFrame | None = None,
    holdout: dict[str, Any] | None = None,
    tops: pd.DataFrame | None = None,
    cluster_sizes: pd.DataFrame | None = None,
    population: str = "users",
) -> list[str]:
    """The report's summary lines (safe Markdown), most important first.

    Each line names its population. *Customers* are the users with at least one purchase
    (``revenue >= 0``) on or before ``as_of`` (the RFM table's rows, ``summary``'s
    ``customers``). The health states and their flows (``states``, ``flows``) are of the
    users active on or before ``as_of``: with ``population="users"`` activity is purchases
    and events, so they are every user seen in orders or events by then (the customers among
    them); with ``population="customers"`` activity is purchases only, so they are the
    customers. The model's holdout is of the customers who bought by the calibration end;
    the clusters of the users seen in events.
    """
    if population not in ("users", "customers"):
        raise ValueError(f"population must be 'users' or 'customers', got {population!r}")
    lines = []
    n = int(summary["customers"].sum())
    s = summary[summary["customers"] > 0].sort_values("revenue", ascending=False)
    if n == 0:
        return [md("No customer bought anything on or before {d}.", d=str(as_of))]
    top = s.head(2)
    share = (
        float(top["revenue_share"].sum()) if top["revenue_share"].notna().all() else float("nan")
    )
    names = " and ".join(f"**{md('{x}', x=x)}**" for x in top["segment"])
    lines.append(
        md(
            "{n:,} customers as of {d} (users with at least one purchase by then): ",
            n=n,
            d=str(as_of),
        )
        + names
        + md(
            " ({c:,} customers, {p} of them) carry {r} of the customers' net revenue.",
            c=int(top["customers"].sum()),
            p=_pct(top["customers"].sum() / n),
            r=_pct(share),
        )  # fmt: skip
    )
    st = states.set_index("state")[states.columns[1]]
    if population == "users":
        head = md(
            "Health of the {u:,} users seen by {d} (a purchase or any event; {n:,} of them "
            "customers): ",
            u=int(st.sum()),
            d=str(as_of),
            n=n,
        )
    else:
        head = md("Health of the {u:,} customers by their purchases: ", u=int(st.sum()))
    lines.append(
        head
        + md(
            "{sa:,} super-active, {a:,} active, {dr:,} dormant-risk, {c:,} churned.",
            sa=int(st.get("super-active", 0)),
            a=int(st.get("active", 0)),
            dr=int(st.get("dormant-risk", 0)),
            c=int(st.get("churned", 0)),
        )  # fmt: skip
    )
    if flows is not None and len(flows):
        last = flows.iloc[-1]
        lines.append(
            md(
                "In the month to {d}, **{dr:,}** {pop} slipped into dormant-risk and {c:,} into churned.",
                d=pd.Timestamp(last["period_end"]).date().isoformat(),
                pop=population,
                dr=int(last["into_dormant_risk"]),
                c=int(last["into_churned"]),
            )  # fmt: skip
        )
    if rfm_flows is not None and len(rfm_flows) and rfm_flows.shape[1] > 1:
        last = rfm_flows.iloc[-1]
        col = rfm_flows.columns[1]
        lines.append(
            md(
                "RFM segments in the month to {d}: {n:,} customers moved into **{seg}**.",
                d=pd.Timestamp(last["period_end"]).date().isoformat(),
                n=int(last[col]),
                seg=col.removeprefix("into_"),
            )  # fmt: skip
        )
    if holdout is not None:
        lines.append(
            md(
                "The purchase model (BG/NBD) predicted {p:,.0f} repeat purchases in the holdout "
                "period against {a:,.0f} observed, for the {h:,} customers who had bought by the "
                "calibration end (mean absolute error {m:.2f} per customer).",
                h=int(holdout["customers"]),
                p=holdout["predicted_total"],
                a=holdout["actual_total"],
                m=holdout["mae"],
            )  # fmt: skip
        )
    if tops is not None and cluster_sizes is not None and len(tops):
        parts = []
        users = cluster_sizes.set_index("cluster")["users"]
        clustered, low = int(users[users.index >= 0].sum()), int(users[users.index < 0].sum())
        for c, g in tops.groupby("cluster", sort=True):
            desc = ", ".join(
                md("{dir} {f}", dir=_more_or_less(f, d), f=cluster_feature_label(f))
                for f, d in zip(g["feature"], g["effect_size"], strict=True)
            )
            share = _pct(float(users[c]) / clustered) if clustered else "n/a"
            parts.append(md("cluster {c} ({s}): ", c=int(c), s=share) + desc)
        head = md("Behavioural clusters of {n:,} users", n=clustered)
        if low:
            head += md(" ({m:,} users seen on too few days are not clustered)", m=low)
        lines.append(head + ": " + "; ".join(parts) + ".")
    return lines


_CLUSTER_WORDS = {
    "events": "events",
    "active_days": "active days",
    "orders": "orders",
    "revenue": "revenue",
    "coupon_share": "coupon use",
    "open_rate": "message opens",
    "click_rate": "message clicks",
    "recency_days": "days since last activity",
}


#: Cluster features counted in whole units: "fewer", not "less".
_COUNTED = frozenset({"events", "active_days", "orders"})


def _more_or_less(feature: str, effect: float) -> str:
    if effect > 0:
        return "more"
    return "fewer" if feature in _COUNTED else "less"


def cluster_feature_label(name: str) -> str:
    """Words for a cluster feature (plain text): ``browse_home`` -> "browsing home"."""
    if name in _CLUSTER_WORDS:
        return _CLUSTER_WORDS[name]
    for prefix, word in (("browse_", "browsing"), ("cat_", "buying")):
        if name.startswith(prefix):
            return f"{word} {name.removeprefix(prefix).replace('_', ' ')}"
    return name


def clusters_param(value: Any) -> int | str:
    """The ``clusters`` parameter: ``"auto"`` or a whole number >= 2 (``5`` or ``"5"``)."""
    if isinstance(value, str) and value.strip().lower() == "auto":
        return "auto"
    try:
        k = int(str(value).strip())
    except ValueError:
        k = 0
    if k < 2 or str(k) != str(value).strip():
        raise ValueError(f"clusters must be 'auto' or a whole number >= 2, got {value!r}")
    return k


def choice_param(name: str, value: Any, options: tuple[str, ...]) -> str:
    """``value`` if it is one of ``options``; a ValueError naming the parameter otherwise."""
    if value not in options:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, options))}, got {value!r}")
    return value


def top_revenue_segment(summary: pd.DataFrame) -> str:
    """The segment with the largest net revenue (the default segment to profile)."""
    s = summary[summary["customers"] > 0]
    if s.empty:
        raise ValueError("no customers: there is no segment to profile")
    return str(s.sort_values("revenue", ascending=False)["segment"].iloc[0])


def file_slug(name: str) -> str:
    """A file-name-safe form of a segment name (``"Can't lose"`` -> ``"can_t_lose"``)."""
    return "".join(ch if ch.isalnum() else "_" for ch in str(name).lower()).strip("_") or "segment"


def _nan_none(d: Any) -> Any:
    if isinstance(d, dict):
        return {k: _nan_none(v) for k, v in d.items()}
    return None if isinstance(d, float) and not np.isfinite(d) else d


def holdout_metrics(
    check: dict[str, Any],
    cal_fit,
    thresholds: dict[str, Any],
    calibration_end: Any,
    threshold_check: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """``metrics.holdout``: predicted vs actual by frequency bucket, MAE, the state thresholds.

    ``churn_threshold`` / ``dormant_threshold`` are the P(alive) thresholds of repeat buyers
    (None: nobody flagged); ``one_time_thresholds`` those on P(purchase in the window) of
    one-time buyers; ``churn_holdout`` / ``dormant_holdout`` the holdout precision / recall
    of all flagged customers, ``threshold_check`` the same per group
    (:mod:`crm_helpers.segments.model_states`).
    """
    tc = threshold_check or {}
    return _nan_none({
        "calibration_end": str(calibration_end),
        "duration": check["duration"],
        "customers": check["customers"],
        "by_frequency": check["by_frequency"].to_dict("records"),
        "predicted_total": check["predicted_total"],
        "actual_total": check["actual_total"],
        "mae": check["mae"],
        "calibration_fit": cal_fit.params(),
        "churn_threshold": thresholds["repeat"]["churned"],
        "dormant_threshold": thresholds["repeat"]["dormant-risk"],
        "one_time_thresholds": {
            k: thresholds["one_time"][k] for k in ("churned", "dormant-risk")
        },
        "threshold_window_days": thresholds["window_days"],
        "threshold_inner_end": thresholds["inner_end"],
        "churn_holdout": tc.get("churned", {}).get("all"),
        "dormant_holdout": tc.get("dormant-risk", {}).get("all"),
        "threshold_check": tc or None,
    })  # fmt: skip


def threshold_note(thresholds: dict[str, Any]) -> str | None:
    """A sentence (safe Markdown) when the model flags nobody churned, else None."""
    if any(thresholds[g]["churned"] is not None for g in ("repeat", "one_time")):
        return None
    return md(
        "_On the calibration period no customer's chance of buying nothing in the next "
        "{d} days reached {p}: the model calls nobody churned (its states are the model's "
        "honest answer here; the activity rules above do not depend on it)._",
        d=int(thresholds["window_days"]),
        p=_pct(thresholds["churn_rate"]),
    )


def threshold_table(thresholds: dict[str, Any], check: dict[str, Any]) -> pd.DataFrame:
    """Per state and customer group: the threshold, its precision / recall on the calibration
    period's inner split (when chosen) and on the holdout (``check_thresholds``)."""
    rows = []
    for state in ("churned", "dormant-risk"):
        for g, label in (("repeat", "repeat buyers"), ("one_time", "one-time buyers")):
            inner, hold = thresholds["inner"][state][g], check[state][g]
            rows.append({
                "state": state if state == "churned" else "churned or dormant-risk",
                "customers": label,
                "score": thresholds[g]["score"],
                "threshold": thresholds[g][state],
                "flagged_when_chosen": inner["flagged"],
                "precision_when_chosen": inner["precision"],
                "recall_when_chosen": inner["recall"],
                "flagged_holdout": hold["flagged"],
                "precision_holdout": hold["precision"],
                "recall_holdout": hold["recall"],
            })  # fmt: skip
    return pd.DataFrame(rows)


def retention_by_group(by_group: pd.DataFrame, max_period: int = 6) -> pd.DataFrame:
    """Pooled retention per group: retained / cohort size over the cohorts old enough.

    For period k, a cohort counts if its month + k is not after the last month in the data
    (the largest cohort month + period of the frame). Returns one row per group, columns
    ``0 .. max_period`` (shares; NaN where no cohort is old enough).
    """
    if by_group.empty:
        return pd.DataFrame()
    month = by_group["cohort"].dt.year * 12 + by_group["cohort"].dt.month - 1
    last = int((month + by_group["period"]).max())
    base = by_group[by_group["period"] == 0].assign(m=month[by_group["period"] == 0])
    rows = {}
    for g, part in by_group.groupby("group", sort=True):
        sizes = base[base["group"] == g]
        for k in range(max_period + 1):
            eligible = sizes[sizes["m"] + k <= last]
            denom = eligible["cohort_size"].sum()
            num = part.loc[part["period"] == k, "retained"].sum()
            rows.setdefault(g, {})[k] = num / denom if denom else np.nan
    return pd.DataFrame.from_dict(rows, orient="index")

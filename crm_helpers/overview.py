"""Data overview: what is in the data set, computed in the engine, returned as small frames.

Every function takes a :class:`~crm_helpers.data.CRMData`, runs one or a few aggregate
queries through Ibis (DuckDB or Spark, same code) and returns a small pandas frame; the
figures in :mod:`crm_helpers.plots.overview` only draw these frames.

Words (the same in every report): *users* are the rows of the users table (or, without it,
the ids seen in events); a *purchase* is an order with ``revenue >= 0``, a refund or
cancellation one with negative revenue; *customers* are the users with at least one
purchase. Revenue is *gross* (purchases) or *net* (all orders), and every average in
:func:`overview_summary` names what it divides (per order with positive revenue, or per
customer).
"""

from __future__ import annotations

from typing import Literal

import ibis
import numpy as np
import pandas as pd

from crm_helpers.data import CRMData
from crm_helpers.report.currency import money
from crm_helpers.report.data_quality import summary_lines
from crm_helpers.report.text import Safe, join, md

#: The timestamp that dates each table's rows.
TIME_COLUMNS: dict[str, str] = {
    "users": "signup_at",
    "events": "ts",
    "orders": "ts",
    "messages": "sent_at",
    "assignments": "assigned_at",
}
MISSING_LABEL = "(missing)"
_TRUNC = {"day": "D", "week": "W", "month": "M"}

__all__ = [
    "assignment_summary",
    "attribute_columns",
    "event_counts",
    "events_over_time",
    "order_summary",
    "overview_summary",
    "quality_table",
    "table_summary",
    "users_by_attribute",
]


def table_summary(data: CRMData) -> pd.DataFrame:
    """Rows, columns and time span of every loaded table.

    Parameters
    ----------
    data
        The loaded data set.

    Returns
    -------
    pandas.DataFrame
        One row per table in contract order: ``table`` (str), ``rows`` (int),
        ``columns`` (int), ``min_ts`` / ``max_ts`` (datetime64, NaT when the table has
        no time column or no rows).
    """
    rows = []
    for name, t in data.tables.items():
        col = TIME_COLUMNS.get(name)
        aggs = {"rows": t.count()}
        if col in t.columns:
            aggs["min_ts"] = t[col].min()
            aggs["max_ts"] = t[col].max()
        res = t.aggregate(**aggs).to_pandas().iloc[0]
        rows.append(
            {
                "table": name,
                "rows": int(res["rows"]),
                "columns": len(t.columns),
                "min_ts": pd.Timestamp(res["min_ts"]) if "min_ts" in res else pd.NaT,
                "max_ts": pd.Timestamp(res["max_ts"]) if "max_ts" in res else pd.NaT,
            }
        )
    out = pd.DataFrame(rows, columns=["table", "rows", "columns", "min_ts", "max_ts"])
    out["rows"] = out["rows"].astype("int64")
    out["columns"] = out["columns"].astype("int64")
    for c in ("min_ts", "max_ts"):
        out[c] = pd.to_datetime(out[c])
    return out


def attribute_columns(data: CRMData, max_levels: int = 30) -> list[str]:
    """User attributes worth a bar chart: non-key string/boolean columns with few levels.

    Parameters
    ----------
    data
        The loaded data set (needs ``users``).
    max_levels
        Columns with more distinct values than this are left out (ids, free text).

    Returns
    -------
    list of str
        Column names of ``users`` in table order.
    """
    users = data.users
    candidates = [
        c
        for c in users.columns
        if c not in ("user_id", "signup_at")
        and (users[c].type().is_string() or users[c].type().is_boolean())
    ]
    if not candidates:
        return []
    counts = users.aggregate(**{c: users[c].nunique() for c in candidates}).to_pandas().iloc[0]
    return [c for c in candidates if 0 < int(counts[c]) <= max_levels]


def users_by_attribute(data: CRMData, attribute: str) -> pd.DataFrame:
    """Users per value of one user attribute.

    Parameters
    ----------
    data
        The loaded data set (needs ``users``).
    attribute
        A column of ``users``.

    Returns
    -------
    pandas.DataFrame
        One row per value, most users first (ties by value): ``value`` (str, nulls as
        ``"(missing)"``), ``users`` (int), ``share`` (float, of all users; sums to 1).
    """
    users = data.users
    if attribute not in users.columns:
        raise KeyError(f"users has no column {attribute!r}; its columns are {list(users.columns)}")
    value = users[attribute].cast("string").fill_null(MISSING_LABEL)
    df = users.mutate(value=value).group_by("value").aggregate(users=ibis._.count()).to_pandas()
    df["value"] = df["value"].astype(str)
    df["users"] = df["users"].astype("int64")
    total = df["users"].sum()
    df["share"] = df["users"] / total if total else 0.0
    df = df.sort_values(["users", "value"], ascending=[False, True], kind="mergesort")
    return df.reset_index(drop=True)[["value", "users", "share"]]


def event_counts(data: CRMData) -> pd.DataFrame:
    """Events per event name.

    Returns
    -------
    pandas.DataFrame
        One row per event name, most frequent first (ties by name): ``event`` (str),
        ``count`` (int, events), ``users`` (int, distinct users with the event),
        ``share`` (float, of all events; sums to 1).
    """
    ev = data.events
    df = (
        ev.group_by("event")
        .aggregate(count=ibis._.count(), users=ibis._.user_id.nunique())
        .to_pandas()
    )
    df["event"] = df["event"].astype(str)
    df["count"] = df["count"].astype("int64")
    df["users"] = df["users"].astype("int64")
    total = df["count"].sum()
    df["share"] = df["count"] / total if total else 0.0
    df = df.sort_values(["count", "event"], ascending=[False, True], kind="mergesort")
    return df.reset_index(drop=True)[["event", "count", "users", "share"]]


def events_over_time(
    data: CRMData,
    freq: Literal["day", "week", "month"] = "day",
    events: list[str] | None = None,
) -> pd.DataFrame:
    """Events per period and event name.

    Parameters
    ----------
    data
        The loaded data set (needs ``events``).
    freq
        ``"day"``, ``"week"`` (weeks start on Monday) or ``"month"``.
    events
        Keep only these event names (default: all).

    Returns
    -------
    pandas.DataFrame
        ``period`` (datetime64, start of the period), ``event`` (str), ``count`` (int);
        only non-empty (period, event) pairs, sorted by period then event.
    """
    if freq not in _TRUNC:
        raise ValueError(f"freq must be one of {list(_TRUNC)}, got {freq!r}")
    ev = data.events
    if events is not None:
        ev = ev.filter(ev.event.isin(list(events)))
    df = (
        ev.filter(ev.ts.notnull())
        .mutate(period=ev.ts.truncate(_TRUNC[freq]))
        .group_by(["period", "event"])
        .aggregate(count=ibis._.count())
        .to_pandas()
    )
    df["period"] = pd.to_datetime(df["period"])
    df["event"] = df["event"].astype(str)
    df["count"] = df["count"].astype("int64")
    df = df.sort_values(["period", "event"], kind="mergesort")
    return df.reset_index(drop=True)[["period", "event", "count"]]


def order_summary(data: CRMData) -> pd.DataFrame:
    """Orders, purchases, customers and revenue of the ``orders`` table (one aggregate query).

    The words follow :mod:`crm_helpers.segments.core`: a *purchase* is an order with
    ``revenue >= 0``; refunds and cancellations are the orders with negative revenue (see the
    order-lines rule in ``data/README.md``); a *customer* is a user with at least one
    purchase (a user whose only orders are refunds or cancellations is not a customer).
    *Net* revenue is the sum over all orders, *gross* revenue the sum over purchases.

    Returns
    -------
    pandas.DataFrame
        One row: ``orders`` (int, all order rows, refunds included), ``purchases`` (int,
        orders with ``revenue >= 0``), ``customers`` (int, distinct ``user_id`` with a
        purchase), ``users_with_orders`` (int, distinct ``user_id`` with any order),
        ``revenue`` (float, net sum), ``gross_revenue`` (float, sum over purchases),
        ``average_order_value`` (float, mean revenue of the orders with positive revenue,
        gross; NaN without any), ``revenue_per_customer`` (float, net revenue / customers),
        ``orders_per_customer`` (float, purchases / customers), ``refunds`` (int, orders with
        negative revenue), ``refund_revenue`` (float, their sum, <= 0).
    """
    o = data.orders
    pos = o.revenue > 0
    buy = o.revenue >= 0
    neg = o.revenue < 0
    # A float sum depends on the order the engine adds in (threads, Spark partitions): sum
    # exact decimals, so reruns and engines give the same figures to the last digit.
    exact = o.revenue.cast("decimal(38, 9)")
    r = (
        o.aggregate(
            orders=o.count(),
            purchases=buy.ifelse(1, 0).sum(),
            customers=o.user_id.nunique(where=buy),
            users_with_orders=o.user_id.nunique(),
            revenue=exact.sum(),
            positive_revenue=exact.sum(where=pos),
            positive_orders=pos.ifelse(1, 0).sum(),
            refunds=neg.ifelse(1, 0).sum(),
            refund_revenue=exact.sum(where=neg),
        )
        .to_pandas()
        .iloc[0]
    )
    n, customers = int(r["orders"]), int(r["customers"] or 0)
    n_pos, n_buy = int(r["positive_orders"] or 0), int(r["purchases"] or 0)

    def num(v: object) -> float:
        return float("nan") if v is None or pd.isna(v) else float(v)

    net = num(r["revenue"]) if n else 0.0
    return pd.DataFrame(
        {
            "orders": [n],
            "purchases": [n_buy],
            "customers": [customers],
            "users_with_orders": [int(r["users_with_orders"] or 0)],
            "revenue": [net],
            "gross_revenue": [num(r["positive_revenue"]) if n_pos else 0.0],
            "average_order_value": [num(r["positive_revenue"]) / n_pos if n_pos else float("nan")],
            "revenue_per_customer": [net / customers if customers else float("nan")],
            "orders_per_customer": [n_buy / customers if customers else float("nan")],
            "refunds": [int(r["refunds"] or 0)],
            "refund_revenue": [num(r["refund_revenue"]) if int(r["refunds"] or 0) else 0.0],
        }
    )


def assignment_summary(data: CRMData) -> pd.DataFrame:
    """Users per experiment and variant of the ``assignments`` table.

    Returns
    -------
    pandas.DataFrame
        ``experiment_id`` (str), ``variant`` (str), ``users`` (int), ``share`` (float, of the
        experiment's users), ``first_assigned`` / ``last_assigned`` (datetime64); sorted by
        experiment then variant.
    """
    a = data.assignments
    df = (
        a.group_by(experiment_id=a.experiment_id.cast("string"), variant=a.variant)
        .agg(users=a.count(), first_assigned=a.assigned_at.min(), last_assigned=a.assigned_at.max())
        .to_pandas()
    )
    df["users"] = df["users"].astype("int64")
    df["share"] = df["users"] / df.groupby("experiment_id")["users"].transform("sum")
    for c in ("first_assigned", "last_assigned"):
        df[c] = pd.to_datetime(df[c])
    df = df.sort_values(["experiment_id", "variant"], kind="mergesort").reset_index(drop=True)
    return df[["experiment_id", "variant", "users", "share", "first_assigned", "last_assigned"]]


def quality_table(data: CRMData) -> pd.DataFrame:
    """The data-quality findings of the load, one row per finding.

    Returns
    -------
    pandas.DataFrame
        ``table, column, check, severity, count, message, fix`` (empty when clean).
    """
    return data.quality.to_frame()


def overview_summary(
    tables: pd.DataFrame,
    events: pd.DataFrame | None,
    quality: pd.DataFrame,
    top_n_events: int = 3,
    orders: pd.DataFrame | None = None,
    currency: str = "",
) -> list[str]:
    """Plain-language findings of the overview, one sentence per bullet.

    Parameters
    ----------
    tables
        :func:`table_summary` output.
    events
        :func:`event_counts` output, or None when there is no events table.
    quality
        :func:`quality_table` output.
    top_n_events
        How many event names to mention.
    orders
        :func:`order_summary` output, or None when there is no orders table.
    currency
        The money's currency (``EUR``, ``€``; empty: amounts alone), for the revenue.

    Returns
    -------
    list of str
        Safe Markdown (:func:`crm_helpers.report.text.md`): event names, table and column
        names from the data are escaped.
    """
    by_name = tables.set_index("table")
    lines = []
    parts = [md("{n:,} {t}", n=int(by_name.loc[t, "rows"]), t=t) for t in by_name.index]
    if parts:
        lines.append(md("The data set holds {parts}.", parts=join(parts)))
    else:
        lines.append(md("The data set holds no table of the data contract (data/README.md)."))
    if "events" in by_name.index and pd.notna(by_name.loc["events", "min_ts"]):
        lo, hi = by_name.loc["events", "min_ts"], by_name.loc["events", "max_ts"]
        days = (hi.normalize() - lo.normalize()).days + 1
        period = md(
            "Events run from {lo} to {hi} ({days:,} days)",
            lo=f"{lo:%Y-%m-%d}",
            hi=f"{hi:%Y-%m-%d}",
            days=days,
        )
        dated = (
            quality[
                (quality["table"] == "events")
                & quality["check"].isin(["ancient_dates", "future_events"])
            ]
            if len(quality)
            else quality
        )
        if len(dated):
            period += md(
                "; {n:,} events with implausible dates ({what}) are excluded from it and from "
                "every analysis",
                n=int(dated["count"].sum()),
                what=join(
                    "before 1990-01-01" if c == "ancient_dates" else "in the future"
                    for c in dated["check"]
                ),
            )
        lines.append(Safe(period + "."))
    if "users" in by_name.index and "events" in by_name.index and by_name.loc["users", "rows"]:
        per_user = by_name.loc["events", "rows"] / by_name.loc["users", "rows"]
        lines.append(
            md("That is {x:,.1f} events per user of the users table on average.", x=per_user)
        )
    if events is not None and len(events):
        top = events.head(top_n_events)
        parts = [md("{e} ({s:.0%})", e=r.event, s=r.share) for r in top.itertuples()]
        lines.append(
            md(
                "The most frequent of {n:,} event types (share of all events): {parts}.",
                n=len(events),
                parts=join(parts),
            )
        )
    if orders is not None and len(orders) and int(orders["orders"].iloc[0]):
        lines += _order_lines(orders.iloc[0], currency)
    # implausible dates of other tables, lost time order (the events' dates: above; the
    # largest warning: below)
    said = [("events", "ancient_dates"), ("events", "future_events")]
    if len(quality):
        top = quality.sort_values("count", ascending=False, kind="mergesort").iloc[0]
        said.append((top["table"], top["check"]))
    lines += summary_lines(quality, skip=said)
    if len(quality):
        n_err = int((quality["severity"] == "error").sum())
        n_warn = int((quality["severity"] == "warning").sum())
        worst = quality.sort_values("count", ascending=False, kind="mergesort").iloc[0]
        col = worst["column"]
        where = f"{worst['table']}.{col}" if isinstance(col, str) and col else worst["table"]
        lines.append(
            md(
                "Data-quality checks found {w:,} warning(s) and {e:,} error(s); the "
                "largest: {where}: {msg} ({n:,} rows).",
                w=n_warn,
                e=n_err,
                where=where,
                msg=worst["message"],
                n=int(worst["count"]),
            )
        )
    else:
        lines.append(md("Data-quality checks found no problems."))
    return lines


def _order_lines(o: pd.Series, currency: str = "") -> list[str]:
    """The orders sentences of :func:`overview_summary` (one :func:`order_summary` row).

    Each figure names its definition: purchases are the orders with ``revenue >= 0``,
    customers the users with a purchase, revenue is gross (purchases) and net (after refunds
    and cancellations), the average order is the mean over orders with positive revenue and
    the per-customer figures divide by the customers.
    """
    refunds = int(o["refunds"])
    n, customers = int(o["orders"]), int(o["customers"])
    if refunds:
        first = md(
            "{n:,} orders: {p:,} purchases by {c:,} customers (users with at least one "
            "purchase) bring {gross} gross; {k:,} refunds/cancellations (orders with "
            "negative revenue) take back {ref}, leaving {net} in net revenue",
            n=n,
            p=int(o["purchases"]),
            c=customers,
            gross=money(float(o["gross_revenue"]), currency, 2),
            k=refunds,
            ref=money(-float(o["refund_revenue"]), currency, 2),
            net=money(float(o["revenue"]), currency, 2),
        )
        only = int(o["users_with_orders"]) - customers
        if only:
            first += md(
                " ({u:,} users with only refunds/cancellations are not counted as customers)",
                u=only,
            )
        first += "."
    else:
        first = md(
            "{n:,} orders by {c:,} customers bring {net} in revenue (no refunds or cancellations).",
            n=n,
            c=customers,
            net=money(float(o["revenue"]), currency, 2),
        )
    lines = [first]
    if np.isfinite(o["average_order_value"]) and customers:
        lines.append(
            md(
                "An order with positive revenue is worth {aov} on average (gross, before "
                "refunds); per customer, net revenue ÷ customers = {rpc} and purchases ÷ "
                "customers = {ppc:,.2f}.",
                aov=money(float(o["average_order_value"]), currency, 2),
                rpc=money(float(o["revenue_per_customer"]), currency, 2),
                ppc=float(o["orders_per_customer"]),
            )
        )
    return lines

"""Per-customer RFM and the buy-till-you-die summary, computed in the engine (Ibis).

Everything per order or per customer is one Ibis expression that runs unchanged on DuckDB
and Spark; only per-segment aggregates (and, for the models, the counts of distinct
``(frequency, recency, T)`` triples, their sufficient statistics) come back as pandas.

Semantics
---------
Input: ``orders`` with ``user_id, ts`` (naive UTC) and ``revenue``.

*Days.* An order's day is its UTC calendar day, as an integer day number
(``floor(epoch_us / 86400e6)``). ``as_of`` is a date: the orders of that day and before
count ("as of the end of that day"); later orders are ignored.

*Purchases and refunds.* A purchase is an order with ``revenue >= 0`` (a free or fully
discounted order is a purchase, as in the CDNOW data). Orders with ``revenue < 0``
(refunds, cancellations) are not purchases; they only enter the net revenue. A *customer*
is a user with at least one purchase on or before ``as_of`` (a user with refunds only is
not a customer).

*RFM* (:func:`rfm_table`), per customer:

- ``recency_days`` = ``as_of`` day - day of the last purchase (0: bought on ``as_of``);
- ``frequency`` = number of purchases (order rows with ``revenue >= 0``);
- ``monetary`` = net revenue of all the customer's orders up to ``as_of`` (purchases plus
  refunds and zero-revenue orders: it may be zero or negative);
- ``avg_order_value`` = ``monetary / frequency``.

*Scores 1-5* by mid-rank quintiles, so ties always share a score and the result does not
depend on row order: with ``n`` customers, ``below`` of them strictly worse and ``ties``
equal (the customer included), ``score = 1 + floor(5 * (2*below + ties) / (2*n))``.
"Worse" is a larger ``recency_days`` for R, a smaller ``frequency`` for F and a smaller
``monetary`` for M. Distinct values give plain quintiles; if every customer has the same
value, all score 3.

*Segments* (:data:`DEFAULT_RULES`): the first rule whose inclusive ``r`` and ``f`` (and,
when given, ``m``) score ranges contain the customer's scores; ``"Other"`` when none does.
:func:`segment_summary` gives each rule's customers, share of customers, net revenue,
revenue share (of the total net revenue of all customers), average order value (net
revenue / purchases) and the suggested CRM action.

*BTYD summary* (:func:`btyd_summary`), as ``lifetimes.utils.summary_data_from_transaction_data``
computes it: purchases are grouped per customer and day (several purchases on one day are
one transaction whose value is their sum); ``frequency`` = purchase days - 1 (the first
purchase is not a repeat); ``recency`` = last - first purchase day; ``T`` = observation end -
first purchase day; both divided by ``time_unit_days`` (7: weeks);
``monetary_value`` = mean value of the repeat purchase days (0 when ``frequency == 0``).
With ``calibration_end``, the summary is computed at ``calibration_end`` for customers whose
first purchase is on or before it, and ``frequency_holdout`` (purchase days in
``(calibration_end, observation_end]``), ``monetary_value_holdout`` (their mean value, 0 if
none) and ``duration_holdout`` are added, as ``lifetimes.utils.calibration_and_holdout_data``.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from typing import Any

import ibis
import ibis.expr.types as ir
import pandas as pd

from crm_helpers.engine import epoch_us
from crm_helpers.exact import exact_sum

__all__ = [
    "DEFAULT_RULES",
    "SegmentRule",
    "as_day",
    "btyd_summary",
    "day_number",
    "parse_rules",
    "purchase_days",
    "rfm_table",
    "score_expr",
    "segment_summary",
]

US_PER_DAY = 86_400_000_000
_EPOCH = _dt.date(1970, 1, 1)


@dataclass(frozen=True)
class SegmentRule:
    """One named RFM segment: inclusive score ranges and the suggested CRM action."""

    segment: str
    r: tuple[int, int]
    f: tuple[int, int]
    action: str
    m: tuple[int, int] | None = None


#: The classic 11 RFM segments on the R x F grid (every cell covered once, first match wins).
DEFAULT_RULES: tuple[SegmentRule, ...] = (
    SegmentRule("Champions", (5, 5), (4, 5), "Reward them: early access, loyalty perks, ask for reviews."),
    SegmentRule("Loyal", (3, 4), (4, 5), "Upsell higher-value products; invite to the loyalty programme."),
    SegmentRule("Potential loyalist", (4, 5), (2, 3), "Offer membership or a second-category recommendation."),
    SegmentRule("New", (5, 5), (1, 1), "Onboard: welcome series, how-to content, first-repeat incentive."),
    SegmentRule("Promising", (4, 4), (1, 1), "Build the habit: personalised recommendations, free shipping."),
    SegmentRule("Needs attention", (3, 3), (3, 3), "Time-limited offer based on past purchases."),
    SegmentRule("About to sleep", (3, 3), (1, 2), "Reactivate with popular products and a small discount."),
    SegmentRule("Can't lose", (1, 2), (5, 5), "Win back personally: call or tailored offer; ask what went wrong."),
    SegmentRule("At risk", (1, 2), (3, 4), "Personalised win-back emails with a strong offer."),
    SegmentRule("Hibernating", (2, 2), (1, 2), "Low-cost reminder of relevant products; suppress if no response."),
    SegmentRule("Lost", (1, 1), (1, 2), "Last-chance win-back; otherwise suppress to save send costs."),
)  # fmt: skip

OTHER = "Other"


def parse_rules(rules: Any) -> tuple[SegmentRule, ...]:
    """Rules from a notebook parameter: ``[]`` (defaults) or a list of dicts.

    Each dict has ``segment``, ``r`` and ``f`` (``[low, high]``, scores 1-5, inclusive),
    optional ``m`` and ``action``. Raises ``ValueError`` naming the bad rule.
    """
    if not rules:
        return DEFAULT_RULES
    out = []
    for i, rule in enumerate(rules):
        if isinstance(rule, SegmentRule):
            out.append(rule)
            continue
        if not isinstance(rule, dict) or not {"segment", "r", "f"} <= set(rule):
            raise ValueError(
                f"RFM rule {i} must be a dict with 'segment', 'r' and 'f' (and optional 'm', "
                f"'action'), e.g. {{'segment': 'Champions', 'r': [5, 5], 'f': [4, 5]}}; got {rule!r}"
            )
        ranges = {}
        for key in ("r", "f", "m"):
            v = rule.get(key)
            if v is None and key == "m":
                ranges[key] = None
                continue
            if (
                not isinstance(v, list | tuple)
                or len(v) != 2
                or not all(isinstance(x, int) and 1 <= x <= 5 for x in v)
                or v[0] > v[1]
            ):
                raise ValueError(
                    f"RFM rule {rule['segment']!r}: '{key}' must be [low, high] with "
                    f"1 <= low <= high <= 5, got {v!r}"
                )
            ranges[key] = (int(v[0]), int(v[1]))
        out.append(
            SegmentRule(str(rule["segment"]), ranges["r"], ranges["f"], str(rule.get("action", "")), ranges["m"])
        )  # fmt: skip
    names = [r.segment for r in out]
    if len(set(names)) != len(names) or OTHER in names:
        raise ValueError(f"RFM rule names must be unique and not {OTHER!r}: {names}")
    return tuple(out)


def as_day(value: Any, what: str = "date") -> _dt.date:
    """A date from ``"2025-06-30"``, a date, datetime or Timestamp; a clear error otherwise."""
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{what} must be a date such as '2025-06-30', got {value!r}") from exc
    if ts is pd.NaT:
        raise ValueError(f"{what} must be a date such as '2025-06-30', got {value!r}")
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return ts.date()


def day_number(value: Any) -> int:
    """Days since 1970-01-01 of a date (the integer day the engine computes for a ts)."""
    return (as_day(value) - _EPOCH).days


def _backend(t: ir.Table) -> str | None:
    try:
        return t._find_backend(use_default=True).name
    except Exception:  # noqa: BLE001 - memtables without a default backend
        return None


def _day(t: ir.Table) -> ir.IntegerValue:
    return epoch_us(t.ts, _backend(t)) // US_PER_DAY


def purchase_days(orders: ir.Table, until: Any) -> ir.Table:
    """Purchase days per customer up to ``until`` (inclusive): ``user_id, day, revenue``.

    ``day`` is the integer day number; ``revenue`` the day's purchase revenue (sum of
    its orders with ``revenue >= 0``).
    """
    end = day_number(until)
    o = orders.select("user_id", "revenue", day=_day(orders))
    o = o.filter((o.revenue >= 0) & (o.day <= end))
    return o.group_by(["user_id", "day"]).agg(revenue=exact_sum(o.revenue))


def score_expr(t: ir.Table, col: str, higher_is_better: bool) -> ir.IntegerValue:
    """The 1-5 mid-rank quintile score of ``col`` (see the module docstring)."""
    order = t[col] if higher_is_better else ibis.desc(t[col])
    below = ibis.rank().over(ibis.window(order_by=order))  # 0-based: rows strictly worse
    ties = t.user_id.count().over(ibis.window(group_by=t[col]))
    n = t.user_id.count().over(ibis.window())
    return (1 + (5 * (2 * below + ties)) // (2 * n)).cast("int64")


def _segment_case(t: ir.Table, rules: tuple[SegmentRule, ...]) -> ir.StringValue:
    branches = []
    for rule in rules:
        cond = t.r_score.between(*rule.r) & t.f_score.between(*rule.f)
        if rule.m is not None:
            cond = cond & t.m_score.between(*rule.m)
        branches.append((cond, rule.segment))
    return ibis.cases(*branches, else_=OTHER)


def rfm_table(orders: ir.Table, as_of: Any, rules: Any = DEFAULT_RULES) -> ir.Table:
    """RFM per customer at ``as_of`` (an Ibis table; see the module docstring).

    Parameters
    ----------
    orders : ibis.Table
        ``user_id, ts, revenue`` (one row per order).
    as_of : str or date
        Orders on this UTC day and before count.
    rules : sequence of SegmentRule or list of dict, optional
        The segment rule table (:data:`DEFAULT_RULES`; see :func:`parse_rules`).

    Returns
    -------
    ibis.Table
        One row per customer: ``user_id, recency_days, frequency, monetary,
        avg_order_value, first_day, last_day, r_score, f_score, m_score, rfm, segment``.
    """
    rules = parse_rules(rules)
    end = day_number(as_of)
    o = orders.select("user_id", "revenue", day=_day(orders)).filter(lambda t: t.day <= end)
    buy = o.revenue >= 0
    per = o.group_by("user_id").agg(
        frequency=buy.ifelse(1, 0).sum().cast("int64"),
        monetary=exact_sum(o.revenue),
        first_day=buy.ifelse(o.day, None).min(),
        last_day=buy.ifelse(o.day, None).max(),
    )
    per = per.filter(per.frequency > 0)
    per = per.mutate(
        recency_days=(end - per.last_day).cast("int64"),
        avg_order_value=per.monetary / per.frequency,
    )
    per = per.mutate(
        r_score=score_expr(per, "recency_days", higher_is_better=False),
        f_score=score_expr(per, "frequency", higher_is_better=True),
        m_score=score_expr(per, "monetary", higher_is_better=True),
    )
    per = per.mutate(
        rfm=per.r_score.cast("string").concat(
            per.f_score.cast("string"), per.m_score.cast("string")
        )
    )
    per = per.mutate(segment=_segment_case(per, rules))
    return per.select(
        "user_id", "recency_days", "frequency", "monetary", "avg_order_value", "first_day",
        "last_day", "r_score", "f_score", "m_score", "rfm", "segment",
    )  # fmt: skip


def segment_summary(rfm: ir.Table, rules: Any = DEFAULT_RULES) -> pd.DataFrame:
    """One row per rule (in rule order, empty segments included) and ``Other`` if used.

    Returns
    -------
    pandas.DataFrame
        ``segment, customers, customer_share, revenue, revenue_share, purchases,
        avg_order_value, action``. ``revenue_share`` is NaN when the total net revenue is
        not positive; ``avg_order_value`` is NaN for an empty segment.
    """
    rules = parse_rules(rules)
    agg = (
        rfm.group_by("segment")
        .agg(
            customers=rfm.user_id.count(),
            revenue=exact_sum(rfm.monetary),
            purchases=rfm.frequency.sum(),
        )
        .to_pandas()
        .set_index("segment")
    )
    names = [r.segment for r in rules] + ([OTHER] if OTHER in agg.index else [])
    out = agg.reindex(names)
    out["customers"] = out["customers"].fillna(0).astype("int64")
    out["purchases"] = out["purchases"].fillna(0).astype("int64")
    out["revenue"] = out["revenue"].fillna(0.0).astype(float)
    n, total = out["customers"].sum(), out["revenue"].sum()
    out["customer_share"] = out["customers"] / n if n else float("nan")
    out["revenue_share"] = out["revenue"] / total if total > 0 else float("nan")
    out["avg_order_value"] = out["revenue"] / out["purchases"].where(out["purchases"] > 0)
    actions = {r.segment: r.action for r in rules}
    out["action"] = [actions.get(s, "") for s in out.index]
    out = out.reset_index(names="segment")
    return out[
        ["segment", "customers", "customer_share", "revenue", "revenue_share", "purchases",
         "avg_order_value", "action"]
    ]  # fmt: skip


def btyd_summary(
    orders: ir.Table,
    observation_end: Any,
    *,
    time_unit_days: float = 1.0,
    calibration_end: Any = None,
) -> ir.Table:
    """Frequency / recency / T (and the holdout) per customer, as lifetimes defines them.

    Parameters
    ----------
    orders : ibis.Table
        ``user_id, ts, revenue``.
    observation_end : str or date
        Last day observed (inclusive).
    time_unit_days : float, default 1.0
        Length of the model's time unit in days (7: weeks).
    calibration_end : str or date, optional
        Split day (inclusive in the calibration period); must be before ``observation_end``.

    Returns
    -------
    ibis.Table
        ``user_id, frequency, recency, T, monetary_value, first_day`` and, with
        ``calibration_end``, ``frequency_holdout, monetary_value_holdout, duration_holdout``.
    """
    if not time_unit_days > 0:
        raise ValueError(f"time_unit_days must be > 0, got {time_unit_days!r}")
    obs = day_number(observation_end)
    cal = obs if calibration_end is None else day_number(calibration_end)
    if cal > obs:
        raise ValueError(
            f"calibration_end ({as_day(calibration_end)}) must be on or before the observation "
            f"end ({as_day(observation_end)})"
        )
    if calibration_end is not None and cal == obs:
        raise ValueError("calibration_end must be before the observation end (empty holdout)")
    d = purchase_days(orders, observation_end)
    d = d.mutate(first_day=d.day.min().over(ibis.window(group_by=d.user_id)))
    d = d.filter(d.first_day <= cal)
    in_cal = d.day <= cal
    repeat = in_cal & (d.day > d.first_day)
    hold = d.day > cal
    per = d.group_by("user_id").agg(
        first_day=d.first_day.min(),
        last_day=in_cal.ifelse(d.day, None).max(),
        frequency=repeat.ifelse(1, 0).sum().cast("int64"),
        repeat_revenue=exact_sum(repeat.ifelse(d.revenue, 0.0)),
        frequency_holdout=hold.ifelse(1, 0).sum().cast("int64"),
        holdout_revenue=exact_sum(hold.ifelse(d.revenue, 0.0)),
    )
    unit = float(time_unit_days)
    cols = {
        "user_id": per.user_id,
        "frequency": per.frequency,
        "recency": (per.last_day - per.first_day).cast("float64") / unit,
        "T": (cal - per.first_day).cast("float64") / unit,
        "monetary_value": (per.frequency > 0).ifelse(
            per.repeat_revenue / per.frequency.cast("float64"), 0.0
        ),
        "first_day": per.first_day,
    }
    if calibration_end is not None:
        cols["frequency_holdout"] = per.frequency_holdout
        cols["monetary_value_holdout"] = (per.frequency_holdout > 0).ifelse(
            per.holdout_revenue / per.frequency_holdout.cast("float64"), 0.0
        )
        cols["duration_holdout"] = ibis.literal((obs - cal) / unit, "float64")
    return per.select(**cols)


def last_order_date(orders: ir.Table) -> _dt.date | None:
    """The UTC date of the last order (the notebook's default ``as_of``); None without orders."""
    ts = orders.ts.max().execute()
    return None if ts is None or pd.isna(ts) else pd.Timestamp(ts).date()


def default_calibration_end(orders: ir.Table, as_of: Any, fraction: float = 2 / 3) -> _dt.date:
    """The day ``fraction`` of the way from the first order's day to ``as_of``."""
    first = orders.ts.min().execute()
    if first is None or pd.isna(first):
        raise ValueError("no orders: cannot derive calibration_end")
    start, end = pd.Timestamp(pd.Timestamp(first).date()), pd.Timestamp(as_day(as_of))
    if end <= start:
        raise ValueError(f"as_of ({end.date()}) must be after the first order ({start.date()})")
    return (start + pd.Timedelta(days=int((end - start).days * fraction))).date()


def rfm_grid(rfm: ir.Table) -> pd.DataFrame:
    """Customers per ``(r_score, f_score)`` cell with the cell's segment (for the grid chart).

    A cell's ``segment`` is the most common segment of its customers (the same for all of
    them unless a rule also constrains ``m``).
    """
    g = (
        rfm.group_by(["r_score", "f_score", "segment"])
        .agg(customers=rfm.user_id.count())
        .to_pandas()
    )
    g = g.sort_values("customers", ascending=False)
    seg = g.drop_duplicates(["r_score", "f_score"]).set_index(["r_score", "f_score"])["segment"]
    out = g.groupby(["r_score", "f_score"], as_index=False)["customers"].sum()
    out["segment"] = [seg[(r, f)] for r, f in zip(out["r_score"], out["f_score"], strict=True)]
    return out

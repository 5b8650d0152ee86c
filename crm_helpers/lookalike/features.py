"""Per-user features for lookalike models, computed in the engine (Ibis: DuckDB or Spark).

One row per user of the *population* (the ``users`` table when there is one, else every
``user_id`` seen in ``events``), one float column per feature, over the lookback window
``[as_of - lookback_days, as_of)`` (timestamps are naive UTC). The same
:class:`FeatureSpec` serves training and scoring, so a model always sees the same columns.

Leakage rule: no feature may see the events that define the seed. The event names in
``FeatureSpec.excluded_events`` are removed from the events before any feature is computed
(one condition in the window filter of the same query): they count in no total, count,
recency, active day, share or time-of-day ratio, and get no ``count:`` column. With
``exclude_orders`` the RFM features of ``orders`` are not built at all. (The alternative,
cutting every user's features at the moment his seed qualified, was not chosen: rules count
over a window, so the moment is ill-defined for non-seeds.)

Features (only those the data allow; names are the column names):

- ``events``: events in the window; ``active_days``: distinct UTC dates with an event;
  ``recency_days``: days from the last event in the window to ``as_of``
  (``lookback_days`` when the user had none);
- ``count:<event>``: events of each event type (the ``max_levels`` most frequent types);
- ``category:<c>``, ``platform:<p>``, ``channel:<c>``: the user's share of events whose
  ``category`` / ``platform`` / ``channel`` is ``c`` among his events where that column is
  not empty (0 when none); events columns absent from the data give no features;
- ``hour:night|morning|afternoon|evening``: share of the user's events at UTC hours
  [0, 6), [6, 12), [12, 18), [18, 24) (0 when no events);
- with ``orders``: ``orders``, ``revenue`` (net sum), ``avg_order_value`` (0 without
  orders) and ``order_recency_days`` (``lookback_days`` without orders) — RFM;
- with ``messages``: ``messages_sent`` (``sent_at`` in the window), ``open_rate`` and
  ``click_rate`` among them (0 when none sent; only when ``opened_at`` / ``clicked_at`` exist);
- with ``users``: ``tenure_days`` (``as_of - signup_at`` in days) and one-hot attributes
  ``attr:<column>=<value>`` for each text column of ``users`` (the ``max_levels`` most
  frequent values; an empty value is all zeros). Columns in ``exclude_attributes`` (e.g. the
  column that defines the seed) are left out.

Vocabularies (event types, categories, attribute values) are read from the data once by
:func:`feature_spec`, ordered by frequency then value, so column order is deterministic.
:mod:`crm_helpers.lookalike.reference` computes the same table in plain pandas.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import ibis
import ibis.expr.datatypes as dt
import pandas as pd

__all__ = ["HOUR_BINS", "FeatureSpec", "feature_frame", "feature_spec", "feature_table"]

#: Time-of-day bins (UTC hours, half-open).
HOUR_BINS: dict[str, tuple[int, int]] = {
    "night": (0, 6),
    "morning": (6, 12),
    "afternoon": (12, 18),
    "evening": (18, 24),
}

_SHARE_COLUMNS = ("category", "platform", "channel")


@dataclass(frozen=True)
class FeatureSpec:
    """What :func:`feature_table` computes: the window and the vocabularies.

    Attributes
    ----------
    as_of : pandas.Timestamp
        End of the window (exclusive), naive UTC.
    lookback_days : int
        Window length in days.
    event_types : tuple of str
        Event types counted as ``count:<event>``.
    shares : dict
        ``{"category" | "platform" | "channel": (values, ...)}`` for event columns present.
    attributes : dict
        ``{users column: (values, ...)}`` one-hot encoded.
    orders, messages, tenure : bool
        Whether the RFM, message-engagement and tenure features are built.
    message_rates : tuple of str
        ``"open_rate"`` / ``"click_rate"`` when the messages have those timestamps.
    """

    as_of: pd.Timestamp
    lookback_days: int
    event_types: tuple[str, ...] = ()
    shares: dict[str, tuple[str, ...]] = field(default_factory=dict)
    attributes: dict[str, tuple[str, ...]] = field(default_factory=dict)
    orders: bool = False
    messages: bool = False
    message_rates: tuple[str, ...] = ()
    tenure: bool = False
    excluded_events: tuple[str, ...] = ()

    @property
    def start(self) -> pd.Timestamp:
        return self.as_of - pd.Timedelta(days=self.lookback_days)

    @property
    def names(self) -> list[str]:
        """Feature column names, in the order :func:`feature_table` returns them."""
        out = ["events", "active_days", "recency_days"]
        out += [f"count:{e}" for e in self.event_types]
        for col, values in self.shares.items():
            out += [f"{col}:{v}" for v in values]
        out += [f"hour:{h}" for h in HOUR_BINS]
        if self.orders:
            out += ["orders", "revenue", "avg_order_value", "order_recency_days"]
        if self.messages:
            out += ["messages_sent", *self.message_rates]
        if self.tenure:
            out.append("tenure_days")
        for col, values in self.attributes.items():
            out += [f"attr:{col}={v}" for v in values]
        return out


def _top_values(t: ibis.Table, col: str, k: int) -> tuple[str, ...]:
    counts = (
        t.filter(t[col].notnull())
        .group_by(col)
        .agg(n=lambda s: s.count())
        .order_by([ibis.desc("n"), col])
        .limit(k)
        .to_pandas()
    )
    return tuple(str(v) for v in counts[col])


def _window(t: ibis.Table, ts: str, spec: FeatureSpec) -> ibis.Table:
    return t.filter((t[ts] >= spec.start.to_pydatetime()) & (t[ts] < spec.as_of.to_pydatetime()))


def _event_window(events: ibis.Table, spec: FeatureSpec) -> ibis.Table:
    """The events of the window without the seed-defining ones (one filter, same query)."""
    ev = _window(events, "ts", spec)
    if spec.excluded_events:
        ev = ev.filter(~ev.event.isin(list(spec.excluded_events)))
    return ev


def feature_spec(
    data,
    lookback_days: int = 90,
    as_of: str | pd.Timestamp | None = None,
    max_levels: int = 10,
    exclude_attributes: Iterable[str] = (),
    exclude_events: Iterable[str] = (),
    exclude_orders: bool = False,
) -> FeatureSpec:
    """Read the window and the vocabularies from the data (a few small queries).

    Parameters
    ----------
    data : CRMData
        Needs ``events``; ``orders``, ``messages``, ``users`` are used when present.
    lookback_days : int, default 90
        Window length, > 0.
    as_of : str or Timestamp, optional
        End of the window (exclusive). Default: midnight after the last event's UTC date.
    max_levels : int, default 10
        Most frequent values kept per categorical column (event types, categories,
        platforms, channels, attributes), >= 1.
    exclude_attributes : iterable of str
        ``users`` columns never used as features (e.g. the seed column).
    exclude_events : iterable of str
        Event names whose rows no feature sees (the events that define a rule seed).
    exclude_orders : bool, default False
        Build no ``orders`` features (a purchase seed counted on ``orders``).

    Returns
    -------
    FeatureSpec
    """
    if int(lookback_days) != lookback_days or lookback_days <= 0:
        raise ValueError(f"lookback_days must be a positive whole number, got {lookback_days!r}")
    if int(max_levels) != max_levels or max_levels < 1:
        raise ValueError(f"max_levels must be a whole number >= 1, got {max_levels!r}")
    events = data.events
    if as_of is None or as_of == "":
        last = events.ts.max().to_pandas()
        if last is None or pd.isna(last):
            raise ValueError("the events table is empty: no window to build features over")
        as_of = pd.Timestamp(last).floor("D") + pd.Timedelta(days=1)
    as_of = pd.Timestamp(as_of)
    if as_of.tzinfo is not None:
        as_of = as_of.tz_convert("UTC").tz_localize(None)
    dropped_events = tuple(dict.fromkeys(str(e) for e in exclude_events))
    probe = FeatureSpec(
        as_of=as_of, lookback_days=int(lookback_days), excluded_events=dropped_events
    )
    ev = _event_window(events, probe)
    shares = {c: _top_values(ev, c, max_levels) for c in _SHARE_COLUMNS if c in events.columns}
    excluded = set(exclude_attributes)
    attributes: dict[str, tuple[str, ...]] = {}
    tenure = False
    if data.has("users"):
        users = data.users
        for col, typ in users.schema().items():
            if col == "user_id" or col in excluded or not isinstance(typ, dt.String):
                continue
            attributes[col] = _top_values(users, col, max_levels)
        tenure = "signup_at" in users.columns and "signup_at" not in excluded
    rates: tuple[str, ...] = ()
    if data.has("messages"):
        rates = tuple(
            f"{w}_rate" for w in ("open", "click") if f"{w}ed_at" in data.messages.columns
        )
    return FeatureSpec(
        as_of=as_of,
        lookback_days=int(lookback_days),
        event_types=_top_values(ev, "event", max_levels),
        shares={c: v for c, v in shares.items() if v},
        attributes={c: v for c, v in attributes.items() if v},
        orders=data.has("orders") and not exclude_orders,
        messages=data.has("messages"),
        message_rates=rates,
        tenure=tenure,
        excluded_events=dropped_events,
    )


def _count_if(cond: ibis.BooleanValue) -> ibis.IntegerValue:
    """Rows of the group where ``cond`` is true (NULL counts as false).

    A sum of the condition as an integer rather than ``count(*) FILTER (WHERE cond)``: with
    thirty-odd such counts per user the filtered form builds a selection vector per
    aggregate, the sum adds a column straight into the group's state (DuckDB: the event
    aggregate of the 1M-user benchmark takes about a third less CPU). Every group has at
    least one row, so the sum is never NULL.
    """
    return cond.cast("int64").sum()


def _share(num: ibis.Value, den: ibis.Value) -> ibis.Value:
    return ibis.ifelse(den > 0, num.cast("float64") / den.cast("float64"), 0.0)


def _days_before(as_of: pd.Timestamp, ts: ibis.Value, default: float) -> ibis.Value:
    end = as_of.value // 10**9  # epoch seconds of as_of
    return ibis.ifelse(ts.isnull(), default, (end - ts.epoch_seconds()) / 86400.0)


def population(data) -> ibis.Table:
    """The users a lookalike ranks: ``users.user_id``, else distinct ``events.user_id``."""
    if data.has("users"):
        return data.users.select("user_id").distinct()
    return data.events.select("user_id").distinct()


def feature_table(data, spec: FeatureSpec) -> ibis.Table:
    """The feature table in the engine: ``user_id`` + ``spec.names`` (float64), one row per user.

    Parameters
    ----------
    data : CRMData
    spec : FeatureSpec
        From :func:`feature_spec` on the same data (or a compatible one).

    Returns
    -------
    ibis.Table
        Lazy; columns ``user_id, *spec.names``. Users without activity get zeros
        (recency columns: ``lookback_days``).
    """
    ev = _event_window(data.events, spec)
    hour = ev.ts.hour()
    aggs: dict[str, ibis.Value] = {
        "events": ev.count(),
        "active_days": ev.ts.date().nunique(),
        "_last_ts": ev.ts.max(),
    }
    for i, e in enumerate(spec.event_types):
        aggs[f"_e{i}"] = _count_if(ev.event == e)
    for col, values in spec.shares.items():
        aggs[f"_{col}_n"] = ev[col].count()
        for i, v in enumerate(values):
            aggs[f"_{col}{i}"] = _count_if(ev[col] == v)
    for name, (lo, hi) in HOUR_BINS.items():
        aggs[f"_h_{name}"] = _count_if((hour >= lo) & (hour < hi))
    act = ev.group_by("user_id").aggregate(**aggs)

    cols: dict[str, ibis.Value] = {
        "events": act.events.cast("float64"),
        "active_days": act.active_days.cast("float64"),
        "recency_days": _days_before(spec.as_of, act["_last_ts"], float(spec.lookback_days)),
    }
    for i, e in enumerate(spec.event_types):
        cols[f"count:{e}"] = act[f"_e{i}"].cast("float64")
    for col, values in spec.shares.items():
        for i, v in enumerate(values):
            cols[f"{col}:{v}"] = _share(act[f"_{col}{i}"], act[f"_{col}_n"])
    for name in HOUR_BINS:
        cols[f"hour:{name}"] = _share(act[f"_h_{name}"], act.events)
    feats = act.select("user_id", **cols)

    out = population(data)
    out = out.left_join(feats, "user_id").select(out.user_id, *[feats[c] for c in cols])
    if spec.orders:
        o = _window(data.orders, "ts", spec)
        oa = o.group_by("user_id").aggregate(
            _orders=o.count(), _revenue=o.revenue.sum(), _last_order=o.ts.max()
        )
        out = out.left_join(oa, "user_id").select(
            out, oa["_orders"], oa["_revenue"], oa["_last_order"]
        )
    if spec.messages:
        m = _window(data.messages.rename(ts="sent_at"), "ts", spec)
        maggs = {"_sent": m.count()}
        for r in spec.message_rates:
            maggs[f"_{r}"] = m[r.replace("_rate", "ed_at")].count()
        ma = m.group_by("user_id").aggregate(**maggs)
        out = out.left_join(ma, "user_id").select(out, *[ma[c] for c in maggs])
    if spec.tenure or spec.attributes:
        u = data.users.select("user_id", *(["signup_at"] if spec.tenure else []), *spec.attributes)
        u = u.rename({f"_u_{c}": c for c in u.columns if c != "user_id"})
        out = out.left_join(u, "user_id").select(out, *[u[c] for c in u.columns if c != "user_id"])

    final: dict[str, ibis.Value] = {}
    lb = float(spec.lookback_days)
    for c in cols:
        final[c] = out[c].fill_null(lb if c == "recency_days" else 0.0)
    if spec.orders:
        n = out["_orders"].fill_null(0)
        rev = out["_revenue"].fill_null(0.0).cast("float64")
        final["orders"] = n.cast("float64")
        final["revenue"] = rev
        final["avg_order_value"] = ibis.ifelse(n > 0, rev / n.cast("float64"), 0.0)
        final["order_recency_days"] = _days_before(spec.as_of, out["_last_order"], lb)
    if spec.messages:
        sent = out["_sent"].fill_null(0)
        final["messages_sent"] = sent.cast("float64")
        for r in spec.message_rates:
            final[r] = _share(out[f"_{r}"].fill_null(0), sent)
    if spec.tenure:
        final["tenure_days"] = _days_before(spec.as_of, out["_u_signup_at"], 0.0)
    for col, values in spec.attributes.items():
        for v in values:
            final[f"attr:{col}={v}"] = ibis.ifelse(out[f"_u_{col}"] == v, 1.0, 0.0).fill_null(0.0)
    return out.select("user_id", **{c: final[c].cast("float64") for c in spec.names})


def feature_frame(data, spec: FeatureSpec) -> pd.DataFrame:
    """:func:`feature_table` fetched as pandas, sorted by ``user_id`` (index 0..n-1).

    Returns
    -------
    pandas.DataFrame, shape (n_users, 1 + len(spec.names))
    """
    expr = feature_table(data, spec)
    if data.con.name == "duckdb":
        # DuckDB's own fetch into NumPy arrays, sorted in the engine: Ibis' ``to_pandas``
        # goes through Arrow, one Series per column, a block consolidation and a per-column
        # type conversion, which for 1M users x 65 features cost about as much CPU as the
        # query itself (benchmarks/bench_lookalike.py). The columns are float64 without
        # NULLs and ``user_id`` is the population's key, so nothing needs converting.
        df = data.con.raw_sql(data.con.compile(expr.order_by("user_id"))).df()
        return df.reset_index(drop=True)
    df = expr.to_pandas()
    return df.sort_values("user_id", kind="stable").reset_index(drop=True)
